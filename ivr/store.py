"""Database engine, sessions and migrations (Alembic, run programmatically at start-up)."""

from __future__ import annotations

import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, cast

from alembic import command
from alembic.config import Config
from sqlalchemy import (
    Connection,
    Engine,
    Executable,
    Table,
    bindparam,
    create_engine,
    event,
    inspect,
    select,
    text,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from ivr.exceptions import StoreError
from ivr.models import Base, StoreNotice

MIGRATIONS = Path(__file__).parent / "migrations"


def make_engine(url: str) -> Engine:
    """Create an engine; SQLite gets WAL and a busy timeout so the app and the CLI can share it."""
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 30})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        return engine
    return create_engine(url, pool_pre_ping=True)


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


# pg_advisory_xact_lock key: any constant nobody else uses ("VLmigrat" in ASCII)
MIGRATION_LOCK = 0x564C6D6967726174


def _one_migration_at_a_time(conn: Connection) -> None:
    """The app and every CLI command migrate when they start; two at once on a database
    without the newest schema both ran the migration and one failed half-way ("already
    exists"). So the migrating transaction first takes a database-wide lock: the others wait,
    then find the schema current. On SQLite, BEGIN IMMEDIATE also makes the migration one
    transaction (pysqlite would otherwise commit each DDL statement on its own)."""
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK})
    elif conn.dialect.name == "sqlite":
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest migration."""
    cfg = alembic_config(engine.url.render_as_string(hide_password=False))
    try:
        with engine.begin() as conn:
            _one_migration_at_a_time(conn)
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")
    except OperationalError as exc:
        raise StoreError(f"cannot migrate the database {engine.url!r}: {exc.orig}") from exc


def is_migrated(engine: Engine) -> bool:
    return "call" in inspect(engine).get_table_names()


def notices(session: Session) -> list[StoreNotice]:
    """What is wrong with the stored data and needs a person to fix (see StoreNotice)."""
    return list(session.scalars(select(StoreNotice).order_by(StoreNotice.key)))


def insert_new(session: Session, model: type[Base], key: str, **values: Any) -> int | None:
    """INSERT a row unless its unique ``key`` is taken; return the new row's id, or None.

    Why: check-then-insert races when two writers (the app and the CLI, or two app
    processes) create the same row at once; the loser got an IntegrityError and lost its whole
    transaction. ON CONFLICT DO NOTHING waits for the other writer and then yields instead,
    on both backends, without a SAVEPOINT (which pysqlite's transaction handling breaks).
    """
    dialect = session.get_bind().dialect.name
    # the session's pending objects are flushed first, as an ORM statement would
    session.flush()
    new_id: int | None = session.scalar(_insert_new(dialect, model, key, tuple(values)), values)
    return new_id


# (dialect, model, key, columns) -> the statement: built once, as building one (and its cache
# key) cost more CPU than running it, for the two rows each new call opens
_INSERTS: dict[tuple[str, type[Base], str, tuple[str, ...]], Executable] = {}


def _insert_new(dialect: str, model: type[Base], key: str, columns: tuple[str, ...]
                ) -> Executable:
    found = _INSERTS.get((dialect, model, key, columns))
    if found is not None:
        return found
    # the table, not the class: an ORM-enabled INSERT costs ~0.8 ms of CPU in the ORM's bulk
    # machinery for nothing (no object is made)
    table = cast(Table, model.__table__)
    names = {c: bindparam(f"{c}", type_=table.c[c].type) for c in columns}
    if dialect == "postgresql":
        pg = postgresql.insert(table).values(names).on_conflict_do_nothing(index_elements=[key])
        statement: Executable = pg.returning(table.c.id)
    elif dialect == "sqlite":
        lite = sqlite.insert(table).values(names).on_conflict_do_nothing(index_elements=[key])
        statement = lite.returning(table.c.id)
    else:
        raise StoreError(f"unsupported database {dialect!r}: use sqlite or postgresql")
    _INSERTS[(dialect, model, key, columns)] = statement
    return statement


EVENTS_CHANNEL = "verifyline_events"


def notify(session: Session) -> None:
    """Wake the console's live hub: on PostgreSQL a NOTIFY, delivered when (and only if) this
    transaction commits; elsewhere nothing (the hub polls the call_event table)."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_notify(:channel, '')"), {"channel": EVENTS_CHANNEL})


class Store:
    """One engine and its session factory."""

    def __init__(self, url: str) -> None:
        self.engine = make_engine(url)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        # a Store dropped without dispose() (a one-off CLI or test helper) must still close its
        # pooled connections: PostgreSQL server slots are finite, and psycopg warns about a
        # connection that is garbage-collected open
        weakref.finalize(self, self.engine.dispose)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session that commits on success and rolls back on error."""
        with self._sessions() as s, s.begin():
            yield s

    @contextmanager
    def reading(self) -> Iterator[Connection]:
        """A connection for one statement that only reads: no transaction around it (one
        statement is its own snapshot), so on PostgreSQL no BEGIN and COMMIT round trips."""
        with self.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as c:
            yield c

    def migrate(self) -> None:
        migrate(self.engine)

    def dispose(self) -> None:
        self.engine.dispose()
