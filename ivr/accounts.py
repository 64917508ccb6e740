"""Console accounts: who may sign in, with which role, and sign-in throttling.

Passwords are kept as scrypt hashes (a memory-hard KDF, n=2^15 r=8 p=1, a 16-byte salt per
password; the parameters are stored with each hash so they can be raised later).
Failed sign-ins are rows (``login_failure``), so throttling holds across every
console worker process and survives a restart.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import os
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from ivr.clock import now
from ivr.exceptions import ConsoleError
from ivr.models import LoginFailure, Role, User

SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**15, 8, 1
MIN_PASSWORD_LENGTH = 10
# sign-in throttling: this many failures within the window refuse further attempts (even
# right ones) until the oldest of them leaves the window
THROTTLE_WINDOW = timedelta(minutes=15)
MAX_FAILURES_PER_ACCOUNT = 5
MAX_FAILURES_PER_ADDRESS = 20
# checked against when the account is unknown, so a wrong name costs the same time as a
# wrong password (no telling which names exist)


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def hash_password(password: str) -> str:
    salt = os.urandom(16)
    key = hashlib.scrypt(password.encode(), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P,
                         maxmem=64 * 1024 * 1024, dklen=32)
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${_b64(salt)}${_b64(key)}"


def check_password(stored: str, password: str) -> bool:
    try:
        method, n, r, p, salt, key = stored.split("$")
        if method != "scrypt":
            return False
        want = base64.b64decode(key)
        got = hashlib.scrypt(password.encode(), salt=base64.b64decode(salt), n=int(n),
                             r=int(r), p=int(p), maxmem=64 * 1024 * 1024, dklen=len(want))
    except ValueError:
        return False
    return hmac.compare_digest(got, want)


@functools.cache
def dummy_hash() -> str:
    """The hash an unknown user's password is checked against (so that a sign-in takes as
    long whether or not the account exists). Made on first use, not at import: one scrypt
    (0.1-0.4 s here) was part of every start of the CLI and the line, which never sign anyone
    in; the console makes it when its app is created (ivr.web.create_app)."""
    return hash_password("not a password of anyone")


@dataclass(frozen=True)
class UserView:
    id: int
    username: str
    display_name: str
    role: Role
    disabled: bool

    @property
    def label(self) -> str:
        return self.display_name or self.username


def _view(u: User) -> UserView:
    return UserView(u.id, u.username, u.display_name, Role(u.role), u.disabled)


def valid_username(name: str) -> bool:
    return 1 <= len(name) <= 80 and all(c.isalnum() or c in "._-" for c in name)


def add_user(session: Session, username: str, password: str, role: str,
             display_name: str = "") -> UserView:
    if not valid_username(username):
        raise ConsoleError("username_invalid",
                           "a user name is 1 to 80 letters, digits, '.', '_' or '-'", 422)
    try:
        the_role = Role(role)
    except ValueError:
        allowed = "|".join(r.value for r in Role)
        raise ConsoleError("role_invalid", f"role {role!r} must be one of {allowed}",
                           422) from None
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ConsoleError("password_too_short",
                           f"a password has at least {MIN_PASSWORD_LENGTH} characters", 422)
    if session.scalars(select(User.id).where(User.username == username)).first() is not None:
        raise ConsoleError("user_exists", f"user {username!r} already exists", 409)
    user = User(username=username, display_name=display_name, role=the_role.value,
                password_hash=hash_password(password),
                created_at=now())
    session.add(user)
    session.flush()
    return _view(user)


def get_user(session: Session, user_id: int) -> UserView | None:
    user = session.get(User, user_id)
    return _view(user) if user is not None else None


def list_users(session: Session) -> list[UserView]:
    return [_view(u) for u in session.scalars(select(User).order_by(User.username))]


def throttled(session: Session, username: str, address: str, at: datetime) -> bool:
    since = at - THROTTLE_WINDOW
    count = select(func.count(LoginFailure.id)).where(LoginFailure.at >= since)
    by_account = session.scalar(count.where(LoginFailure.username == username)) or 0
    by_address = session.scalar(count.where(LoginFailure.address == address)) or 0
    return by_account >= MAX_FAILURES_PER_ACCOUNT or by_address >= MAX_FAILURES_PER_ADDRESS


def authenticate(session: Session, username: str, password: str, address: str
                 ) -> UserView | ConsoleError:
    """The account these credentials sign in to, or why not. The refusal is returned, not
    raised, so that the failure written here is committed (it is what throttles)."""
    at = now()
    if throttled(session, username, address, at):
        return ConsoleError("login_throttled",
                            "too many failed sign-ins: wait 15 minutes and try again", 429)
    user = session.scalars(select(User).where(User.username == username)).first()
    good = check_password(user.password_hash if user else dummy_hash(), password)
    if user is None or not good or user.disabled:
        session.add(LoginFailure(at=at, username=username[:80], address=address[:64]))
        return ConsoleError("login_failed", "user name or password not recognised", 401)
    user.last_login_at = at
    # a success clears the account's failures (not the address's: those throttle guessing)
    session.execute(delete(LoginFailure).where(LoginFailure.username == username))
    return _view(user)


def disable_user(session: Session, username: str, by: str) -> UserView:
    """Disable an account (it can no longer sign in; its sessions end at their next request).
    404 user_not_found, 409 user_disabled, 409 user_self (no one locks themselves out)."""
    user = session.scalars(select(User).where(User.username == username)).first()
    if user is None:
        raise ConsoleError("user_not_found", f"no user {username!r}", 404)
    if user.disabled:
        raise ConsoleError("user_disabled", f"user {username!r} is already disabled", 409)
    if username == by:
        raise ConsoleError("user_self", "you cannot disable your own account", 409)
    user.disabled = True
    return _view(user)
