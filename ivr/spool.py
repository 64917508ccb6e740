"""The fallback spool: one line per call that the dialplan handled without the app.

The dialplan's hang-up handler appends (fields separated by ``|``, unsafe characters filtered)::

    v1|uniqueid|start epoch|end epoch|answered milliseconds|caller number|DIALSTATUS|
       desk that answered|endpoint that hung up|outcome

"answered milliseconds" is how long the desk that answered was connected, up to the end (the
dialplan notes the desk's answer itself: Asterisk's ANSWEREDTIME counts from the caller's own
answer, before the fallback's message and the ringing). The app ingests complete lines into
the call log (path ``fallback``) exactly once.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

from ivr.callers import caller_number
from ivr.calllog import FallbackRecord
from ivr.models import EndReason

log = logging.getLogger(__name__)

SPOOL_FILE = "fallback.log"
FIELDS = 10


def parse_line(line: str) -> FallbackRecord:
    """Parse one spool line; ValueError if it is not a v1 line."""
    parts = line.rstrip("\n").split("|")
    if len(parts) != FIELDS or parts[0] != "v1":
        raise ValueError(f"not a v1 fallback spool line: {line!r}")
    _, uniqueid, start, end, answered_ms, caller, dial_status, peer, source, outcome = parts
    if not uniqueid:
        raise ValueError("spool line has no uniqueid")
    started = datetime.fromtimestamp(float(start), UTC)
    ended = datetime.fromtimestamp(float(end), UTC)
    desk = peer if dial_status == "ANSWER" and peer else None
    answered = None
    if desk is not None:
        answered = ended - timedelta(milliseconds=float(answered_ms or 0))
        reason = EndReason.SUPERVISOR_HANGUP if source == desk else EndReason.CALLER_HANGUP
    elif outcome == "unavailable":
        reason = EndReason.NO_SUPERVISOR
    else:
        reason = EndReason.CALLER_ABANDONED
    return FallbackRecord(
        channel_id=uniqueid, caller_number=caller_number(caller), started_at=started,
        answered_at=answered, ended_at=ended, desk=desk, end_reason=reason,
        dial_status=dial_status or "NONE",
    )


def drain(spool_dir: Path, ingest: Callable[[FallbackRecord], None],
          settle: float = 0.2, committed: Callable[[], object] | None = None) -> int:
    """Move the spool aside, ingest every complete line, then delete it; return lines ingested.

    Asterisk opens the file for each append, so after the rename new lines go to a fresh file.
    ``committed`` is called before a batch is deleted (waits until what ``ingest`` handed on
    is durable). A file left by a crash mid-ingest is picked up again (ingest is idempotent).
    """
    spool_dir.mkdir(parents=True, exist_ok=True)
    live = spool_dir / SPOOL_FILE
    if live.exists():
        os.replace(live, spool_dir / f"{SPOOL_FILE}.{time.time_ns()}.ingest")
        time.sleep(settle)  # let an append already under way finish
    count = 0
    for batch in sorted(spool_dir.glob(f"{SPOOL_FILE}.*.ingest")):
        for record in _records(batch):
            ingest(record)
            count += 1
        if committed is not None:
            committed()
        batch.unlink()
    return count


def _records(path: Path) -> Iterator[FallbackRecord]:
    with path.open(encoding="utf-8", errors="replace") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                yield parse_line(line)
            except ValueError as exc:
                log.error("%s line %d skipped: %s", path.name, number, exc)
