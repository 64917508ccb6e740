"""The audit log: who did or saw what, and when (append-only; auditors search it)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ivr.clock import iso, now
from ivr.models import AuditEntry


def record(session: Session, actor: str, action: str, target: str = "", address: str = "",
           detail: Mapping[str, object] | None = None) -> None:
    session.add(AuditEntry(at=now(), actor=actor[:80], action=action[:40],
                           target=target[:120], address=address[:64],
                           detail=dict(detail or {})))


def search(session: Session, actor: str | None = None, action: str | None = None,
           target: str | None = None, since: datetime | None = None,
           until: datetime | None = None, page: int = 1, per_page: int = 50
           ) -> tuple[list[dict[str, Any]], int]:
    """Entries newest first matching every filter given, and how many match in all."""
    query = select(AuditEntry)
    if actor:
        query = query.where(AuditEntry.actor == actor)
    if action:
        query = query.where(AuditEntry.action == action)
    if target:
        query = query.where(AuditEntry.target == target)
    if since is not None:
        query = query.where(AuditEntry.at >= since)
    if until is not None:
        query = query.where(AuditEntry.at < until)
    total = int(session.scalar(select(func.count()).select_from(query.subquery())) or 0)
    rows = session.scalars(query.order_by(AuditEntry.at.desc(), AuditEntry.id.desc())
                           .offset((max(page, 1) - 1) * per_page).limit(per_page))
    return [{"id": e.id, "at": iso(e.at), "actor": e.actor, "action": e.action,
             "target": e.target, "address": e.address, "detail": e.detail}
            for e in rows], total
