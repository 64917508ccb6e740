"""The supervisors' console: a Flask app on the services layer (ivr.services), never the ARI
adapter. One blueprint per area; the contract outside tools test against is docs/console.md.

Run by gunicorn as its own process (``verifyline console``; ``verifyline lab up`` starts it):
the line (the ARI app) and the console share only the database.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from flask import Flask
from flask_wtf.csrf import CSRFProtect

from ivr import accounts
from ivr.config import Settings
from ivr.store import Store
from ivr.web import (
    admin,
    api,
    audit,
    auth,
    dashboard,
    desk,
    encounters,
    errors,
    metrics,
    nav,
    roster,
    security,
)

csrf = CSRFProtect()


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    """The console app. ``config`` overrides Flask settings; ``SETTINGS`` (ivr.config.Settings)
    and ``STORE`` (ivr.store.Store) may be given, else they come from the environment."""
    app = Flask(__name__)
    # before any sign-in: the first one for an unknown account must not take longer
    accounts.dummy_hash()
    config = dict(config or {})
    settings: Settings = config.pop("SETTINGS", None) or Settings.from_env()
    settings = settings.with_secrets()
    store: Store = config.pop("STORE", None) or Store(settings.db_url)
    app.config.update(
        SECRET_KEY=settings.console_secret,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Strict",
        SESSION_COOKIE_NAME="verifyline_session",
        # the idle timeout (auth.py) ends a session sooner; this only bounds the cookie
        PERMANENT_SESSION_LIFETIME=timedelta(hours=12),
        WTF_CSRF_TIME_LIMIT=None,  # the token lives as long as the session
        MAX_CONTENT_LENGTH=16 * 1024 * 1024,  # a roster upload
        JSON_SORT_KEYS=False,
    )
    app.config.update(config)
    app.extensions["verifyline.settings"] = settings
    app.extensions["verifyline.store"] = store
    csrf.init_app(app)
    auth.init_app(app)
    errors.init_app(app)
    security.init_app(app)
    nav.init_app(app)
    app.register_blueprint(auth.bp)
    app.register_blueprint(admin.bp)
    app.register_blueprint(roster.bp)
    app.register_blueprint(api.bp)
    app.register_blueprint(audit.bp)
    app.register_blueprint(desk.bp)
    app.register_blueprint(encounters.bp)
    app.register_blueprint(dashboard.bp)
    app.register_blueprint(metrics.bp)
    return app
