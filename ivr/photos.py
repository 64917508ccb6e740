"""Officers' photos: JPEG or PNG files under ``$VERIFYLINE_HOME/photos/`` (the roster keeps
only the file name). The type is told by the file's first bytes, never by its name."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from ivr.exceptions import ConsoleError

MAX_BYTES = 2 * 1024 * 1024
MIME = {"jpg": "image/jpeg", "jpeg": "image/jpeg", "png": "image/png"}
_JPEG = b"\xff\xd8\xff"
_PNG = b"\x89PNG\r\n\x1a\n"


def folder(home: Path) -> Path:
    return home / "photos"


def valid_name(name: str) -> bool:
    """A plain file name in the photos folder (no path), of a JPEG or PNG."""
    stem, dot, ext = name.rpartition(".")
    return (bool(dot) and bool(stem) and ext.lower() in MIME and len(name) <= 200
            and not name.startswith(".") and "/" not in name and "\\" not in name
            and name == os.path.basename(name))


def kind(data: bytes) -> str:
    """'jpg' or 'png' from the content; 422 photo_invalid / 413 photo_too_large otherwise."""
    if len(data) > MAX_BYTES:
        raise ConsoleError("photo_too_large",
                           f"a photo is at most {MAX_BYTES // 1024} KB", 413)
    if data.startswith(_JPEG):
        return "jpg"
    if data.startswith(_PNG):
        return "png"
    raise ConsoleError("photo_invalid", "a photo must be a JPEG or PNG image", 422)


def save(home: Path, data: bytes) -> str:
    """Write the photo under a new random name; return that name."""
    ext = kind(data)
    where = folder(home)
    where.mkdir(parents=True, exist_ok=True)
    name = f"{secrets.token_hex(16)}.{ext}"
    tmp = where / f".{name}.tmp"
    tmp.write_bytes(data)
    tmp.replace(where / name)
    return name


def path(home: Path, name: str) -> Path | None:
    """The stored photo's file, if the name is valid and the file is there."""
    if not valid_name(name):
        return None
    found = folder(home) / name
    return found if found.is_file() else None
