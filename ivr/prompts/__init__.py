"""The prompt catalogue: prompt id -> what the caller hears, per language.

The text here is the single source of truth; ``python -m ivr.prompts`` (``make prompts``)
renders each entry with espeak-ng to 8 kHz 16-bit mono WAV under ``ivr/prompts/<lang>/``,
which is shipped so the line runs without regenerating. Asterisk plays them as
``verifyline/<id>``.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).parent
SOUND_FOLDER = "verifyline"

CATALOGUE: dict[str, dict[str, str]] = {
    "en": {
        "greeting": (
            "This is the police officer verification line. "
            "If you are in immediate danger, hang up now and dial 9 9 9. "
            "Only ever use the published number for this line, "
            "never a number an officer gives you."
        ),
        "enter_number": "Please key in the officer's warrant number, then press the hash key.",
        "not_understood": "Sorry, I did not get that.",
        "connecting": "Thank you. Please hold while I connect you to a police supervisor.",
        "all_busy": (
            "All supervisors are busy. Please stay on the line, "
            "you will be connected as soon as one is free."
        ),
        "fallback_connecting": "Please hold while I connect you to a police supervisor.",
        "fallback_unavailable": (
            "Sorry, no supervisor can take your call right now. "
            "If you are in danger, hang up and dial 9 9 9. Otherwise, please call again."
        ),
    },
}

VOICES = {"en": "en-gb"}


def path(lang: str, prompt_id: str) -> Path:
    return HERE / lang / f"{prompt_id}.wav"


def render(lang: str, prompt_id: str, text: str) -> None:
    """Speak one prompt to 8 kHz 16-bit mono WAV (Asterisk's native slin format)."""
    out = path(lang, prompt_id)
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "raw.wav"
        subprocess.run(["espeak-ng", "-v", VOICES[lang], "-s", "150", "-w", str(raw), text],
                       check=True)
        subprocess.run(["sox", str(raw), "-r", "8000", "-c", "1", "-b", "16", "-e", "signed",
                        str(out), "gain", "-n", "-3"], check=True)


def main() -> int:
    missing = [t for t in ("espeak-ng", "sox") if shutil.which(t) is None]
    if missing:
        print(f"missing {', '.join(missing)}: apt-get install espeak-ng sox", file=sys.stderr)
        return 1
    for lang, prompts in CATALOGUE.items():
        for prompt_id, text in prompts.items():
            render(lang, prompt_id, text)
            print(f"{path(lang, prompt_id).relative_to(HERE.parent.parent)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
