"""Retention: how long the line keeps what identifies a caller (``verifyline purge``).

Two periods (docs/operations.md, "Retention and privacy", gives the defaults' reasoning):

- a caller's number is replaced by its keyed hash ``VERIFYLINE_RETAIN_CALLER_NUMBER_DAYS``
  after the call, everywhere the line keeps it: the call row, its encounter, the callback
  list, the call's timeline (the ``started`` event's detail) and the audit log (a console
  search exported by number);
- a conversation's recording is deleted ``VERIFYLINE_RETAIN_RECORDINGS_DAYS`` after the call:
  the file, the row's reference to it (the timeline says when and why it went), and any
  recording file of ours older than that which no row names.

The timelines, encounters, outcomes and the audit log themselves are kept: "the encounter is
properly recorded" outlives the caller's number.

The hash is HMAC-SHA256 under a secret key (``VERIFYLINE_RETENTION_KEY``, or one generated
and kept under the home). A plain SHA-256 of a UK phone number could be reversed by hashing
every number there is (about 10^9 mobile numbers: minutes on a laptop); with the key it
cannot, yet the same number still gives the same hash, so repeated calls from one number stay
linked and the console's search by a number still finds that number's hashed calls.

Every run is idempotent (a hashed number is never hashed again, a deleted recording is gone)
and commits in batches, so one interrupted is finished by the next. ``purge`` with
``dry_run`` only counts.
"""

from __future__ import annotations

import fcntl
import hashlib
import hmac
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, cast

from sqlalchemy import ColumnElement, Table, bindparam, insert, select, text, update
from sqlalchemy.orm import InstrumentedAttribute, Session

from ivr import audit, callers
from ivr.clock import iso
from ivr.exceptions import VerifyLineError
from ivr.models import AuditEntry, Call, Callback, CallEvent, Encounter
from ivr.store import Store

BATCH = 500  # rows per transaction
AUDIT_ACTOR = "system:purge"
AUDIT_ACTION = "retention_purge"
# audit entries whose detail may hold a caller's number, and under which keys
AUDIT_NUMBER_FIELDS: dict[str, tuple[str, ...]] = {"export_encounters": ("caller",)}
# the recordings the line makes (ivr.callflow: verifyline-<reference>-<channel>.wav); the
# sweep of files no row names touches nothing else in the folder
RECORDING_GLOB = "verifyline-*.wav"
# pg_try_advisory_lock key: one purge at a time across hosts sharing a database ("VLpurge!")
PURGE_LOCK = 0x564C707572676521
LISTED = 20  # recordings named in a report


class PurgeBusy(VerifyLineError):
    """Another purge is running (this host's lock file, or the database's advisory lock)."""


def caller_hash(key: str, number: str) -> str:
    """The keyed hash that replaces a caller's number (``hmac-sha256:<64 hex>``)."""
    digest = hmac.new(key.encode(), number.encode(), hashlib.sha256).hexdigest()
    return callers.HASH_PREFIX + digest


def pseudonym(key: str, raw: str | None) -> str | None:
    """What a stored number becomes: its hash; None when it is no number (withheld); a hash
    unchanged."""
    number = callers.caller_number(raw)
    if number is None or callers.is_hashed(number):
        return number
    return caller_hash(key, number)


@dataclass(frozen=True)
class Policy:
    """The two periods, in days."""

    caller_number_days: int
    recordings_days: int

    def cutoffs(self, at: datetime) -> tuple[datetime, datetime]:
        """(numbers of calls started before this are hashed, recordings before this go)."""
        return (at - timedelta(days=self.caller_number_days),
                at - timedelta(days=self.recordings_days))


@dataclass
class PurgeReport:
    """What a run changed (or, dry, would change)."""

    dry_run: bool
    at: str | None
    caller_number_days: int
    recordings_days: int
    numbers_before: str | None
    recordings_before: str | None
    calls_hashed: int = 0
    encounters_hashed: int = 0
    callbacks_hashed: int = 0
    events_hashed: int = 0
    audit_entries_hashed: int = 0
    recordings_deleted: int = 0  # rows whose recording went (file deleted or already gone)
    recording_files_deleted: int = 0
    orphan_files_deleted: int = 0  # old files of ours no row named
    recordings: list[str] = field(default_factory=list)  # the first LISTED names
    # writes the database refused, kept in the journal's rejected.jsonl for a person to
    # repair: they hold call data, numbers included, which no period reaches (reported only)
    rejected_writes: int = 0

    @property
    def changes(self) -> int:
        return (self.calls_hashed + self.encounters_hashed + self.callbacks_hashed
                + self.events_hashed + self.audit_entries_hashed + self.recordings_deleted
                + self.orphan_files_deleted)

    def counts(self) -> dict[str, int]:
        return {k: v for k, v in asdict(self).items() if isinstance(v, int)
                and not isinstance(v, bool) and not k.endswith("_days")}

    def as_json(self) -> dict[str, Any]:
        return {**asdict(self), "changes": self.changes}


def _not_hashed(column: InstrumentedAttribute[str | None]) -> ColumnElement[bool]:
    return column.is_not(None) & ~column.startswith(callers.HASH_PREFIX, autoescape=True)


def _rewrite(value: object, raw: str, number: str | None, token: str | None) -> object:
    """``value`` with every string equal to the stored or the normalised number replaced."""
    if isinstance(value, str):
        return token if value in (raw, number) else value
    if isinstance(value, dict):
        return {k: _rewrite(v, raw, number, token) for k, v in value.items()}
    if isinstance(value, list):
        return [_rewrite(v, raw, number, token) for v in value]
    return value


class _Purge:
    def __init__(self, store: Store, policy: Policy, key: str, recordings_dir: Path,
                 at: datetime, dry_run: bool) -> None:
        self.store, self.key, self.dir, self.dry = store, key, recordings_dir, dry_run
        self.numbers_before, self.recordings_before = policy.cutoffs(at)
        self.report = PurgeReport(
            dry_run=dry_run, at=iso(at), caller_number_days=policy.caller_number_days,
            recordings_days=policy.recordings_days, numbers_before=iso(self.numbers_before),
            recordings_before=iso(self.recordings_before))
        self.at = at

    # --- numbers ---------------------------------------------------------------------------

    def numbers(self) -> None:
        r = self.report
        r.calls_hashed, r.events_hashed = self._rows(Call.id, Call.caller_number,
                                                     Call.started_at, events=True)
        r.encounters_hashed, _ = self._rows(Encounter.id, Encounter.caller_number,
                                            Encounter.opened_at)
        r.callbacks_hashed, _ = self._rows(Callback.id, Callback.caller_number,
                                           Callback.created_at)
        r.audit_entries_hashed = self._audit()

    def _rows(self, key: InstrumentedAttribute[int], column: InstrumentedAttribute[str | None],
              when: InstrumentedAttribute[datetime], events: bool = False) -> tuple[int, int]:
        """Hash ``column`` in the rows older than the cutoff, in primary-key order, a batch
        per transaction (one pass over the table, each batch a range of its primary key);
        with ``events``, the calls' timelines too. Return (rows, events) changed."""
        old = (when < self.numbers_before) & _not_hashed(column)
        table = cast(Table, key.class_.__table__)
        by_id = (update(table).where(table.c[key.key] == bindparam("row_id"))
                 .values({column.key: bindparam("token")}))
        changed = n_events = after = 0
        while True:
            with self.store.session() as s:
                rows = list(s.execute(select(key, column).where(old, key > after)
                                      .order_by(key).limit(BATCH)))
                tokens = {row_id: (raw, pseudonym(self.key, raw) if self.key else None)
                          for row_id, raw in rows}
                changed += len(rows)
                if events and rows:
                    n_events += self._events(s, tokens)
                if rows and not self.dry:
                    s.execute(by_id, [{"row_id": row_id, "token": token}
                                      for row_id, (_, token) in tokens.items()])
            if len(rows) < BATCH:
                return changed, n_events
            after = rows[-1][0]

    def _events(self, s: Session, tokens: dict[int, tuple[str | None, str | None]]) -> int:
        """Hash the numbers in these calls' timelines (call id -> (stored number, hash))."""
        changed = []
        for event_id, call_id, detail in s.execute(
                select(CallEvent.id, CallEvent.call_id, CallEvent.detail)
                .where(CallEvent.call_id.in_(list(tokens)))):
            raw, token = tokens[call_id]
            assert raw is not None
            new = _rewrite(detail, raw, callers.caller_number(raw), token)
            if new != detail:
                changed.append({"event_id": event_id, "detail": new})
        if changed and not self.dry:
            table = cast(Table, CallEvent.__table__)
            s.execute(update(table).where(table.c.id == bindparam("event_id"))
                      .values(detail=bindparam("detail", type_=table.c.detail.type)), changed)
        return len(changed)

    def _audit(self) -> int:
        """Hash the numbers in the details of old audit entries that may hold one (an entry's
        other fields, and its being there, are kept)."""
        changed = 0
        with self.store.session() as s:
            for entry in s.scalars(select(AuditEntry).where(
                    AuditEntry.at < self.numbers_before,
                    AuditEntry.action.in_(list(AUDIT_NUMBER_FIELDS)))):
                detail = dict(entry.detail)
                for name in AUDIT_NUMBER_FIELDS[entry.action]:
                    value = detail.get(name)
                    if isinstance(value, str) and callers.caller_number(value) is not None:
                        token = pseudonym(self.key, value) if self.key else None
                        if token != value:
                            detail[name] = token
                if detail != entry.detail:
                    changed += 1
                    if not self.dry:
                        entry.detail = detail
        return changed

    # --- recordings ------------------------------------------------------------------------

    def _file(self, name: str) -> Path | None:
        """The recording's file, or None when the name could point outside the folder."""
        if not name or "/" in name or "\\" in name or ".." in name:
            return None
        return self.dir / f"{name}.wav"

    def recordings(self) -> None:
        r = self.report
        old = Call.recording.is_not(None) & (Call.started_at < self.recordings_before)
        after = 0
        while True:
            with self.store.session() as s:
                rows = list(s.execute(select(Call.id, Call.recording).where(old, Call.id > after)
                                      .order_by(Call.id).limit(BATCH)))
                events = []
                for call_id, name in rows:
                    assert name is not None
                    path = self._file(name)
                    exists = path is not None and path.is_file()
                    r.recordings_deleted += 1
                    r.recording_files_deleted += int(exists)
                    if len(r.recordings) < LISTED:
                        r.recordings.append(name)
                    # the file first: a crash before the commit leaves a row naming a file
                    # that is gone, which the next run clears; never a file nobody names
                    if path is not None and not self.dry:
                        path.unlink(missing_ok=True)
                    events.append({"call_id": call_id, "at": self.at, "kind": "recording_deleted",
                                   "detail": {"name": name, "by": "retention",
                                              "file": "deleted" if exists else "missing",
                                              "after_days": r.recordings_days}})
                if events and not self.dry:
                    s.execute(update(Call).where(Call.id.in_([e["call_id"] for e in events]))
                              .values(recording=None)
                              .execution_options(synchronize_session=False))
                    s.execute(insert(cast(Table, CallEvent.__table__)), events)
            if len(rows) < BATCH:
                break
            after = rows[-1][0]
        self._orphans()

    def _orphans(self) -> None:
        """Our recording files older than the period that no row names (a call whose row
        never learnt its recording's name): deleted too, by their modification time."""
        if not self.dir.is_dir():
            return
        named: set[str] = set()
        before = self.recordings_before.timestamp()
        old = [p for p in self.dir.glob(RECORDING_GLOB)
               if p.is_file() and p.stat().st_mtime < before]
        if not old:
            return
        with self.store.session() as s:
            stems = [p.stem for p in old]
            for i in range(0, len(stems), BATCH):
                named.update(n for n in s.scalars(select(Call.recording).where(
                    Call.recording.in_(stems[i:i + BATCH]))) if n is not None)
        for path in old:
            if path.stem in named:
                continue  # a row still names it (a newer call, or a dry run): not an orphan
            self.report.orphan_files_deleted += 1
            if len(self.report.recordings) < LISTED:
                self.report.recordings.append(path.stem)
            if not self.dry:
                path.unlink(missing_ok=True)

    def audited(self, run_by: str) -> None:
        with self.store.session() as s:
            audit.record(s, AUDIT_ACTOR, AUDIT_ACTION, "retention", detail={
                "run_by": run_by,
                "caller_number_days": self.report.caller_number_days,
                "recordings_days": self.report.recordings_days,
                "numbers_before": self.report.numbers_before,
                "recordings_before": self.report.recordings_before,
                **self.report.counts()})


@contextmanager
def one_at_a_time(store: Store, lock_file: Path) -> Iterator[None]:
    """Hold this host's lock file and, on PostgreSQL, a database-wide advisory lock (two
    hosts' timers sharing one database); PurgeBusy when another purge holds either."""
    lock_file.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock_file, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
            raise PurgeBusy(f"another purge is running (pid {holder}, lock {lock_file}): "
                            "nothing done") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        if store.engine.dialect.name != "postgresql":
            yield
            return
        with store.engine.connect() as conn:
            if not conn.scalar(text("SELECT pg_try_advisory_lock(:k)"), {"k": PURGE_LOCK}):
                raise PurgeBusy("another purge is running on this database (another host's "
                                "timer?): nothing done")
            try:
                conn.commit()
                yield
            finally:
                conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": PURGE_LOCK})
                conn.commit()
    finally:
        os.close(fd)  # releases the flock


def purge(store: Store, policy: Policy, key: str, recordings_dir: Path, at: datetime,
          *, lock_file: Path, dry_run: bool = False, run_by: str = "",
          rejected_writes: int = 0) -> PurgeReport:
    """Hash the numbers and delete the recordings older than their periods (``at`` minus the
    days); with ``dry_run`` count them and write nothing. A real run holds ``lock_file`` (and
    the database's lock) and is audited (``retention_purge``, by ``system:purge``)."""
    if at.tzinfo is None:
        raise ValueError("purge: give `at` a UTC offset")
    run = _Purge(store, policy, key, recordings_dir, at, dry_run)
    run.report.rejected_writes = rejected_writes
    if dry_run:
        run.numbers()
        run.recordings()
        return run.report
    if not key:
        raise VerifyLineError("purge: the retention key is empty (VERIFYLINE_RETENTION_KEY)")
    with one_at_a_time(store, lock_file):
        run.numbers()
        run.recordings()
        run.audited(run_by)
    return run.report
