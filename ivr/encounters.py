"""Encounters: a caller's call opens one; an officer's device may pre-register one before
anyone calls (kind 'device'), and a call about that officer while it is open is logged
against it."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from ivr.models import Encounter, EncounterKind

# how long a pre-registered encounter stays open for calls about its officer
PREREGISTRATION_HOURS = 12


def open_device_encounter(session: Session, officer_id: int, at: datetime
                          ) -> Encounter | None:
    """The officer's open pre-registered encounter at ``at`` (not closed, opened within
    :data:`PREREGISTRATION_HOURS` before it), the newest first; None when there is none."""
    since = at - timedelta(hours=PREREGISTRATION_HOURS)
    return session.scalars(
        select(Encounter).where(
            Encounter.officer_id == officer_id, Encounter.kind == EncounterKind.DEVICE.value,
            Encounter.closed_at.is_(None), Encounter.opened_at >= since,
            Encounter.opened_at <= at)
        .order_by(Encounter.opened_at.desc(), Encounter.id.desc())).first()
