"""The wheel carries what production needs: the Asterisk configuration templates (installed
under <prefix>/share/verifyline/asterisk-conf), the dialplan, prompts and migrations, so an
installed line renders its configuration without a source checkout."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from ops import lab

REPO = Path(__file__).resolve().parents[2]


def test_given_the_wheel_when_built_then_it_carries_the_asterisk_configuration(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                    "-q", "-w", str(tmp_path), str(REPO)], check=True, capture_output=True,
                   timeout=300)
    (wheel,) = tmp_path.glob("verifyline-*.whl")
    names = zipfile.ZipFile(wheel).namelist()

    conf = {Path(n).name for n in names if "/data/share/verifyline/asterisk-conf/" in n}
    assert conf == {p.name for p in (REPO / "asterisk" / "conf").glob("*.conf")}
    assert "ivr/dialplans/verifyline.conf" in names
    assert "ivr/prompts/en/greeting.wav" in names
    assert any(n.startswith("ivr/migrations/versions/0007") for n in names)
    assert "ops/cli.py" in names and "ari_app/service.py" in names


def test_given_no_checkout_then_the_installed_templates_are_used(tmp_path, monkeypatch):
    monkeypatch.setattr(lab, "REPO", tmp_path / "no-checkout")
    installed = tmp_path / lab.INSTALLED_CONF
    installed.mkdir(parents=True)
    assert lab.conf_templates(prefix=tmp_path) == installed


def test_given_neither_then_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setattr(lab, "REPO", tmp_path / "no-checkout")
    with pytest.raises(lab.LabError, match="no Asterisk configuration templates"):
        lab.conf_templates(prefix=tmp_path)
