"""How the line and the console log: the lab's human lines, or JSON lines for a log shipper.

``VERIFYLINE_LOG_FORMAT=text`` (the default) keeps the lines the lab has always written
(``2026-01-01 10:00:00,123 INFO ari_app.runtime: Call 1700.1: dtmf 5``);
``json`` writes one object a line::

    {"ts": "2026-01-01T10:00:00.123456+00:00", "level": "INFO", "logger": "ari_app.runtime",
     "message": "Call 1700.1: dtmf 5", "call_id": "1700.1"}

``call_id`` is on every line logged while a call is handled: its task sets :data:`CALL_ID`
(contextvars: each asyncio task has its own copy), and lines logged outside it that name the
call the house way (``log.info("Call %s: ...", channel_id)``) carry it too. ``exc_info``
holds the traceback when there is one. Stdlib only: the domain, the adapter and the console
all use it.
"""

from __future__ import annotations

import json
import logging
import sys
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import TextIO

from ivr.config import Settings

CALL_ID: ContextVar[str | None] = ContextVar("verifyline_call_id", default=None)
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
_CALL_PREFIX = "Call %s"


class CallIdFilter(logging.Filter):
    """Puts ``call_id`` on every record: the handling task's call, else the call the message
    names first (``"Call %s: ..."``), else None."""

    def filter(self, record: logging.LogRecord) -> bool:
        call_id = CALL_ID.get()
        if (call_id is None and isinstance(record.msg, str)
                and record.msg.startswith(_CALL_PREFIX) and isinstance(record.args, tuple)
                and record.args):
            call_id = str(record.args[0])
        record.call_id = call_id
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object a line: ts (UTC, ISO 8601), level, logger, message, call_id, and
    exc_info / stack_info when present."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, object] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "call_id": getattr(record, "call_id", None),
        }
        if record.exc_info:
            out["exc_info"] = self.formatException(record.exc_info)
        if record.stack_info:
            out["stack_info"] = self.formatStack(record.stack_info)
        return json.dumps(out, ensure_ascii=False, default=str)


def formatter(settings: Settings) -> logging.Formatter:
    """The formatter VERIFYLINE_LOG_FORMAT asks for."""
    return JsonFormatter() if settings.log_format == "json" else logging.Formatter(TEXT_FORMAT)


def configure(settings: Settings, verbose: bool = False, stream: TextIO | None = None
              ) -> logging.Handler:
    """Send the root logger's records to ``stream`` (stderr) in the format and at the level
    the settings say (``verbose``: DEBUG whatever they say); returns the handler."""
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(formatter(settings))
    handler.addFilter(CallIdFilter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if verbose else settings.log_level)
    # one line per HTTP request to Asterisk would drown the calls' own lines
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("websockets").setLevel(logging.INFO)
    return handler
