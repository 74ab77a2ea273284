"""One logging setup for every part: structured (JSON or text) and scrubbed of PII."""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import UTC, datetime
from typing import Any

# Runs of 7+ digits (optionally with +, spaces or dashes inside) standing on their own
# look like phone numbers; they are masked in every record, whatever the call site
# passed. A run inside a word (the hex of ``key_01a2252025d3...`` ids) is not a phone
# number and stays, so operators can still follow ids through the logs.
_PHONE_LIKE = re.compile(r"(?<!\w)\+?\d[\d\- ]{5,}\d(?!\w)")
_MASK = "<redacted>"

# Attributes every LogRecord has; anything else came in through ``extra=`` and is data.
_RECORD_ATTRS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "taskName",
}


def scrub(text: str) -> str:
    """Mask phone-number-like digit runs in ``text``."""
    return _PHONE_LIKE.sub(_MASK, text)


class PiiFilter(logging.Filter):
    """Rewrites each record's message and extra fields with phone-like runs masked."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = scrub(record.getMessage())
        record.args = None
        for key, value in list(vars(record).items()):
            if key not in _RECORD_ATTRS and isinstance(value, str):
                setattr(record, key, scrub(value))
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, msg and any ``extra=`` fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _RECORD_ATTRS:
                entry[key] = value
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


class TextFormatter(logging.Formatter):
    """Human-readable line with ``key=value`` extras appended."""

    def format(self, record: logging.LogRecord) -> str:
        base = super().format(record)
        extras = " ".join(
            f"{k}={v}" for k, v in vars(record).items() if k not in _RECORD_ATTRS
        )
        return f"{base} {extras}" if extras else base


def setup_logging(level: str = "INFO", fmt: str = "text", stream: Any = None) -> None:
    """Configure the root logger once: one handler, the PII filter, the chosen format."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.addFilter(PiiFilter())
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(TextFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
