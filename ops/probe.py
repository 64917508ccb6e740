"""Health probes for containers and units: ``python -m ops.probe ari|app|console`` (also
``verifyline probe``) exits 0 when that part answers, 1 when not.

Lean on purpose: a health check runs every few seconds for as long as the line runs, so this
imports only what the probe needs (about a third of a second of CPU), not the CLI's modules.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from ivr.config import Settings
from ivr.exceptions import VerifyLineError
from ops import console, lab

PARTS = ("ari", "app", "console")


def check(part: str, settings: Settings) -> tuple[bool, str]:
    """Does this part answer? With what was found, for the health check's log."""
    if part == "ari":
        return lab.ari_ready(settings), f"ARI {settings.ari_url}"
    if part == "app":
        return lab.app_serving(settings), f"app {settings.app_name} on {settings.ari_url}"
    status = console.probe(settings)
    return status == 200, f"console {console.url(settings)}/healthz: {status}"


def run(part: str, settings: Settings) -> int:
    ok, detail = check(part, settings)
    print(f"{'ok' if ok else 'FAIL'} {detail}")
    return 0 if ok else 1


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ops.probe", description=__doc__)
    parser.add_argument("part", choices=PARTS)
    args = parser.parse_args(argv)
    try:
        return run(args.part, Settings.from_env().with_secrets())
    except VerifyLineError as exc:
        print(f"FAIL {args.part}: {exc}")
        return 1


if __name__ == "__main__":
    sys.exit(main())
