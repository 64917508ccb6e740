"""Encounters: a caller's call opens one; an officer's device may pre-register one before
anyone calls (kind 'device'), and a call about that officer while it is open is logged
against it."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, select
from sqlalchemy.orm import Session

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


def open_device_reference(session: Session, officer_id: int, at: datetime) -> str | None:
    """The reference of :func:`open_device_encounter`'s encounter (the line's lookup needs
    no more: one column, not the ORM object)."""
    return session.scalar(select(Encounter.reference).where(*_open_device(officer_id, at))
                          .order_by(*_NEWEST).limit(1))


_NEWEST = (Encounter.opened_at.desc(), Encounter.id.desc())


def _open_device(officer_id: int, at: datetime) -> tuple[ColumnElement[bool], ...]:
    """The one rule for an officer's open pre-registered encounter at ``at``."""
    return (Encounter.officer_id == officer_id, Encounter.kind == EncounterKind.DEVICE.value,
            Encounter.closed_at.is_(None), Encounter.opened_at > at - OPEN_FOR,
            Encounter.opened_at <= at)
