"""One structured line per event: `event key=value ...`, with secrets redacted.

Redaction is by key name (anything that looks like a token, key, secret or password) and by
value shape (bearer headers, every prefix of `shared.auth.MINTED_PREFIXES`, and operator keys in
the `*_sk_` style), so a secret that slips into a message is still masked.
"""

from __future__ import annotations

import logging
import re
import sys
from typing import Any

from shared.auth import MINTED_PREFIXES

SECRET_KEY_PATTERN = re.compile(r"(token|secret|password|passwd|api_key|apikey|authorization|key$)", re.I)
_MINTED = "|".join(re.escape(prefix) for prefix in MINTED_PREFIXES)
SECRET_VALUE_PATTERN = re.compile(
    r"(Bearer\s+[A-Za-z0-9._~+/=-]+"
    rf"|(?<![A-Za-z0-9])(?:{_MINTED})_[A-Za-z0-9_-]{{8,}}"
    r"|\b[a-z]+_(?:sk|gw|st|tok)_[A-Za-z0-9_-]{8,}|sk-or-[A-Za-z0-9-]+|gAAAA[A-Za-z0-9_=-]{20,})"
)
REDACTED = "***"

_extra_secrets: set[str] = set()


def register_secret(value: str | None) -> None:
    """Values (configured keys) that must never appear in a log line, whatever their shape."""
    if value and len(value) >= 6:
        _extra_secrets.add(value)


def redact(text: str) -> str:
    text = SECRET_VALUE_PATTERN.sub(REDACTED, text)
    for secret in _extra_secrets:
        if secret in text:
            text = text.replace(secret, REDACTED)
    return text


def _format_value(key: str, value: Any) -> str:
    if SECRET_KEY_PATTERN.search(key) and value not in (None, ""):
        return REDACTED
    text = str(value)
    if " " in text or '"' in text or not text:
        text = '"' + text.replace('"', '\\"') + '"'
    return redact(text)


def format_event(event: str, fields: dict[str, Any]) -> str:
    parts = [event] + [f"{key}={_format_value(key, value)}" for key, value in fields.items()]
    return " ".join(parts)


class EventLogger:
    """`log.info("tick.done", idle=3)` → `tick.done idle=3`."""

    def __init__(self, name: str) -> None:
        self._logger = logging.getLogger(name)

    def _log(self, level: int, event: str, fields: dict[str, Any]) -> None:
        if self._logger.isEnabledFor(level):
            self._logger.log(level, format_event(event, fields))

    def debug(self, event: str, **fields: Any) -> None:
        self._log(logging.DEBUG, event, fields)

    def info(self, event: str, **fields: Any) -> None:
        self._log(logging.INFO, event, fields)

    def warning(self, event: str, **fields: Any) -> None:
        self._log(logging.WARNING, event, fields)

    def error(self, event: str, **fields: Any) -> None:
        self._log(logging.ERROR, event, fields)

    def exception(self, event: str, **fields: Any) -> None:
        self._logger.exception(format_event(event, fields))


def get_logger(name: str) -> EventLogger:
    return EventLogger(name)


class RedactingFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


def configure_logging(level: str = "INFO") -> None:
    # The format names no thread or process: don't look them up for every record (a claim logs one).
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(RedactingFormatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
