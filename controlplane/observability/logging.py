"""Log formatting: JSON lines (production) or readable text, both carrying the request id."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime

from controlplane.observability.context import current_key_prefix, current_request_id

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

    def format(self, record: logging.LogRecord) -> str:
        payload = {
            "time": datetime.fromtimestamp(record.created, tz=UTC).isoformat(timespec="milliseconds"),
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
