"""Literal secrets in the raw YAML: found before validation, each reported once with the fix.

The settings models declare their secrets: a field ``<name>_env`` (optionally with ``<name>_file``)
names where ``<name>`` comes from, so a literal ``<name>:`` beside it is a secret written into the
file (``slack.token``, ``slack.webhook_url``, a source's ``api_key`` or ``hash``); a source's are
declared by its type's options model. Besides those, keys that look like secrets (``password``,
``*_token``, ``api_key``, …) are refused anywhere. An ``*_env`` setting whose value is not a
variable name is most likely the secret itself. No message ever contains the value.
"""

from __future__ import annotations

import re
import types
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Union, get_args, get_origin

from pydantic import BaseModel
from pydantic.fields import FieldInfo

from config.settings import Settings, SourceSettings

__all__ = ["LiteralSecret", "literal_secrets"]

_SECRET_KEY = re.compile(r"(^|_)(token|password|passwd|secret|api_key|apikey|bearer)$", re.IGNORECASE)
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

Loc = tuple[str | int, ...]
#: The options model of a source ``type`` (None when unknown): source options are declared there.
OptionsFor = Callable[[Any], type[BaseModel] | None]


@dataclass(frozen=True, slots=True)
class LiteralSecret:
    """A secret (or what is most likely one) written into the YAML, and what to write instead."""

    loc: Loc
    message: str
    #: True when the key itself is not a setting: the validator's "unknown setting" for it is noise.
    replaces_unknown: bool


def literal_secrets(data: Any, options_for: OptionsFor = lambda _type: None) -> list[LiteralSecret]:
    """Every literal secret in raw configuration ``data`` (the parsed YAML), located by its path."""
    found: list[LiteralSecret] = []
    _walk(data, Settings, (), found, options_for)
    return found


def _fields(
    model: type[BaseModel] | None, data: dict[Any, Any], options_for: OptionsFor
) -> dict[str, FieldInfo]:
    """The settings declared where ``data`` sits (a source's common fields plus its type's own)."""
    if model is None:
        return {}
    fields = dict(model.model_fields)
    if model is SourceSettings:
        options = options_for(data.get("type"))
        if options is not None:
            fields.update(options.model_fields)
    return fields


def _walk(
    data: Any, model: type[BaseModel] | None, path: Loc, out: list[LiteralSecret], options_for: OptionsFor
) -> None:
    if isinstance(data, list):
        for index, item in enumerate(data):
            _walk(item, model, (*path, index), out, options_for)
        return
    if not isinstance(data, dict):
        return
    fields = _fields(model, data, options_for)
    for key, value in data.items():
        if not isinstance(key, str):
            continue
        loc = (*path, key)
        finding = _check(key, value, fields, loc)
        if finding is not None:
            out.append(finding)
            continue
        sub, mapping = _nested(fields.get(key))
        if mapping and isinstance(value, dict):
            for name, item in value.items():
                _walk(item, sub, (*loc, name), out, options_for)
        else:
            _walk(value, sub, loc, out, options_for)


def _check(key: str, value: Any, fields: dict[str, FieldInfo], loc: Loc) -> LiteralSecret | None:
    literal = isinstance(value, str | int) and not isinstance(value, bool) and value != ""
    if not literal:
        return None
    declared = f"{key}_env" in fields and key not in fields
    if declared:
        instead = f"name an environment variable with '{key}_env: VARIABLE'"
        if f"{key}_file" in fields:
            instead += f" (or a file with '{key}_file: PATH')"
        return LiteralSecret(loc, f"secrets never go in the YAML file; {instead} instead", True)
    if _SECRET_KEY.search(key):
        envs = sorted(f for f in fields if f.endswith("_env"))
        if envs:
            here = ", ".join(f"'{f}'" for f in envs)
            hint = f", and '{key}' is not a setting here: this section reads them from the environment"
            hint += f" ({here})"
        else:
            hint = "; pass it through the environment (the settings ending in '_env' name the variables)"
        return LiteralSecret(loc, f"secrets never go in the YAML file{hint}", key not in fields)
    if key.endswith("_env") and isinstance(value, str) and not _ENV_NAME.match(value):
        default = fields[key].default if key in fields else None
        example = f"such as {default}: " if isinstance(default, str) and _ENV_NAME.match(default) else ""
        return LiteralSecret(
            loc,
            f"'{key}' takes the name of an environment variable ({example}letters, digits and _), not the"
            " secret itself; put the secret in that variable",
            False,
        )
    return None


def _nested(field: FieldInfo | None) -> tuple[type[BaseModel] | None, bool]:
    """The settings model inside a field (through Optional, tuples and lists) and whether it is a mapping."""
    if field is None:
        return None, False
    return _model_in(field.annotation)


def _model_in(annotation: Any) -> tuple[type[BaseModel] | None, bool]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation, False
    origin = get_origin(annotation)
    args = get_args(annotation)
    if origin is dict and len(args) == 2:
        return _model_in(args[1])[0], True
    if origin in (tuple, list, Union, types.UnionType):
        for arg in args:
            model, mapping = _model_in(arg)
            if model is not None:
                return model, mapping
    return None, False
