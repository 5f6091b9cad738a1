"""Structured logs: JSON lines for machines, readable key=value text for a terminal.

Callers pass the object's identity as `extra` fields (image id and tags, container id and name,
pod); both formats print every such field.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any, TextIO

from nodegc.cli.safe import visible, visible_lines

_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in vars(record).items() if k not in _STANDARD and v is not None}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
            **_fields(record),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


class TextFormatter(logging.Formatter):
    """One line per record, whatever the message and the fields hold: the formatted message and
    every field pass through `safe.visible` here, so no log call can forget it (a label with a
    newline forges no line, an ESC sequence reaches no terminal). A traceback keeps its lines."""

    def format(self, record: logging.LogRecord) -> str:
        when = datetime.fromtimestamp(record.created).strftime("%H:%M:%S")
        extras = " ".join(f"{visible(k)}={_text(v)}" for k, v in _fields(record).items())
        line = f"{when} {record.levelname.lower():<7} {visible(record.getMessage())}"
        if extras:
            line += f"  {extras}"
        if record.exc_info:
            line += "\n" + visible_lines(self.formatException(record.exc_info))
        return line


def _text(value: Any) -> str:
    if isinstance(value, list | tuple):
        return visible(",".join(map(str, value))) or "-"
    text = visible(value)
    return json.dumps(text) if (" " in text or "=" in text or not text) else text


def setup(fmt: str = "auto", level: str = "info", stream: TextIO | None = None) -> None:
    """Route nodegc's log to `stream` (stderr): text on a terminal, JSON otherwise ("auto")."""
    stream = stream or sys.stderr
    if fmt == "auto":
        fmt = "text" if stream.isatty() else "json"
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger("nodegc")
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    root.propagate = False
