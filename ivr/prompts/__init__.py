"""The prompt catalogue: prompt id -> what the caller hears, per language.

The text here is the single source of truth; ``python -m ivr.prompts`` (``make prompts``)
renders each entry with espeak-ng to 8 kHz 16-bit mono WAV under ``ivr/prompts/<lang>/``,
which is shipped so the line runs without regenerating. They are installed under Asterisk's
``sounds/en/verifyline/<lang>/`` and played as ``sound:verifyline/<lang>/<id>``.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import wave
from functools import cache
from pathlib import Path

HERE = Path(__file__).parent
SOUND_FOLDER = "verifyline"
# Every rendered prompt ends with this much silence so spoken digits stay apart. The entry
# timers subtract it (ivr.callflow), so a timeout counts the silence the caller hears.
PROMPT_TAIL_SECONDS = 0.12

DIGIT_WORDS = {
    "en": ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"],
    "pl": ["zero", "jeden", "dwa", "trzy", "cztery", "pięć", "sześć", "siedem", "osiem",
           "dziewięć"],
}

CATALOGUE: dict[str, dict[str, str]] = {
    "en": {
        "greeting": (
            "This is the police officer verification line. "
            "If you are in immediate danger, hang up now and dial 9 9 9. "
            "Only ever use the published number for this line, "
            "never a number an officer gives you."
        ),
        "language_offer": "For English, press star, then 1.",
        "enter_number": "Please key in the officer's warrant number, then press the hash key.",
        "not_understood": "Sorry, I did not get that.",
        "you_entered": "You entered",
        "confirm_hint": "Press 1 if that is right, or star 1 to key it again.",
        "reference": "Your reference is",
        "connecting": "Please hold for a police supervisor.",
        "no_number": (
            "If you do not know the number, stay on the line. "
            "I am putting you through to a police supervisor."
        ),
        "emergency": "Connecting you to the police control room now. Please stay on the line.",
        "all_busy": (
            "All supervisors are busy. Please stay on the line, "
            "you will be connected as soon as one is free."
        ),
        "recorded": "This call is recorded.",
        "you_are_next": "You are next.",
        "position": "Your place in the queue is",
        "whisper_intro": "Verify Line call.",
        "result_on_duty": "Officer on duty.",
        "result_off_duty": "Officer not on duty.",
        "result_restricted": "Card restricted.",
        "result_unknown": "Number not found on the roster.",
        "result_none_entered": "No number entered.",
        "flag_many_lookups": "Flagged: many lookups from this caller.",
        "flag_emergency": "Emergency.",
        "warrant_number": "Warrant number",
        "whisper_reference": "Reference",
        "whisper_hint": "Press 1 to connect.",
        "paused": "You are paused. No calls will be offered.",
        "available": "You are available for calls.",
        "fallback_connecting": "Please hold while I connect you to a police supervisor.",
        "fallback_unavailable": (
            "Sorry, no supervisor can take your call right now. "
            "If you are in danger, hang up and dial 9 9 9. Otherwise, please call again."
        ),
    },
    "pl": {
        "greeting": (
            "To jest linia weryfikacji funkcjonariuszy policji. "
            "Jeśli grozi ci bezpośrednie niebezpieczeństwo, rozłącz się i zadzwoń pod 9 9 9. "
            "Korzystaj wyłącznie z opublikowanego numeru tej linii, "
            "nigdy z numeru podanego przez funkcjonariusza."
        ),
        "language_offer": "Po polsku: gwiazdka, potem 2.",
        "enter_number": (
            "Wpisz numer legitymacji służbowej funkcjonariusza, a następnie naciśnij krzyżyk."
        ),
        "not_understood": "Przepraszam, nie zrozumiałem.",
        "you_entered": "Wpisano",
        "confirm_hint": "Naciśnij 1, jeśli to się zgadza, albo gwiazdkę i 1, aby wpisać ponownie.",
        "reference": "Twój numer referencyjny to",
        "connecting": "Proszę czekać na dyżurnego oficera policji.",
        "no_number": (
            "Jeśli nie znasz numeru, nie rozłączaj się. Łączę z dyżurnym oficerem policji."
        ),
        "emergency": "Łączę z centrum dowodzenia policji. Proszę się nie rozłączać.",
        "all_busy": (
            "Wszyscy dyżurni są zajęci. Proszę się nie rozłączać, "
            "połączymy, gdy tylko ktoś będzie wolny."
        ),
        "recorded": "Ta rozmowa jest nagrywana.",
        "you_are_next": "Jesteś następny w kolejce.",
        "position": "Twoje miejsce w kolejce to",
        "fallback_connecting": "Proszę czekać, łączę z dyżurnym oficerem policji.",
        "fallback_unavailable": (
            "Przepraszamy, żaden dyżurny nie może teraz odebrać. "
            "Jeśli grozi ci niebezpieczeństwo, rozłącz się i zadzwoń pod 9 9 9."
        ),
    },
}
for _lang, _words in DIGIT_WORDS.items():
    for _d, _word in enumerate(_words):
        CATALOGUE[_lang][f"digit_{_d}"] = _word

LANGUAGES = tuple(CATALOGUE)  # the first is the default; '*' + n picks LANGUAGES[n - 1]
DEFAULT_LANGUAGE = LANGUAGES[0]


def prompt(lang: str, prompt_id: str) -> str:
    """A catalogue prompt as a media name: 'en/greeting' (played from sounds/en/verifyline)."""
    if prompt_id not in CATALOGUE[lang]:
        raise KeyError(f"no prompt {prompt_id!r} in {lang!r}")
    return f"{lang}/{prompt_id}"


def say_digits(lang: str, digits: str) -> list[str]:
    """Each digit as its own catalogue prompt, in the caller's language."""
    return [prompt(lang, f"digit_{d}") for d in digits if d.isdigit()]


VOICES = {"en": "en-gb", "pl": "pl"}


def path(lang: str, prompt_id: str) -> Path:
    return HERE / lang / f"{prompt_id}.wav"


@cache
def seconds(media: str) -> float:
    """How long a catalogue prompt ('en/greeting', as :func:`prompt` names it) plays."""
    lang, prompt_id = media.split("/", 1)
    with wave.open(str(path(lang, prompt_id))) as w:
        return float(w.getnframes()) / float(w.getframerate())


def render(lang: str, prompt_id: str, text: str) -> None:
    """Speak one prompt to 8 kHz 16-bit mono WAV (Asterisk's native slin format)."""
    out = path(lang, prompt_id)
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "raw.wav"
        subprocess.run(["espeak-ng", "-v", VOICES[lang], "-s", "150", "-w", str(raw), text],
                       check=True)
        # trim espeak's leading and trailing silence (no dead air), keep a short pause after
        subprocess.run(["sox", str(raw), "-r", "8000", "-c", "1", "-b", "16", "-e", "signed",
                        str(out), "silence", "1", "0.02", "0.5%", "reverse",
                        "silence", "1", "0.02", "0.5%", "reverse",
                        "gain", "-n", "-3", "pad", "0", str(PROMPT_TAIL_SECONDS)], check=True)


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
