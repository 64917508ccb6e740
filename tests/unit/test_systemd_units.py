"""The systemd units in deploy/systemd (issue 13, item 4): each one systemd itself accepts
(``systemd-analyze verify``: unknown keys and bad values are warnings it prints, so its output
must be empty too), and what each runs is there: our console script's subcommands, Asterisk in
the lab's Debian tree, the folders the app and Asterisk share."""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from ivr.config import Settings
from ops import cli, lab

REPO = Path(__file__).resolve().parents[2]
UNITS = REPO / "deploy" / "systemd"
VENV = "/opt/verifyline/venv"
TREE = "/opt/verifyline/asterisk-sid"
ENV_FILE = "/etc/verifyline/verifyline.env"
OURS = ("verifyline-app.service", "verifyline-console.service", "verifyline-purge.service")


def unit(name: str) -> dict[str, dict[str, list[str]]]:
    """A unit file's sections: each key with its values, in order (a key may repeat, which
    configparser refuses)."""
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] = {}
    for raw in (UNITS / name).read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], {})
            continue
        key, _, value = line.partition("=")
        current.setdefault(key.strip(), []).append(value.strip())
    return sections


def one(name: str, section: str, key: str) -> str:
    [value] = unit(name)[section][key]
    return value


def chroot() -> Path:
    """The lab's Asterisk tree (make install builds it), what /opt/verifyline/asterisk-sid is
    a copy of."""
    root = lab.cache_root(Settings.from_env({}))
    assert lab.chroot_ready(root), f"no Asterisk tree at {root}: run make install"
    return root


def test_given_the_units_then_each_runs_a_subcommand_of_our_console_script_as_verifyline():
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    [sub] = [a for a in cli.build_parser()._actions if isinstance(a, argparse._SubParsersAction)]
    commands = set(sub.choices)
    runs = {}
    for name in OURS:
        program, *args = one(name, "Service", "ExecStart").split()
        assert program == f"{VENV}/bin/verifyline" and "verifyline" in scripts
        assert args[0] in commands
        runs[name] = args[0]
        assert one(name, "Service", "User") == "verifyline"
        assert one(name, "Service", "EnvironmentFile") == ENV_FILE
        assert one(name, "Service", "Environment") == "VERIFYLINE_HOME=/var/lib/verifyline"
    assert runs == {"verifyline-app.service": "serve", "verifyline-console.service": "console",
                    "verifyline-purge.service": "purge"}
    for name in ("verifyline-app.service", "verifyline-console.service",
                 "verifyline-asterisk.service"):
        assert one(name, "Service", "Restart") == "always"
        assert one(name, "Unit", "StartLimitIntervalSec") == "0"  # never gives up
        assert one(name, "Install", "WantedBy") == "multi-user.target"


def test_given_the_purge_timer_then_it_starts_the_oneshot_purge_daily_and_catches_up():
    assert one("verifyline-purge.timer", "Timer", "Unit") == "verifyline-purge.service"
    assert one("verifyline-purge.timer", "Timer", "Persistent") == "true"
    assert one("verifyline-purge.timer", "Timer", "OnCalendar") == "*-*-* 03:15:00"
    assert one("verifyline-purge.service", "Service", "Type") == "oneshot"
    assert one("verifyline-purge.service", "Service", "SuccessExitStatus") == str(
        cli.PURGE_BUSY)
    assert "Install" not in unit("verifyline-purge.service")  # the timer starts it


def test_given_the_asterisk_unit_then_its_tree_has_asterisk_and_the_shared_folders_fit():
    root = chroot()
    service = unit("verifyline-asterisk.service")["Service"]
    [root_dir] = service["RootDirectory"]
    program, *args = service["ExecStart"][0].split()
    assert root_dir == TREE
    assert (root / program.lstrip("/")).is_file()
    assert args[args.index("-U") + 1] in (root / "etc" / "passwd").read_text()
    binds = dict(b.split(":") for b in service["BindPaths"])
    # recordings: where the tree's asterisk.conf puts its spool; the folder the app, the
    # console and the purge read is the env example's VERIFYLINE_RECORDINGS_DIR
    conf = (root / "etc" / "asterisk" / "asterisk.conf").read_text()
    [spool] = [line.split("=>")[1].strip() for line in conf.splitlines()
               if line.startswith("astspooldir")]
    env = dict(line.split("=", 1) for line in (UNITS / "verifyline.env.example").read_text()
               .splitlines() if line and not line.startswith("#"))
    assert binds[env["VERIFYLINE_RECORDINGS_DIR"]] == f"{spool}/recording"
    # the fallback spool: the app's is $VERIFYLINE_HOME/spool (Settings.spool_dir)
    assert "/var/lib/verifyline/spool" in binds


def test_given_the_units_when_systemd_verifies_them_then_it_finds_nothing_to_say(tmp_path):
    """``systemd-analyze verify`` on copies whose /opt paths point at this venv and the lab's
    tree (it checks that each ExecStart program is executable; it does not look inside a
    RootDirectory, so the Asterisk unit's copy names the program by its path in the tree)."""
    analyze = shutil.which("systemd-analyze")
    assert analyze, "systemd-analyze is missing: apt-get install systemd"
    for path in UNITS.glob("verifyline-*.*"):
        text = path.read_text().replace(VENV, sys.prefix).replace(TREE, str(chroot()))
        if path.name == "verifyline-asterisk.service":
            text = text.replace("=/usr/sbin/asterisk", f"={chroot()}/usr/sbin/asterisk")
        (tmp_path / path.name).write_text(text)
    assert (Path(sys.prefix) / "bin" / "verifyline").is_file()

    found = subprocess.run([analyze, "verify", "--man=no",
                            *sorted(str(p) for p in tmp_path.iterdir())],
                           capture_output=True, text=True, timeout=60, cwd=tmp_path)

    assert (found.returncode, found.stdout + found.stderr) == (0, "")


@pytest.mark.parametrize("name", sorted(p.name for p in UNITS.glob("verifyline-*.*")))
def test_given_a_unit_then_it_says_where_its_documentation_is(name):
    assert unit(name)["Unit"]["Documentation"] == [
        "file:///opt/verifyline/docs/operations.md"]
