"""Backups and restore of the PostgreSQL database (docs/operations.md, "Backups and restore"):
the documented ``pg_dump --format=custom`` of a line's database with calls, their timelines
and the audit log, restored with ``pg_restore`` into a fresh database, gives back every row,
and the schema is at Alembic's head there (the app starts on it without migrating).

It runs on the suite's throwaway PostgreSQL server (tests/pgcluster.py; the end-to-end suite
runs on PostgreSQL, so the server is already up) with Debian's client tools of that server's
version; no Asterisk is needed.
"""

from __future__ import annotations

import subprocess
from datetime import timedelta
from pathlib import Path

from alembic.script import ScriptDirectory
from sqlalchemy import func, select, text

from ivr.clock import now
from ivr.models import AuditEntry, Call, CallEvent, CallPath, Encounter, EncounterKind
from ivr.store import Store, alembic_config
from tests.pgcluster import SUPERUSER, PgCluster


def _line_with_calls(url: str, calls: int) -> None:
    store = Store(url)
    store.migrate()
    with store.session() as s:
        for i in range(calls):
            at = now() - timedelta(minutes=10 * (calls - i))
            enc = Encounter(reference=f"7{i:07d}", opened_at=at, kind=EncounterKind.CALL.value)
            s.add(enc)
            s.flush()
            call = Call(channel_id=f"backup-{i}", reference=enc.reference, encounter_id=enc.id,
                        caller_number=f"0770090{i:04d}", digits_entered="123456",
                        started_at=at, ended_at=at + timedelta(seconds=40),
                        end_reason="caller_hangup", path=CallPath.ARI, state="ended")
            s.add(call)
            s.flush()
            s.add_all(CallEvent(call_id=call.id, at=at + timedelta(seconds=k), kind=kind,
                                detail={"n": k}) for k, kind in
                      enumerate(("started", "digit", "bridged", "ended")))
        s.add(AuditEntry(at=now(), actor="cli", action="roster_import", detail={"rows": 3}))
    store.dispose()


def _rows(url: str) -> dict[str, list[tuple[object, ...]]]:
    store = Store(url)
    try:
        with store.session() as s:
            return {
                "call": [tuple(r) for r in s.execute(select(
                    Call.id, Call.channel_id, Call.reference, Call.caller_number,
                    Call.started_at, Call.ended_at, Call.end_reason).order_by(Call.id))],
                "call_event": [tuple(r) for r in s.execute(select(
                    CallEvent.id, CallEvent.call_id, CallEvent.at, CallEvent.kind,
                    CallEvent.detail).order_by(CallEvent.id))],
                "audit": [(s.scalar(select(func.count()).select_from(AuditEntry)),)],
            }
    finally:
        store.dispose()


def _client(cluster: PgCluster, tool: str, *args: str) -> None:
    # the documented command lines, as the database's owner (trust on loopback here; a real
    # host uses ~/.pgpass or PGPASSFILE)
    subprocess.run([str(cluster.bin / tool), "-h", "127.0.0.1", "-p", str(cluster.port),
                    "-U", SUPERUSER, *args], check=True, capture_output=True, timeout=60)


def test_given_a_line_with_calls_when_dumped_and_restored_into_a_fresh_database_then_every_row_is_back(  # noqa: E501
        pg_cluster: PgCluster, tmp_path: Path) -> None:
    source = pg_cluster.create_database("backup_source")
    target = "backup_restored"
    try:
        _line_with_calls(source, calls=20)
        dump = tmp_path / "verifyline.dump"

        _client(pg_cluster, "pg_dump", "--format=custom", "--file", str(dump),
                "backup_source")
        pg_cluster.create_database(target)
        _client(pg_cluster, "pg_restore", "--no-owner", "--exit-on-error",
                "--dbname", target, str(dump))

        before, after = _rows(source), _rows(pg_cluster.url(target))
        assert len(before["call"]) == 20 and len(before["call_event"]) == 80
        assert after == before
        store = Store(pg_cluster.url(target))
        try:
            scripts = ScriptDirectory.from_config(alembic_config(pg_cluster.url(target)))
            head = scripts.get_current_head()
            with store.engine.connect() as conn:
                version = conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
            assert version == head
            # the restored database takes new calls: its id sequences came back too
            with store.session() as s:
                enc = Encounter(reference="79999999", opened_at=now(),
                                kind=EncounterKind.CALL.value)
                s.add(enc)
                s.flush()
                call = Call(channel_id="after-restore", reference=enc.reference,
                            encounter_id=enc.id, started_at=now(), path=CallPath.ARI,
                            state="ended")
                s.add(call)
                s.flush()
                assert call.id == len(before["call"]) + 1
        finally:
            store.dispose()
    finally:
        pg_cluster.drop_database("backup_source")
        pg_cluster.drop_database(target)
