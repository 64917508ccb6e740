"""Durable call logging: every write goes to a local append-only journal (fsync'd) first,
then to the database, in order and exactly once.

"The encounter is properly recorded" must hold when the database is down: calls keep flowing,
their log writes wait in the journal, and are replayed when the database is back. The
database keeps, per journal, the sequence number of the last entry it applied
(``journal_checkpoint``), updated in the same transaction as the entry's own writes — so an
entry is applied once however often replay runs (a crash between the database commit and
the journal's compaction, a restart, an hour-long outage).

File format (one JSON object per line)::

    {"journal": "<uuid>", "base": 1, "at": <epoch>}    header: id, seq of the first entry,
                                                       when the file was started
    {"seq": 1, "op": "open", "args": {...}}            entries, in order (ops: ivr.logops)

A torn last line (a crash in the middle of a write) is dropped on open. When every entry is
applied and the file has grown, or was started more than a day ago, it is replaced
(atomically) by a new one holding only the header, so the journal stays small in normal
running, and a quiet line does not keep callers' numbers in it for weeks after the database
has them (their retention is the database's: ``verifyline purge``).
"""

from __future__ import annotations

import collections
import json
import logging
import os
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar, cast

from sqlalchemy import CursorResult, Table, bindparam, insert, select, update
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.orm import Session

from ivr import jsoncodec
from ivr.metrics import METRICS
from ivr.models import JournalCheckpoint
from ivr.store import Store

log = logging.getLogger(__name__)

COMPACT_BYTES = 256 * 1024
# an applied journal older than this is compacted whatever its size (retention, see above)
COMPACT_SECONDS = 86400.0
BATCH = 200  # entries applied in one database transaction
# after the first entry of a batch, how long the writer waits for more: a call writes ~25
# entries, a few ms apart, and a transaction's fixed cost (1-2 ms of CPU) was most of the
# journal's cost per call when it took them one by one (benchmarks/journal_apply.py)
GATHER_SECONDS = 0.01
# journaled entries go to the database at most this often (group commit): a quiet line's
# entry is applied at once, a busy line's wait up to this long and go in one transaction.
# At 10 calls/s, applied after each 10 ms gather, a transaction held ~3 entries: 7 ms of app
# CPU a call; held ~12, 3 ms (benchmarks/journal_apply.py). The console sees a busy line's
# events up to this much later (screen-pop target: 100 ms, benchmarks/screenpop.py)
APPLY_EVERY_SECONDS = 0.04


@dataclass(frozen=True)
class Entry:
    seq: int
    op: str
    args: dict[str, Any]


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Journal:
    """The append-only file. Not thread-safe: one writer thread owns it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self.entries: list[Entry] = []  # written, not yet known to be applied
        if path.exists():
            self._load()
        else:
            self.journal_id = str(uuid.uuid4())
            self._next = 1
            self._rewrite()
        self._file = open(path, "ab")  # noqa: SIM115 - held open for the journal's life

    def _load(self) -> None:
        lines = self.path.read_bytes().split(b"\n")
        header = json.loads(lines[0])
        self.journal_id, self._next = str(header["journal"]), int(header["base"])
        # a header written before "at" existed: count from now (compacted within a day)
        self._started = float(header.get("at") or time.time())
        self._header_bytes = len(lines[0]) + 1
        good = len(lines[0]) + 1
        for raw in lines[1:]:
            if not raw:
                continue
            try:
                item = jsoncodec.loads(raw)
                entry = Entry(int(item["seq"]), str(item["op"]), dict(item["args"]))
            except (ValueError, KeyError, TypeError):
                log.warning("journal %s: dropping a torn entry at byte %d", self.path, good)
                break
            self.entries.append(entry)
            self._next = entry.seq + 1
            good += len(raw) + 1
        if good < self.path.stat().st_size:
            with open(self.path, "r+b") as f:
                f.truncate(good)
                os.fsync(f.fileno())

    def _rewrite(self) -> None:
        """Replace the file by its header alone (every entry in it has been applied)."""
        tmp = self.path.with_suffix(".tmp")
        self._started = time.time()
        header = json.dumps({"journal": self.journal_id, "base": self._next,
                             "at": round(self._started, 3)}).encode() + b"\n"
        self._header_bytes = len(header)
        with open(tmp, "wb") as f:
            f.write(header)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)
        _fsync_dir(self.path.parent)

    def append(self, items: Sequence[tuple[str, dict[str, Any]]]) -> list[Entry]:
        """Write entries and fsync once for all of them; return them with their numbers."""
        new = []
        for op, args in items:
            new.append(Entry(self._next, op, args))
            self._next += 1
        self._file.write(b"".join(
            jsoncodec.dumps_bytes({"seq": e.seq, "op": e.op, "args": e.args}) + b"\n"
            for e in new))
        self._file.flush()
        os.fsync(self._file.fileno())
        self.entries.extend(new)
        return new

    def applied(self, upto: int) -> None:
        """Entries up to ``upto`` are in the database: forget them, compact when worth it."""
        self.entries = [e for e in self.entries if e.seq > upto]
        size = self._file.tell()
        if not self.entries and (size > COMPACT_BYTES or (
                size > self._header_bytes and time.time() - self._started > COMPACT_SECONDS)):
            self._file.close()
            self._rewrite()
            self._file = open(self.path, "ab")  # noqa: SIM115

    def close(self) -> None:
        self._file.close()


Op = TypeVar("Op")


class Codec(Protocol[Op]):
    """How typed operations are written as entries (a name and JSON arguments: the file
    format), read back, and applied to the database."""

    def encode(self, op: Op) -> tuple[str, dict[str, Any]]: ...

    def decode(self, name: str, args: Mapping[str, Any]) -> Op: ...

    def apply(self, session: Session, op: Op) -> None: ...

    def apply_all(self, session: Session, ops: Sequence[Op]) -> None:
        """Apply many, in order, in one transaction: the same rows as ``apply`` each."""
        ...


_CHECKPOINTS = cast(Table, JournalCheckpoint.__table__)


# Core statements, built once: no ORM identity map or flush for a row written every chunk
_READ_CHECKPOINT = select(_CHECKPOINTS.c.seq).where(
    _CHECKPOINTS.c.journal_id == bindparam("b_journal"))
_SET_CHECKPOINT = update(_CHECKPOINTS).where(
    _CHECKPOINTS.c.journal_id == bindparam("b_journal")).values(seq=bindparam("b_seq"))


def checkpoint(session: Session, journal_id: str) -> int:
    seq = session.scalar(_READ_CHECKPOINT, {"b_journal": journal_id})
    return int(seq) if seq is not None else 0


def _set_checkpoint(session: Session, journal_id: str, seq: int) -> None:
    done = cast(CursorResult[Any], session.execute(
        _SET_CHECKPOINT, {"b_journal": journal_id, "b_seq": seq}))
    if done.rowcount == 0:  # one writer per journal: nobody else inserts it meanwhile
        session.execute(insert(_CHECKPOINTS).values(journal_id=journal_id, seq=seq))


def _database_down(exc: Exception) -> bool:
    """Is this the database being unreachable (retry later) rather than a bad entry?"""
    return isinstance(exc, OperationalError) or (
        isinstance(exc, DBAPIError) and exc.connection_invalidated)


class DurableLog(Generic[Op]):
    """The one writer: journal first (fsync), then the database, in order, exactly once.

    ``submit`` never blocks on the database and never raises for it: while the database is
    unreachable entries pile up in the journal and are retried every ``retry`` seconds. An
    entry the database rejects for another reason (a bug, bad data) is kept aside in
    ``rejected.jsonl`` next to the journal and logged, so one bad row cannot stop the log."""

    def __init__(self, journal: Journal, store: Store, codec: Codec[Op],
                 retry: float = 1.0, gather: float = GATHER_SECONDS,
                 apply_every: float = APPLY_EVERY_SECONDS) -> None:
        self.journal = journal
        self.gather = gather
        self.apply_every = apply_every
        self._tried_at = float("-inf")  # when the database was last written to (or tried)
        self.store = store
        self.codec = codec
        self.retry = retry
        self.database_up = True
        # submitted, not yet journaled (None: stop). A deque and an event, not a
        # queue.Queue: the writer is woken once a batch, not once an entry (each wake-up a
        # futex call and a handover of the GIL, ~35 a call at 10 calls/s)
        self._queue: collections.deque[tuple[str, dict[str, Any]] | None] = collections.deque()
        self._wake = threading.Event()
        self._idle = threading.Condition()
        self._busy = 0
        self._committed: int | None = None  # the checkpoint this writer last committed
        self._thread = threading.Thread(target=self._run, name="verifyline-journal",
                                        daemon=True)

    def start(self) -> None:
        self._thread.start()

    def submit(self, op: Op) -> None:
        # encoded here, in the caller's thread: what is journaled is the operation as it was
        # submitted, whatever the caller changes next
        item = self.codec.encode(op)
        with self._idle:
            self._busy += 1
        self._queue.append(item)
        if not self._wake.is_set():
            self._wake.set()

    @property
    def pending(self) -> int:
        """Entries not yet in the database (journaled or still queued)."""
        return len(self.journal.entries) + len(self._queue)

    def _wait_until(self, done: Callable[[], bool], timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        with self._idle:
            while not done():
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._idle.wait(min(left, 0.1))
        return True

    def wait_journaled(self, timeout: float = 10.0) -> bool:
        """Wait until everything submitted so far is in the journal (on disk)."""
        return self._wait_until(lambda: not self._busy, timeout)

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until everything submitted is in the database; False if that took longer
        than ``timeout`` (the database is away: it stays in the journal, safe)."""
        return self._wait_until(lambda: not self._busy and not self.journal.entries, timeout)

    def stop(self, timeout: float = 3.0) -> None:
        self.flush(timeout)
        self._queue.append(None)
        self._wake.set()
        self._thread.join(timeout)
        self.journal.close()

    def _apply_due(self) -> float:
        """When journaled entries are next to be applied: ``apply_every`` after the last
        write, ``retry`` after the last failed one (the database is away)."""
        return self._tried_at + (self.apply_every if self.database_up else self.retry)

    def _run(self) -> None:
        self._apply()  # whatever an earlier run left in the journal
        while True:
            wait = (max(0.0, self._apply_due() - time.monotonic())
                    if self.journal.entries else None)
            if not self._wake.wait(timeout=wait):
                self._apply()
                continue
            if self._queue and self._queue[0] is not None:
                # what else comes within a few ms goes in the same fsync and transaction
                time.sleep(self.gather)
            self._wake.clear()  # before taking: an entry submitted from now on sets it again
            batch = []
            while self._queue:
                batch.append(self._queue.popleft())
                if batch[-1] is None:
                    break
            items = [b for b in batch if b is not None]
            try:
                if items:
                    self.journal.append(items)
            except OSError:
                log.exception("journal %s: write failed; writing straight to the database",
                              self.journal.path)
                self._direct(items)
            finally:
                with self._idle:
                    self._busy -= len(items)
                    self._idle.notify_all()
            if None in batch:
                self._apply()
                return
            if time.monotonic() >= self._apply_due():
                self._apply()

    def _apply(self) -> None:
        self._tried_at = time.monotonic()
        while self.journal.entries:
            chunk = self.journal.entries[:BATCH]
            try:
                self._apply_chunk(chunk)
            except Exception as exc:
                METRICS.db_error("journal")
                if not _database_down(exc):
                    log.exception("applying the journal failed; will retry")
                if self.database_up:
                    log.error("database unreachable (%s); %d log entries wait in the journal "
                              "and will be replayed", type(exc).__name__, self.pending)
                self.database_up = False
                return
            if not self.database_up:
                log.warning("database back; the journal is being replayed")
            self.database_up = True
            self.journal.applied(chunk[-1].seq)
            with self._idle:
                self._idle.notify_all()

    def _apply_chunk(self, chunk: list[Entry]) -> None:
        try:
            # what this writer last committed is the checkpoint (it is the journal's only
            # writer); read from the database after anything failed, as the commit may or
            # may not have happened
            known, self._committed = self._committed, None
            with self.store.session() as s:
                done = known if known is not None else checkpoint(s, self.journal.journal_id)
                # an entry that cannot be decoded refuses the chunk: applied one by one, it
                # is set aside (below)
                self.codec.apply_all(s, [self.codec.decode(e.op, e.args) for e in chunk
                                         if e.seq > done])
                upto = max(done, chunk[-1].seq)
                _set_checkpoint(s, self.journal.journal_id, upto)
            self._committed = upto
            return
        except Exception as exc:
            if _database_down(exc):
                raise
            log.warning("a batch of %d log entries was refused (%r); applying one by one",
                        len(chunk), exc)
        for entry in chunk:  # find the bad one; apply the rest
            try:
                with self.store.session() as s:
                    if entry.seq > checkpoint(s, self.journal.journal_id):
                        self._apply_entry(s, entry.op, entry.args)
                        _set_checkpoint(s, self.journal.journal_id, entry.seq)
            except Exception as exc:
                if _database_down(exc):
                    raise
                self._reject(entry, exc)
                with self.store.session() as s:
                    _set_checkpoint(s, self.journal.journal_id, entry.seq)

    def _apply_entry(self, session: Session, name: str, args: dict[str, Any]) -> None:
        # an entry that cannot be decoded (an unknown name, a missing argument) is refused
        # like one the database refuses: set aside, the rest applied
        self.codec.apply(session, self.codec.decode(name, args))

    def _reject(self, entry: Entry, exc: Exception) -> None:
        METRICS.db_error("journal_rejected")
        log.error("log entry %d (%s) refused by the database: %r; kept in rejected.jsonl",
                  entry.seq, entry.op, exc)
        with open(self.journal.path.parent / "rejected.jsonl", "a") as f:
            f.write(json.dumps({"seq": entry.seq, "op": entry.op, "args": entry.args,
                                "error": repr(exc)}, default=str) + "\n")

    def _direct(self, items: list[tuple[str, dict[str, Any]]]) -> None:
        """The disk failed: better the database alone than nothing."""
        for op, args in items:
            try:
                with self.store.session() as s:
                    self._apply_entry(s, op, args)
            except Exception:
                log.exception("log entry %s lost: journal and database both failed", op)
