"""Errors raised by the domain.

    VerifyLineError
    ├── ConfigError          a setting is missing or malformed
    ├── RosterImportError    a roster file has bad rows (nothing was imported)
    ├── StoreError           the database cannot be reached or migrated
    └── ConsoleError         a console or API request the domain refuses (a stable error id)
        └── DetailedConsoleError  ... with more for the client (the fields at fault, the
                                  reference of the encounter already open)
"""

from __future__ import annotations


class VerifyLineError(Exception):
    """Root of every error the domain raises on purpose."""


class ConfigError(VerifyLineError):
    """A setting is missing or malformed."""


class RosterImportError(VerifyLineError):
    """A roster file has bad rows; ``problems`` lists them as (line number, message)."""

    def __init__(self, problems: list[tuple[int, str]]) -> None:
        self.problems = problems
        lines = "; ".join(f"line {n}: {msg}" for n, msg in problems[:20])
        more = f" (and {len(problems) - 20} more)" if len(problems) > 20 else ""
        super().__init__(f"roster not imported, {len(problems)} bad row(s): {lines}{more}")


class StoreError(VerifyLineError):
    """The database cannot be reached or migrated."""


class ConsoleError(VerifyLineError):
    """A request from the console, the API or the CLI that the domain refuses, with nothing
    written. ``error_id`` is part of the console's contract (docs/console.md): it never
    changes meaning; ``status`` is the HTTP status it maps to."""

    def __init__(self, error_id: str, message: str, status: int = 422) -> None:
        super().__init__(message)
        self.error_id = error_id
        self.message = message
        self.status = status


class DetailedConsoleError(ConsoleError):
    """A refusal that tells the client more: ``detail`` is merged into the JSON error body
    (e.g. ``{"fields": {"place": "required"}}`` or ``{"reference": "123456"}``)."""

    def __init__(self, error_id: str, message: str, status: int = 422,
                 **detail: object) -> None:
        super().__init__(error_id, message, status)
        self.detail = detail


def invalid_fields(error_id: str, fields: dict[str, str]) -> DetailedConsoleError:
    """422 naming each field at fault and why (the message lists them too)."""
    message = "; ".join(f"{name}: {why}" for name, why in fields.items())
    return DetailedConsoleError(error_id, message, 422, fields=fields)
