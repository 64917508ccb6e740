"""The caller's number as the line knows it: a number, or None when it is withheld.

Networks deliver a withheld number in many shapes: no From user at all (Asterisk then gives an
empty CALLERID(num)), `anonymous` (RFC 3261's `sip:anonymous@anonymous.invalid`), carrier words
such as `Restricted`, `Private`, `Unavailable`, or a real number with `Privacy: id`, which the
dialplan turns into `anonymous` before the call reaches the app or the fallback. Every one of
them is None here, so that the call log, the callback list and the rate flag treat them alike.

After the retention period (``verifyline purge``, ivr.retention) a stored number is replaced by
its keyed hash, ``hmac-sha256:<64 hex>``: still the same caller from row to row, but not a
number anyone can dial or read back.
"""

from __future__ import annotations

WITHHELD = "withheld"
# what a number becomes once its retention period is over (ivr.retention.pseudonym)
HASH_PREFIX = "hmac-sha256:"
SHOWN_HASH_CHARS = 12
DIGITS = frozenset("0123456789")
# what carriers put in place of a number they will not show (compared without case)
WITHHELD_WORDS = frozenset({
    "anonymous", "restricted", "withheld", "private", "unavailable", "unknown",
})


def caller_number(raw: str | None) -> str | None:
    """The caller's number from what the network gave, or None when it is withheld."""
    if raw is None:
        return None
    value = raw.strip()
    if is_hashed(value):
        return value  # a caller the line knew, pseudonymised: not withheld
    # a whole URI or user@host: only the user part can be a number
    for scheme in ("sip:", "sips:"):
        if value.lower().startswith(scheme):
            if "@" not in value:  # sip:host names no user at all
                return None
            value = value[len(scheme):]
            break
    else:
        if value.lower().startswith("tel:"):
            value = value[len("tel:"):]
    value = value.split("@", 1)[0].split(";", 1)[0].strip()
    if value.lower() in WITHHELD_WORDS or not any(ch in DIGITS for ch in value):
        return None
    return value


def is_hashed(value: str | None) -> bool:
    """Whether a stored number is the keyed hash retention put in its place."""
    return value is not None and value.startswith(HASH_PREFIX)


def dialable(raw: str | None) -> str | None:
    """The number to call the caller back on, or None (withheld, or hashed by retention)."""
    number = caller_number(raw)
    return None if is_hashed(number) else number


def shown(number: str | None) -> str:
    """The number to show a person: the caller's number, "withheld", or for a hashed one
    ``hashed:`` and the hash's first characters (enough to see the same caller again)."""
    value = caller_number(number)
    if value is None:
        return WITHHELD
    if is_hashed(value):
        return "hashed:" + value[len(HASH_PREFIX):][:SHOWN_HASH_CHARS]
    return value
