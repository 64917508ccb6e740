"""The console's navigation: each area's blueprint adds its entry (endpoint, label, roles)."""

from __future__ import annotations

from collections.abc import Iterable

from flask import Flask, current_app
from flask_login import current_user

from ivr.models import Role

_ENTRIES: list[tuple[str, str, tuple[Role, ...]]] = []


def add(endpoint: str, label: str, roles: Iterable[Role]) -> None:
    if all(e[0] != endpoint for e in _ENTRIES):
        _ENTRIES.append((endpoint, label, tuple(roles)))


def init_app(app: Flask) -> None:
    @app.context_processor
    def _nav() -> dict[str, object]:
        def nav_items() -> list[tuple[str, str, tuple[Role, ...]]]:
            if not current_user.is_authenticated:
                return []
            return [e for e in _ENTRIES
                    if e[0] in current_app.view_functions and current_user.role in e[2]]
        return {"nav_items": nav_items}
