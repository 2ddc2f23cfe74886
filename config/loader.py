"""Load and validate the YAML configuration, reporting errors by file, line and fix."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from config.secrets import literal_secrets
from config.settings import Settings, SourceSettings, cross_field_problems
from config.urls import http_url_problem, is_url_setting

__all__ = ["ConfigError", "ConfigIssue", "LoadedConfig", "load_config", "parse_config"]


@dataclass(frozen=True, slots=True)
class ConfigIssue:
    """One problem in a configuration file, located as precisely as we can."""

    file: str
    line: int | None
    path: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.path}: {self.message}" if self.path else f"{where}: {self.message}"


class ConfigError(Exception):
    """The configuration is invalid; ``issues`` lists every problem found."""

    def __init__(self, issues: Sequence[ConfigIssue]) -> None:
        self.issues = list(issues)
        super().__init__("\n".join(str(i) for i in self.issues))


@dataclass(frozen=True, slots=True)
class LoadedConfig:
    """Validated settings plus each source's validated type-specific options."""

    settings: Settings
    source_options: dict[str, BaseModel]
    path: Path | None


def load_config(path: str | Path, *, option: str = "--config") -> LoadedConfig:
    """Read, parse and validate ``path``; raise :class:`ConfigError` with every problem found.

    ``option`` is the command-line option that named the file, so a missing file's hint names it.
    """
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        hint = "pass --config PATH" if option == "--config" else f"check the path given to {option}"
        raise ConfigError([ConfigIssue(str(file), None, "", f"file not found; {hint}")]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([ConfigIssue(str(file), None, "", f"cannot read: {exc}")]) from None
    return parse_config(text, str(file), base_dir=file.parent)


def parse_config(text: str, filename: str = "<config>", *, base_dir: Path | None = None) -> LoadedConfig:
    """Validate configuration text; ``base_dir`` resolves relative paths in source options."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError([ConfigIssue(filename, line, "", f"not valid YAML: {problem}")]) from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError([ConfigIssue(filename, 1, "", "the top level must be a mapping (key: value)")])

    issues: list[ConfigIssue] = []
    secrets = literal_secrets(data, _options_model)
    issues.extend(ConfigIssue(filename, _line_of(root, s.loc), _dotted(s.loc), s.message) for s in secrets)
    # A literal `token:` is not a setting either; one clear error per line, not a second "unknown".
    explained = {s.loc for s in secrets if s.replaces_unknown}
    # Every check below runs whatever the others found, so one pass reports every problem: the
    # source types, source options, queries and cross-field checks read the raw YAML themselves.
    settings: Settings | None = None
    try:
        settings = Settings.model_validate(data, context={"cross_checks": False})
    except ValidationError as exc:
        for error in exc.errors():
            loc = tuple(error["loc"])
            if not _explained(error, loc, explained):
                issues.append(
                    ConfigIssue(
                        filename, _line_of(root, loc), _dotted(loc), _explain(error, _node_at(root, loc))
                    )
                )
    issues.extend(
        ConfigIssue(filename, _line_of(root, loc), _dotted(loc), message)
        for loc, message in cross_field_problems(data)
    )
    source_options: dict[str, BaseModel] = {}
    issues.extend(_check_sources(data, root, filename, base_dir, source_options, explained))
    issues.extend(_check_queries(data, root, filename))
    if issues or settings is None:
        # in file order, as an operator fixes them (the sort is stable: same line, found order)
        raise ConfigError(sorted(issues, key=lambda issue: issue.line or 0))
    return LoadedConfig(settings, source_options, Path(filename) if filename != "<config>" else None)


def _check_sources(
    data: dict[Any, Any],
    root: yaml.Node | None,
    filename: str,
    base_dir: Path | None,
    out: dict[str, BaseModel],
    explained: set[tuple[str | int, ...]],
) -> list[ConfigIssue]:
    """Validate every source's type and type-specific options (raw YAML) with the source's own model.

    ``explained`` holds the literal secrets already reported, whose "unknown setting" is noise.
    """
    from sources.registry import SOURCE_TYPES

    issues: list[ConfigIssue] = []
    sources = data.get("sources")
    for index, source in enumerate(sources if isinstance(sources, list) else []):
        if not isinstance(source, dict):
            continue  # the settings model says what a source entry must look like
        loc: tuple[str | int, ...] = ("sources", index)
        type_ = source.get("type")
        if not isinstance(type_, str):
            continue  # missing or not text: reported with the common settings
        cls: Any = SOURCE_TYPES.get(type_)
        if cls is None:
            known = ", ".join(sorted(SOURCE_TYPES))
            issues.append(
                ConfigIssue(
                    filename,
                    _line_of(root, (*loc, "type")),
                    _dotted((*loc, "type")),
                    f"unknown source type {type_!r}; known types: {known}",
                )
            )
            continue
        options = {k: v for k, v in source.items() if k not in SourceSettings.model_fields}
        if (
            base_dir is not None
            and isinstance(options.get("path"), str)
            and not Path(options["path"]).is_absolute()
        ):
            options["path"] = str(base_dir / options["path"])
        failed: set[tuple[str | int, ...]] = set()
        try:
            validated = cls.Options.model_validate(options)
        except ValidationError as exc:
            for error in exc.errors():
                sub = (*loc, *error["loc"])
                failed.add(sub)
                if not _explained(error, sub, explained):
                    issues.append(
                        ConfigIssue(
                            filename, _line_of(root, sub), _dotted(sub), _explain(error, _node_at(root, sub))
                        )
                    )
        else:
            if isinstance(source.get("name"), str):
                out[source["name"]] = validated
        for key, value in options.items():
            sub = (*loc, key)
            if sub in failed or sub in explained:  # already reported; a secret is never echoed
                continue
            if isinstance(key, str) and is_url_setting(key) and isinstance(value, str):
                problem = http_url_problem(value)
                if problem is not None:
                    issues.append(ConfigIssue(filename, _line_of(root, sub), _dotted(sub), problem))
    return issues


def _options_model(source_type: Any) -> type[BaseModel] | None:
    """The options model of a source type named in the YAML (None if unknown)."""
    from sources.registry import SOURCE_TYPES

    cls: Any = SOURCE_TYPES.get(source_type) if isinstance(source_type, str) else None
    return cls.Options if cls is not None else None


def _explained(error: Any, loc: tuple[Any, ...], explained: set[tuple[str | int, ...]]) -> bool:
    """Whether a validation error is the "unknown setting" of a key already reported as a secret."""
    return error.get("type") == "extra_forbidden" and loc in explained


def _check_queries(data: dict[Any, Any], root: yaml.Node | None, filename: str) -> list[ConfigIssue]:
    """Compile every brand's keywords, query and exclusions (raw YAML) so syntax errors stop start-up.

    Values that are not text are skipped: the settings model reports them.
    """
    from config.query import QuerySyntaxError, compile_keyword, compile_query

    issues: list[ConfigIssue] = []
    brands = data.get("brands")
    for index, brand in enumerate(brands if isinstance(brands, list) else []):
        if not isinstance(brand, dict):
            continue
        fold = brand.get("fold_diacritics", True)
        fold = fold if isinstance(fold, bool) else True
        candidates: list[tuple[tuple[str | int, ...], str]] = []
        if isinstance(brand.get("query"), str) and brand["query"]:
            candidates.append((("brands", index, "query"), brand["query"]))
        for key in ("exclude", "keywords"):
            items = brand.get(key)
            if isinstance(items, list):
                candidates.extend(
                    (("brands", index, key, i), item) for i, item in enumerate(items) if isinstance(item, str)
                )
        for loc, text in candidates:
            try:
                if loc[2] == "keywords":
                    compile_keyword(text, fold_diacritics=fold)
                else:
                    compile_query(text, fold_diacritics=fold)
            except QuerySyntaxError as exc:
                issues.append(ConfigIssue(filename, _line_of(root, loc), _dotted(loc), "\n" + str(exc)))
    return issues


def _explain(error: Any, node: yaml.Node | None = None) -> str:
    """Turn a pydantic error into a sentence that says what would be right.

    ``node`` is the YAML node the error is about, so a type error can say what YAML made of the
    text as written (`ON` is a boolean, `- #klm` an empty item, `keywords: KLM` no list).
    """
    kind = error.get("type", "")
    message = str(error.get("msg", "invalid"))
    if kind == "extra_forbidden":
        return "unknown setting; check its spelling against the README's configuration reference"
    if kind == "missing":
        return "required setting is missing"
    if kind == "string_type":
        return _explain_not_text(error.get("input"), node) or message
    if kind in ("tuple_type", "list_type") and isinstance(error.get("input"), str):
        text = error["input"]
        return (
            f"a list is expected, not the single text {text!r}: write [{_quoted(text)}] or put each item "
            "on its own line starting with '- '"
        )
    return message.removeprefix("Value error, ")


def _explain_not_text(value: object, node: yaml.Node | None) -> str | None:
    """Why YAML gave something other than text where text is expected, and how to quote it."""
    raw = node.value if isinstance(node, yaml.ScalarNode) else None
    if value is None:
        line = _source_line(node)
        if line is not None and "#" in line:
            comment = line[line.index("#") :].strip()
            return (
                f"empty item: in YAML an unquoted '#' starts a comment, so {comment!r} is not read; "
                f"quote it: - {_quoted(comment)}"
            )
        return "empty value: write the text, or remove the item"
    if isinstance(value, bool) and raw:
        return (
            f"YAML reads the unquoted {raw} as {str(value).lower()}, not as text: "
            f"quote it, e.g. {_quoted(raw)}"
        )
    if isinstance(value, int | float) and raw:
        return f"YAML reads the unquoted {raw} as a number, not as text: quote it, e.g. {_quoted(raw)}"
    if isinstance(value, list | dict):
        return "text is expected here, not a list or mapping (quote text containing ': ', '[' or '{')"
    return None


def _quoted(text: str) -> str:
    """``text`` as a double-quoted YAML string."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _source_line(node: yaml.Node | None) -> str | None:
    """The text of the line a node starts on (from the YAML the node was composed from)."""
    mark = node.start_mark if node is not None else None
    buffer = getattr(mark, "buffer", None)
    if mark is None or not isinstance(buffer, str):
        return None
    start = buffer.rfind("\n", 0, mark.index) + 1
    end = buffer.find("\n", mark.index)
    return buffer[start : end if end >= 0 else len(buffer)].rstrip("\x00")


def _dotted(loc: Sequence[Any]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


def _node_at(root: yaml.Node | None, loc: Sequence[Any]) -> yaml.Node | None:
    """The YAML node at ``loc`` (None when it is not there, e.g. a missing setting)."""
    node = root
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            node = next(
                (v for k, v in node.value if isinstance(k, yaml.ScalarNode) and k.value == str(part)), None
            )
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
        else:
            return None
    return node


def _line_of(root: yaml.Node | None, loc: Sequence[Any]) -> int | None:
    """The 1-based line of the YAML node at ``loc`` (or of its nearest existing parent)."""
    node = root
    line = node.start_mark.line + 1 if node is not None else None
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                if isinstance(key, yaml.ScalarNode) and key.value == str(part):
                    line = key.start_mark.line + 1
                    node = value
                    break
            else:
                return line
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            return line
    return line
