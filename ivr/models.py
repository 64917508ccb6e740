"""The store's tables: SQLAlchemy 2 typed models. Schema changes go through Alembic migrations."""

from __future__ import annotations

import enum
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Enum,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    text,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.sql.expression import false
from sqlalchemy.types import TypeDecorator

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class OfficerStatus(enum.StrEnum):
    ACTIVE = "active"
    SUSPENDED = "suspended"
    WITHDRAWN = "withdrawn"
    LEFT = "left"


class RosterResult(enum.StrEnum):
    """What the roster says about the number a caller keyed (lab contract values)."""

    ON_DUTY = "on_duty"
    OFF_DUTY = "off_duty"
    RESTRICTED = "restricted"
    UNKNOWN = "unknown"
    NONE_ENTERED = "none_entered"


class CallPath(enum.StrEnum):
    ARI = "ari"
    FALLBACK = "fallback"


class EndReason(enum.StrEnum):
    """Why a call ended (documented in docs/lab.md)."""

    CALLER_HANGUP = "caller_hangup"  # after talking to a supervisor, the caller hung up
    SUPERVISOR_HANGUP = "supervisor_hangup"  # after talking, the supervisor hung up
    CALLER_ABANDONED = "caller_abandoned"  # caller hung up before a supervisor answered
    # a supervisor had answered and was hearing the whisper when the caller hung up
    CALLER_LEFT_DURING_WHISPER = "caller_left_during_whisper"
    NO_SUPERVISOR = "no_supervisor"  # fallback only: nobody answered; told to dial 999
    HANDED_TO_FALLBACK = "handed_to_fallback"  # the app hit an error; dialplan took over
    LOST = "lost"  # the call vanished while the app was away (closed on resync)
    ASTERISK_RESTART = "asterisk_restart"  # Asterisk went down (crash/restart) with the call
    # Asterisk hung the caller up: no RTP from them for VERIFYLINE_RTP_TIMEOUT (gone, no BYE)
    CALLER_CONNECTION_LOST = "caller_connection_lost"


# The SIP From user, i.e. whatever the caller's side sends: no length is guaranteed. SQLite never
# enforced the 80; on PostgreSQL a longer one was refused and the call went unlogged, so there
# the column is text (migration 0006).
CALLER_NUMBER = String(80).with_variant(Text(), "postgresql")


class NaiveDatetimeError(ValueError):
    """A datetime without a UTC offset reached the store: which instant it means is unknown."""


class UtcDateTime(TypeDecorator[datetime]):
    """Every stored time is an instant in UTC, on every backend.

    Why: SQLite has no time zone type; SQLAlchemy wrote an aware value's wall-clock time and
    dropped its offset, which was then read back as UTC (a +05:30 duty window came out 5 h 30
    late). So values are converted to UTC on the way in, a naive one is refused (it has no
    instant), and what comes out is always aware UTC (SQLite hands back naive values).
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if not isinstance(value, datetime):
            raise TypeError(f"expected a datetime, got {type(value).__name__}: {value!r}")
        if value.tzinfo is None or value.utcoffset() is None:
            raise NaiveDatetimeError(
                f"naive datetime {value.isoformat()} given to the store: "
                "give it a UTC offset (ivr.clock.now() is aware UTC)")
        return value.astimezone(UTC)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        assert isinstance(value, datetime)
        if value.tzinfo is None:  # SQLite: stored as UTC by process_bind_param
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def _ts() -> Mapped[datetime | None]:
    return mapped_column(UtcDateTime(), nullable=True)


class Officer(Base):
    __tablename__ = "officer"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    warrant_number: Mapped[str] = mapped_column(String(30), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    rank: Mapped[str] = mapped_column(String(100))
    status: Mapped[OfficerStatus] = mapped_column(
        Enum(OfficerStatus, native_enum=False, length=20,
             values_callable=lambda e: [m.value for m in e])
    )
    on_duty_from: Mapped[datetime | None] = _ts()
    on_duty_until: Mapped[datetime | None] = _ts()
    # shown on the supervisor's screen (roster CSV's optional columns, the console's editor)
    unit: Mapped[str] = mapped_column(String(120), default="", server_default="")
    station: Mapped[str] = mapped_column(String(120), default="", server_default="")
    # a file name under $VERIFYLINE_HOME/photos/, or null
    photo: Mapped[str | None] = mapped_column(String(200), nullable=True)


class Supervisor(Base):
    """A desk phone in the operations room and the supervisor who answers it."""

    __tablename__ = "supervisor"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    desk: Mapped[str] = mapped_column(String(80), unique=True)
    display_name: Mapped[str] = mapped_column(String(200), default="")
    idle_since: Mapped[datetime | None] = _ts()
    # availability the supervisor (or the line) chose; survives an app restart
    paused: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    signed_out: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    pause_reason: Mapped[str] = mapped_column(String(40), default="", server_default="")
    # the console user who took this desk (screen-pop, outcome); null: a phone-only desk
    console_user: Mapped[str | None] = mapped_column(String(80), nullable=True)
    console_since: Mapped[datetime | None] = _ts()
    # what the line last said about the desk (DeskState values), for the dashboard
    state: Mapped[str] = mapped_column(String(20), default="unknown", server_default="unknown")
    state_since: Mapped[datetime | None] = _ts()
    # the call whose outcome the desk still owes (VERIFYLINE_OUTCOME_REQUIRED): while set the
    # line offers the desk no call; the outcome (or an admin's release) clears it
    wrapup_channel: Mapped[str | None] = mapped_column(String(150), nullable=True)
    # the last call the desk answered that has ended (tells the line its wrap-up was written)
    last_channel: Mapped[str | None] = mapped_column(String(150), nullable=True)


class EncounterKind(enum.StrEnum):
    CALL = "call"  # opened by a caller's call (the reference they were read)
    DEVICE = "device"  # pre-registered by the officer's device (API), before anyone called


class Encounter(Base):
    """A member of the public meeting an officer; calls about it are logged against it."""

    __tablename__ = "encounter"
    # an officer's open pre-registration (asked at every lookup): past calls' encounters,
    # never closed, are passed over by kind
    __table_args__ = (Index("ix_encounter_officer_open", "officer_id", "kind", "closed_at",
                            "opened_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    reference: Mapped[str] = mapped_column(String(12), unique=True)
    officer_id: Mapped[int | None] = mapped_column(ForeignKey("officer.id"), nullable=True)
    caller_number: Mapped[str | None] = mapped_column(CALLER_NUMBER, nullable=True)
    opened_at: Mapped[datetime] = mapped_column(UtcDateTime())
    kind: Mapped[str] = mapped_column(String(10), default=EncounterKind.CALL.value,
                                      server_default=EncounterKind.CALL.value)
    # a pre-registration's: where, why, from which device; closed by the device (or on expiry)
    place: Mapped[str | None] = mapped_column(Text, nullable=True)
    latitude: Mapped[float | None] = mapped_column(Float, nullable=True)
    longitude: Mapped[float | None] = mapped_column(Float, nullable=True)
    purpose: Mapped[str | None] = mapped_column(Text, nullable=True)
    # device_token.id (no foreign key: adding one would make SQLite copy the table)
    device_token_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    closed_at: Mapped[datetime | None] = _ts()

    officer: Mapped[Officer | None] = relationship()
    calls: Mapped[list[Call]] = relationship(back_populates="encounter")


_result_enum = Enum(
    RosterResult, native_enum=False, length=20, values_callable=lambda e: [m.value for m in e]
)


class Call(Base):
    __tablename__ = "call"
    # the console's encounter search filters by these and orders by started_at; the rate
    # count of a lookup reads a caller's calls since a time; resync and the dashboard read the
    # calls still open (a partial index: only those rows are in it)
    __table_args__ = (Index("ix_call_started_at", "started_at"),
                      Index("ix_call_caller_number", "caller_number", "started_at"),
                      Index("ix_call_open", "id", sqlite_where=text("ended_at IS NULL"),
                            postgresql_where=text("ended_at IS NULL")),
                      Index("ix_call_digits_entered", "digits_entered", "started_at"),
                      Index("ix_call_outcome", "outcome", "started_at"),
                      Index("ix_call_supervisor_id", "supervisor_id", "started_at"),
                      Index("ix_call_encounter_id", "encounter_id"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # Asterisk's uniqueid of the caller's channel: ties ARI events and fallback spool lines
    # to exactly one row.
    channel_id: Mapped[str] = mapped_column(String(150), unique=True)
    # the reference the caller was read: their encounter's, unless the call was attached to
    # an officer's pre-registered encounter (then that encounter has its own)
    reference: Mapped[str] = mapped_column(String(14), index=True, default="",
                                           server_default="")
    encounter_id: Mapped[int] = mapped_column(ForeignKey("encounter.id"))
    caller_number: Mapped[str | None] = mapped_column(CALLER_NUMBER, nullable=True)
    digits_entered: Mapped[str] = mapped_column(String(80), default="")
    roster_result: Mapped[RosterResult | None] = mapped_column(_result_enum, nullable=True)
    supervisor_id: Mapped[int | None] = mapped_column(ForeignKey("supervisor.id"), nullable=True)
    started_at: Mapped[datetime] = mapped_column(UtcDateTime())
    answered_at: Mapped[datetime | None] = _ts()
    ended_at: Mapped[datetime | None] = _ts()
    end_reason: Mapped[str | None] = mapped_column(String(40), nullable=True)
    path: Mapped[CallPath] = mapped_column(
        Enum(CallPath, native_enum=False, length=10, values_callable=lambda e: [m.value for m in e])
    )
    # comma-separated: many_lookups, emergency, asked_for_supervisor
    flags: Mapped[str] = mapped_column(String(200), default="", server_default="")
    language: Mapped[str] = mapped_column(String(8), default="en", server_default="en")
    # name of the conversation's recording (Asterisk: <spool>/recording/<name>.wav)
    recording: Mapped[str | None] = mapped_column(String(200), nullable=True)
    # where the state machine stood, so a restarted app can find and continue the call
    state: Mapped[str] = mapped_column(String(40), default="new")
    desk_channel_id: Mapped[str | None] = mapped_column(String(150), nullable=True)
    bridge_id: Mapped[str | None] = mapped_column(String(150), nullable=True)
    # the latest entry of the call's outcomes (CallOutcome), kept here for the search
    outcome: Mapped[str | None] = mapped_column(String(30), nullable=True)

    encounter: Mapped[Encounter] = relationship(back_populates="calls")
    supervisor: Mapped[Supervisor | None] = relationship()
    events: Mapped[list[CallEvent]] = relationship(
        back_populates="call", order_by="CallEvent.id"
    )


class CallEvent(Base):
    """Append-only timeline of one call: every key, prompt, ring, answer and hang-up."""

    __tablename__ = "call_event"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    call_id: Mapped[int] = mapped_column(ForeignKey("call.id"), index=True)
    at: Mapped[datetime] = mapped_column(UtcDateTime())
    kind: Mapped[str] = mapped_column(String(40))
    detail: Mapped[dict[str, object]] = mapped_column(JSON, default=dict)

    call: Mapped[Call] = relationship(back_populates="events")



class Callback(Base):
    """A caller who hung up before a supervisor answered: someone should call them back."""

    __tablename__ = "callback"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    call_id: Mapped[int] = mapped_column(ForeignKey("call.id"), unique=True)
    caller_number: Mapped[str | None] = mapped_column(CALLER_NUMBER, nullable=True)
    reference: Mapped[str] = mapped_column(String(12))
    digits_entered: Mapped[str] = mapped_column(String(80), default="")
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    done_at: Mapped[datetime | None] = _ts()
    done_by: Mapped[str | None] = mapped_column(String(80), nullable=True)


class JournalCheckpoint(Base):
    """How far the database has applied one local journal (see ivr.journal): updated in the
    same transaction as the entries it counts, so each entry is applied exactly once."""

    __tablename__ = "journal_checkpoint"

    journal_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    seq: Mapped[int] = mapped_column(Integer)


class StoreNotice(Base):
    """Something wrong with the stored data that only a person can repair (``verifyline
    doctor`` reports each as FAIL with its fix); whatever repairs it deletes the row."""

    __tablename__ = "store_notice"

    key: Mapped[str] = mapped_column(String(40), primary_key=True)
    detail: Mapped[str] = mapped_column(Text)
    fix: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())


class Outcome(enum.StrEnum):
    """What the supervisor concluded (the console's outcome form, docs/console.md)."""

    VERIFIED = "verified"
    NOT_VERIFIED = "not_verified"
    ESCALATED = "escalated"  # the officer's conduct was escalated
    ADVICE_GIVEN = "advice_given"
    CALLER_LEFT = "caller_left"  # the caller left before verification


class CallOutcome(Base):
    """Append-only: each outcome a supervisor recorded for a call; a correction is a new
    row (the latest is the call's outcome, copied to ``call.outcome``)."""

    __tablename__ = "call_outcome"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    call_id: Mapped[int] = mapped_column(ForeignKey("call.id"), index=True)
    at: Mapped[datetime] = mapped_column(UtcDateTime())
    outcome: Mapped[str] = mapped_column(String(30))
    note: Mapped[str] = mapped_column(Text, default="", server_default="")
    by_user: Mapped[str] = mapped_column(String(80))
    desk: Mapped[str | None] = mapped_column(String(80), nullable=True)


class Role(enum.StrEnum):
    SUPERVISOR = "supervisor"  # answers calls, records outcomes
    ADMIN = "admin"  # also roster, users, device tokens, releasing desks
    AUDITOR = "auditor"  # reads everything and the audit log, changes nothing


class User(Base):
    """A console account."""

    __tablename__ = "console_user"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(80), unique=True)
    display_name: Mapped[str] = mapped_column(String(200), default="", server_default="")
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(20))
    disabled: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    last_login_at: Mapped[datetime | None] = _ts()


class LoginFailure(Base):
    """A failed sign-in, for throttling per account and per address across every worker."""

    __tablename__ = "login_failure"
    __table_args__ = (Index("ix_login_failure_username", "username", "at"),
                      Index("ix_login_failure_address", "address", "at"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(UtcDateTime())
    username: Mapped[str] = mapped_column(String(80))
    address: Mapped[str] = mapped_column(String(64))


class AuditEntry(Base):
    """Who did or saw what, when: every view of an encounter, recording or officer record,
    every change (with before/after). Append-only."""

    __tablename__ = "audit"
    __table_args__ = (Index("ix_audit_at", "at"), Index("ix_audit_actor", "actor", "at"),
                      Index("ix_audit_target", "target", "at"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(UtcDateTime())
    actor: Mapped[str] = mapped_column(String(80))  # a username, "cli", or "token:<prefix>"
    action: Mapped[str] = mapped_column(String(40))
    target: Mapped[str] = mapped_column(String(120), default="", server_default="")
    address: Mapped[str] = mapped_column(String(64), default="", server_default="")
    detail: Mapped[dict[str, object]] = mapped_column(JSON, default=dict)


class DeviceToken(Base):
    """An officer's device's bearer token for the pre-registration API (only its SHA-256 is
    kept; the token itself is shown once, when created)."""

    __tablename__ = "device_token"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(12))  # the token's first characters, to tell
    officer_id: Mapped[int] = mapped_column(ForeignKey("officer.id"))
    label: Mapped[str] = mapped_column(String(120), default="", server_default="")
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    created_by: Mapped[str] = mapped_column(String(80))
    revoked_at: Mapped[datetime | None] = _ts()
    last_used_at: Mapped[datetime | None] = _ts()

    officer: Mapped[Officer] = relationship()


class ConsoleCommand(Base):
    """A request from the console that only the line can carry out (e.g. call a caller back
    from a desk): the app claims it (claimed_at) and writes what happened (done_at, result)."""

    __tablename__ = "console_command"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(UtcDateTime())
    kind: Mapped[str] = mapped_column(String(20))  # "callback"
    desk: Mapped[str] = mapped_column(String(80))
    callback_id: Mapped[int | None] = mapped_column(ForeignKey("callback.id"), nullable=True)
    requested_by: Mapped[str] = mapped_column(String(80))
    claimed_at: Mapped[datetime | None] = _ts()
    done_at: Mapped[datetime | None] = _ts()
    result: Mapped[str] = mapped_column(String(200), default="", server_default="")
