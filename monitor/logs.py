"""Logging setup: one line per event, key facts first, secrets masked wherever they appear."""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Iterable, Mapping

__all__ = ["FailureLog", "SecretFilter", "describe", "secret_values", "setup_logging"]

_SECRET_NAME = re.compile(
    r"(TOKEN|SECRET|PASSWORD|PASSWD|API_KEY|APIKEY|WEBHOOK|DATABASE_URL|CREDENTIAL)", re.I
)
_URL_PASSWORD = re.compile(r"(?P<scheme>[a-z][a-z0-9+.\-]*://[^:/@\s]+:)(?P<pw>[^@\s]+)(?=@)", re.I)


def secret_values(env: Mapping[str, str]) -> list[str]:
    """Values of environment variables whose names say they hold secrets."""
    return [v for k, v in env.items() if _SECRET_NAME.search(k) and len(v) >= 6]


class SecretFilter(logging.Filter):
    """Replaces known secret values and URL passwords in every record with ``***``."""

    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        self.secrets = sorted({s for s in secrets if s}, key=len, reverse=True)

    def mask(self, text: str) -> str:
        """``text`` with secrets masked."""
        for secret in self.secrets:
            if secret in text:
                text = text.replace(secret, "***")
        return _URL_PASSWORD.sub(r"\g<scheme>***", text)

    def filter(self, record: logging.LogRecord) -> bool:
        """Render the message once, masked, so arguments cannot leak either."""
        message = record.getMessage()
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.mask(record.exc_text)
        record.msg = self.mask(message)
        record.args = None
        return True


def setup_logging(
    level: str = "INFO", env: Mapping[str, str] | None = None, stream: object = None
) -> SecretFilter:
    """Configure the root logger for repmon; returns the secret filter in use."""
    import os

    secrets = SecretFilter(secret_values(os.environ if env is None else env))
    handler = logging.StreamHandler(stream or sys.stderr)  # type: ignore[arg-type]
    handler.setFormatter(
        logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s", "%Y-%m-%dT%H:%M:%S")
    )
    handler.addFilter(secrets)
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    for noisy in ("httpx", "httpcore", "alembic", "slack_sdk", "asyncio"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    return secrets


class FailureLog:
    """Logs a repeating failure once when it starts and once when it ends, not on every retry.

    Database trouble (unreachable, locked, full) is expected during an outage and gets one line with
    its cause; anything else also gets its traceback, the first time. Repeats go to DEBUG.
    """

    def __init__(self, logger: logging.Logger, what: str) -> None:
        self.logger = logger
        self.what = what
        #: Failures in a row; 0 while it works.
        self.failures = 0

    def failed(self, exc: BaseException, retry: str = "retrying") -> None:
        """Count a failure; log it when it is the first of a run."""
        self.failures += 1
        if self.failures > 1:
            self.logger.debug("%s still failing (%d in a row): %s", self.what, self.failures, describe(exc))
            return
        from sqlalchemy.exc import SQLAlchemyError

        trace = None if isinstance(exc, SQLAlchemyError) else exc
        self.logger.error("%s failed (%s); %s", self.what, describe(exc), retry, exc_info=trace)

    def succeeded(self) -> None:
        """Note a success; log the recovery when it ends a run of failures."""
        if self.failures:
            self.logger.info("%s works again after %d failed attempt(s)", self.what, self.failures)
        self.failures = 0


def describe(exc: BaseException) -> str:
    """``Type: first line of the message`` of an exception (a database error's driver cause)."""
    problem: BaseException = getattr(exc, "orig", None) or exc
    text = str(problem).strip()
    return f"{type(problem).__name__}: {text.splitlines()[0] if text else ''}"[:300]
