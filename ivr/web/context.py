"""The console's handles on the line: its settings and store, for the current request."""

from __future__ import annotations

from flask import current_app, request

from ivr.config import Settings
from ivr.store import Store


def store() -> Store:
    s: Store = current_app.extensions["verifyline.store"]
    return s


def settings() -> Settings:
    s: Settings = current_app.extensions["verifyline.settings"]
    return s


def address() -> str:
    """The client's address (the console listens on loopback; no proxy header is trusted)."""
    return request.remote_addr or ""
