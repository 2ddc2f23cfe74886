"""Finding and reading recorded traffic for replay tests (vcrpy YAML and betamax JSON cassettes).

Fixtures are discovered when the tests run, under ``$REPMON_FIXTURES_DIR`` (default
``<repo root>/../shared/data/fixtures``): a recording dropped into a folder is tested without code
changes. Nothing here calls the code under test.
"""

from __future__ import annotations

import base64
import gzip
import json
import os
import zlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parent.parent


def fixtures_dir() -> Path:
    """The root of the recorded fixtures."""
    configured = os.environ.get("REPMON_FIXTURES_DIR")
    if configured:
        return Path(configured).expanduser().resolve()
    return (REPO_ROOT / ".." / "shared" / "data" / "fixtures").resolve()


def discover(subfolder: str, suffixes: Iterable[str]) -> list[Path]:
    """Files under ``fixtures/<subfolder>`` (recursively) with one of ``suffixes``, sorted."""
    root = fixtures_dir() / subfolder
    if not root.is_dir():
        return []
    wanted = tuple(s.lower() for s in suffixes)
    return sorted(p for p in root.rglob("*") if p.is_file() and p.name.lower().endswith(wanted))


def fixture_params(subfolder: str, suffixes: Iterable[str]) -> list[object]:
    """pytest parameters for every discovered file; one skipped parameter when there are none."""
    files = discover(subfolder, suffixes)
    if not files:
        return [
            pytest.param(
                None, marks=pytest.mark.skip(reason=f"no fixtures under {fixtures_dir() / subfolder}")
            )
        ]
    root = fixtures_dir()
    return [pytest.param(p, id=str(p.relative_to(root))) for p in files]


@dataclass
class Recorded:
    """One recorded HTTP exchange, normalised across cassette formats."""

    method: str
    uri: str
    status: int
    headers: list[tuple[str, str]]
    body: bytes
    request_body: bytes = b""
    request_headers: dict[str, str] = field(default_factory=dict)

    @property
    def path(self) -> str:
        """The request path without a trailing slash."""
        return urlsplit(self.uri).path.rstrip("/") or "/"

    @property
    def query(self) -> dict[str, list[str]]:
        """The recorded request's query parameters."""
        return parse_qs(urlsplit(self.uri).query)

    def header(self, name: str) -> str | None:
        """A response header value (first one), case-insensitively."""
        for key, value in self.headers:
            if key.lower() == name.lower():
                return value
        return None

    def decoded_body(self) -> bytes:
        """The response body with any Content-Encoding undone."""
        encoding = (self.header("content-encoding") or "").lower()
        if "gzip" in encoding:
            return gzip.decompress(self.body)
        if "deflate" in encoding:
            try:
                return zlib.decompress(self.body)
            except zlib.error:
                return zlib.decompress(self.body, -zlib.MAX_WBITS)
        return self.body

    def json(self) -> object:
        """The decoded response body as JSON."""
        return json.loads(self.decoded_body().decode("utf-8"))


def _as_bytes(value: object) -> bytes:
    if value is None:
        return b""
    if isinstance(value, bytes):
        return value
    return str(value).encode("utf-8")


def _flat_headers(headers: dict[str, object] | None) -> list[tuple[str, str]]:
    pairs: list[tuple[str, str]] = []
    for key, value in (headers or {}).items():
        values = value if isinstance(value, list) else [value]
        pairs.extend((str(key), str(v)) for v in values)
    return pairs


def load_vcr(path: Path) -> list[Recorded]:
    """Interactions of a vcrpy YAML cassette (``!!binary`` bodies are bytes, still encoded)."""
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    out: list[Recorded] = []
    for item in data.get("interactions") or []:
        req, resp = item["request"], item["response"]
        body = resp.get("body") or {}
        out.append(
            Recorded(
                method=str(req.get("method", "GET")).upper(),
                uri=str(req["uri"]),
                status=int(resp["status"]["code"]),
                headers=_flat_headers(resp.get("headers")),
                body=_as_bytes(body.get("string") if isinstance(body, dict) else body),
                request_body=_as_bytes(req.get("body")),
                request_headers={
                    k: v[0] if isinstance(v, list) else v for k, v in (req.get("headers") or {}).items()
                },
            )
        )
    return out


def load_betamax(path: Path) -> list[Recorded]:
    """Interactions of a betamax JSON cassette."""
    data = json.loads(path.read_text(encoding="utf-8"))
    out: list[Recorded] = []
    for item in data.get("interactions") or []:
        req, resp = item["request"], item["response"]
        body = resp.get("body") or {}
        if body.get("base64_string"):
            raw = base64.b64decode(body["base64_string"])
        else:
            raw = _as_bytes(body.get("string"))
        req_body = req.get("body") or {}
        out.append(
            Recorded(
                method=str(req.get("method", "GET")).upper(),
                uri=str(req["uri"]),
                status=int(resp["status"]["code"]),
                headers=_flat_headers(resp.get("headers")),
                body=raw,
                request_body=_as_bytes(req_body.get("string") if isinstance(req_body, dict) else req_body),
            )
        )
    return out


def load_cassette(path: Path) -> list[Recorded]:
    """Interactions of a cassette of either format (by file suffix)."""
    if path.suffix.lower() in (".yaml", ".yml"):
        return load_vcr(path)
    return load_betamax(path)
