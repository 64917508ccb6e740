"""One defaults table: every VERIFYLINE_* setting read in ivr.config, no lab secret in
production files."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from ivr.config import STRATEGIES, Settings
from ops import cli, lab


def test_given_no_variables_when_read_then_the_settings_are_the_field_defaults(tmp_path):
    env = {"VERIFYLINE_HOME": str(tmp_path), "XDG_CACHE_HOME": str(tmp_path / "xdg")}

    read = Settings.from_env(env)

    assert read == Settings(home=tmp_path, db_url=f"sqlite:///{tmp_path / 'verifyline.db'}",
                            cache_dir=tmp_path / "xdg" / "verifyline")


def test_given_the_strategy_type_then_its_values_are_the_two_documented_ones():
    assert STRATEGIES == ("longest_idle", "ring_all")


def test_given_verifyline_cache_when_read_then_the_lab_s_chroot_lives_there(tmp_path):
    settings = Settings.from_env({"VERIFYLINE_HOME": str(tmp_path),
                                  "VERIFYLINE_CACHE": str(tmp_path / "cache"),
                                  "XDG_CACHE_HOME": str(tmp_path / "xdg")})

    assert settings.cache_dir == tmp_path / "cache"
    assert lab.instance(settings).root == tmp_path / "cache" / "asterisk-sid"


def test_given_desk_passwords_when_read_then_only_configured_desks_have_one(tmp_path):
    settings = Settings.from_env({"VERIFYLINE_HOME": str(tmp_path),
                                  "VERIFYLINE_DESKS": "desk1,desk2",
                                  "VERIFYLINE_DESK_PASSWORD_DESK1": "s3cret",
                                  "VERIFYLINE_DESK_PASSWORD_DESK9": "not-a-desk"})

    assert settings.desk_password("desk1") == "s3cret"
    assert settings.desk_password("desk2") is None
    assert settings.desk_password("desk9") is None


def rendered(tmp_path: Path, env: dict[str, str], lab_passwords: bool) -> str:
    settings = replace(Settings.from_env({"VERIFYLINE_HOME": str(tmp_path),
                                          "VERIFYLINE_DESKS": "desk1,desk2", **env}),
                       ari_password="x")
    lab.render_config(settings, tmp_path / "etc", "/spool", lab_passwords=lab_passwords)
    return (tmp_path / "etc" / "pjsip_desks.conf").read_text()


def test_given_a_desk_without_password_when_production_files_are_rendered_then_refused(
        tmp_path):
    with pytest.raises(lab.LabError) as refused:
        rendered(tmp_path, {"VERIFYLINE_DESK_PASSWORD_DESK1": "s3cret"}, lab_passwords=False)

    assert "VERIFYLINE_DESK_PASSWORD_DESK2" in str(refused.value)
    assert "VERIFYLINE_DESK_PASSWORD_DESK1" not in str(refused.value)
    assert not (tmp_path / "etc").exists()  # nothing half-written


def test_given_every_desk_password_set_when_production_files_are_rendered_then_they_are_used(
        tmp_path):
    conf = rendered(tmp_path, {"VERIFYLINE_DESK_PASSWORD_DESK1": "s3cret",
                               "VERIFYLINE_DESK_PASSWORD_DESK2": "0ther"}, lab_passwords=False)

    assert "password = s3cret\n" in conf
    assert "password = 0ther\n" in conf
    assert "lab-" not in conf


def test_given_lab_passwords_when_rendered_then_unset_desks_get_lab_desk(tmp_path):
    conf = rendered(tmp_path, {"VERIFYLINE_DESK_PASSWORD_DESK1": "s3cret"}, lab_passwords=True)

    assert "password = s3cret\n" in conf
    assert "password = lab-desk2\n" in conf


def test_given_no_desk_passwords_when_lab_config_runs_then_it_fails_naming_them(
        tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("VERIFYLINE_HOME", str(tmp_path))
    monkeypatch.setenv("VERIFYLINE_DESKS", "desk1,desk2")
    for desk in ("DESK1", "DESK2"):
        monkeypatch.delenv(f"VERIFYLINE_DESK_PASSWORD_{desk}", raising=False)

    code = cli.main(["lab", "config", str(tmp_path / "etc")])

    err = capsys.readouterr().err
    assert code == 1
    assert "VERIFYLINE_DESK_PASSWORD_DESK1, VERIFYLINE_DESK_PASSWORD_DESK2" in err
    assert "--lab-passwords" in err
    assert cli.main(["lab", "config", str(tmp_path / "etc"), "--lab-passwords"]) == 0
    assert "password = lab-desk1\n" in (tmp_path / "etc" / "pjsip_desks.conf").read_text()
