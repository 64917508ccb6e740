"""Device tokens: an officer's device's bearer token for the pre-registration API.

Only the token's SHA-256 (hex) and its first characters are stored: the token itself is
shown once, when it is created, and cannot be recovered from the database.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from ivr.clock import iso, now
from ivr.exceptions import ConsoleError
from ivr.models import DeviceToken, Officer, OfficerStatus

PREFIX_LENGTH = 8
MAX_LABEL = 120


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class TokenView:
    """A device token as the console and the CLI list it (never the token itself)."""

    id: int
    prefix: str
    officer_id: int
    warrant_number: str
    officer_label: str
    label: str
    created_at: datetime
    created_by: str
    revoked_at: datetime | None
    last_used_at: datetime | None

    @property
    def actor(self) -> str:
        """Who the audit log says acted when the device used this token."""
        return f"token:{self.prefix}"

    def as_json(self) -> dict[str, object]:
        return {"id": self.id, "prefix": self.prefix, "warrant_number": self.warrant_number,
                "officer": self.officer_label, "label": self.label,
                "created_at": iso(self.created_at), "created_by": self.created_by,
                "revoked_at": iso(self.revoked_at), "last_used_at": iso(self.last_used_at)}


def view(t: DeviceToken) -> TokenView:
    return TokenView(t.id, t.prefix, t.officer_id, t.officer.warrant_number,
                     f"{t.officer.rank} {t.officer.name}".strip(), t.label, t.created_at,
                     t.created_by, t.revoked_at, t.last_used_at)


def add(session: Session, warrant_number: str, label: str, created_by: str
        ) -> tuple[TokenView, str]:
    """A new token for the officer with this warrant number: (its view, the token)."""
    officer = session.scalars(
        select(Officer).where(Officer.warrant_number == warrant_number.strip())).first()
    if officer is None:
        raise ConsoleError("officer_not_found",
                           f"no officer with warrant number {warrant_number!r}", 404)
    if len(label) > MAX_LABEL:
        raise ConsoleError("label_invalid", f"a label has at most {MAX_LABEL} characters", 422)
    token = secrets.token_urlsafe(32)
    row = DeviceToken(token_hash=token_hash(token), prefix=token[:PREFIX_LENGTH],
                      officer_id=officer.id, label=label.strip(), created_at=now(),
                      created_by=created_by[:80])
    row.officer = officer
    session.add(row)
    session.flush()
    return view(row), token


def list_all(session: Session) -> list[TokenView]:
    return [view(t) for t in session.scalars(select(DeviceToken).order_by(DeviceToken.id))]


def revoke(session: Session, token_id: int) -> TokenView:
    row = session.get(DeviceToken, token_id)
    if row is None:
        raise ConsoleError("token_not_found", f"no device token with id {token_id}", 404)
    if row.revoked_at is not None:
        raise ConsoleError("token_revoked", f"device token {token_id} is already revoked", 409)
    row.revoked_at = now()
    return view(row)


def authenticate(session: Session, token: str) -> DeviceToken:
    """The live token row for a bearer token, or why not: 401 token_invalid (unknown),
    401 token_revoked, 403 officer_restricted (the officer is not active)."""
    row = (session.scalars(select(DeviceToken).where(DeviceToken.token_hash == token_hash(token)))
           .first() if token else None)
    if row is None:
        raise ConsoleError("token_invalid",
                           "send a valid device token: Authorization: Bearer <token>", 401)
    if row.revoked_at is not None:
        raise ConsoleError("token_revoked", "this device token has been revoked", 401)
    if row.officer.status is not OfficerStatus.ACTIVE:
        raise ConsoleError("officer_restricted",
                           f"the officer's roster status is {row.officer.status.value}: "
                           "pre-registration needs an active officer", 403)
    return row
