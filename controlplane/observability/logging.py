"""Log formatting: JSON lines (production) or readable text, both carrying the request id."""

from __future__ import annotations

import json
import logging
import time

from controlplane.observability.context import current_key_prefix, current_request_id

# No caller lookup (a stack walk per record): no formatter here prints file or line. This is the
# optimization the logging documentation suggests ("Optimization": set logging._srcfile to None).
logging._srcfile = None  # type: ignore[attr-defined]

_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "request_id", "key_prefix"}


class RequestIdFilter(logging.Filter):
    """Stamps every record with the current request id and key prefix."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not getattr(record, "request_id", None):
            record.request_id = current_request_id()
        if not getattr(record, "key_prefix", None):
            record.key_prefix = current_key_prefix()
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, request id and any `extra` fields."""

    _second: tuple[int, str] = (-1, "")  # the last whole second formatted, as one tuple (thread-safe swap)

    def _time(self, created: float) -> str:
        """`created` as ISO 8601 UTC with milliseconds, e.g. 2026-11-26T04:27:40.423+00:00."""
        whole = int(created)
        second, text = self._second
        if second != whole:
            text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole))
            self._second = (whole, text)
        return f"{text}.{int((created - whole) * 1000):03d}+00:00"

    def format(self, record: logging.LogRecord) -> str:
        payload = {
            "time": self._time(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", None),
        }
        if getattr(record, "key_prefix", None):
            payload["key_prefix"] = record.key_prefix
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                payload[key] = value
        if record.exc_info:
            payload["exc"] = self.formatException(record.exc_info)
        return json.dumps(payload, default=str)


class TextFormatter(logging.Formatter):
    """Human-readable lines for the embedded default, still with the request id."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s [%(request_id)s] %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        extras = {k: v for k, v in record.__dict__.items() if k not in _STANDARD and not k.startswith("_")}
        if extras:
            line += " " + json.dumps(extras, default=str)
        return line
