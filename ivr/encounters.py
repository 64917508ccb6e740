"""Encounters: a caller's call opens one; an officer's device may pre-register one before
anyone calls (kind 'device'), and a call about that officer while it is open is logged
against it."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, ScalarSelect, bindparam, select
from sqlalchemy.orm import InstrumentedAttribute, Session

from ivr.models import Encounter, EncounterKind

# how long a pre-registered encounter stays open for calls about its officer
PREREGISTRATION_HOURS = 12
OPEN_FOR = timedelta(hours=PREREGISTRATION_HOURS)


def open_device_encounter(session: Session, officer_id: int, at: datetime
                          ) -> Encounter | None:
    """The officer's open pre-registered encounter at ``at`` (not closed, opened less than
    :data:`PREREGISTRATION_HOURS` before it), the newest first; None when there is none.
    The one rule for "open": the API (ivr.preregistration) and the line's attach both ask it."""
    return session.scalars(select(Encounter).where(*_open_device(officer_id, at))
                           .order_by(*_NEWEST)).first()


_NEWEST = (Encounter.opened_at.desc(), Encounter.id.desc())


def open_device_reference_column(officer_id: InstrumentedAttribute[int]) -> ScalarSelect[str]:
    """The reference of :func:`open_device_encounter`'s encounter, as a column of a statement
    that asks more at once (the line's lookup needs no more than that one column): the officer
    is ``officer_id`` (a column of that statement), the instant b_at and its window's start
    b_opened_after (:func:`opened_after`)."""
    instant = Encounter.opened_at.type
    rule = _open_device_rule(officer_id, bindparam("b_at", type_=instant),
                             bindparam("b_opened_after", type_=instant))
    return (select(Encounter.reference).where(*rule).order_by(*_NEWEST).limit(1)
            .scalar_subquery())


def opened_after(at: datetime) -> datetime:
    """An encounter open at ``at`` was opened after this."""
    return at - OPEN_FOR


def _open_device(officer_id: int, at: datetime) -> tuple[ColumnElement[bool], ...]:
    """The one rule for an officer's open pre-registered encounter at ``at``."""
    return _open_device_rule(officer_id, at, opened_after(at))


def _open_device_rule(officer_id: Any, at: Any, after: Any) -> tuple[ColumnElement[bool], ...]:
    return (Encounter.officer_id == officer_id, Encounter.kind == EncounterKind.DEVICE.value,
            Encounter.closed_at.is_(None), Encounter.opened_at > after,
            Encounter.opened_at <= at)
