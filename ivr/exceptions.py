"""Errors raised by the domain.

    VerifyLineError
    ├── ConfigError          a setting is missing or malformed
    ├── RosterImportError    a roster file has bad rows (nothing was imported)
    ├── StoreError           the database cannot be reached or migrated
    └── ConsoleError         a console/API request the line refuses (stable error id + status)
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
    """A request from the console (or the API) the line refuses: ``error_id`` is the stable id
    the contract names (docs/console.md), ``status`` the HTTP status it maps to. Raised
    before anything is written, so a refused request changes nothing."""

    def __init__(self, error_id: str, message: str, status: int) -> None:
        self.error_id = error_id
        self.message = message
        self.status = status
        super().__init__(message)
