"""Desk phones over TLS with SRTP (issue 13, item 8): the settings, the rendered pjsip.conf,
and bad settings refused at configuration time with nothing written."""

from __future__ import annotations

import stat
from dataclasses import replace
from pathlib import Path

import pytest

from ivr.config import Settings
from ivr.exceptions import ConfigError
from ops import lab
from tests.certs import KeyPair, self_signed


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> KeyPair:
    return self_signed(tmp_path_factory.mktemp("certs"))


@pytest.fixture(scope="module")
def other(tmp_path_factory: pytest.TempPathFactory) -> KeyPair:
    return self_signed(tmp_path_factory.mktemp("other"), name="other")


def settings(tmp_path: Path, **env: str) -> Settings:
    return replace(Settings.from_env({"VERIFYLINE_HOME": str(tmp_path),
                                      "VERIFYLINE_DESKS": "desk1,desk2", **env}),
                   ari_password="x")


def tls_env(pair: KeyPair, **more: str) -> dict[str, str]:
    return {"VERIFYLINE_DESK_TLS_PORT": "5061", "VERIFYLINE_TLS_CERT_FILE": str(pair.cert),
            "VERIFYLINE_TLS_KEY_FILE": str(pair.key), **more}


def section(conf: str, name: str, nth: int = 0) -> str:
    """The text of the ``nth`` section called ``[name]`` (templates included)."""
    return conf.split(f"\n[{name}]")[nth + 1].split("\n[")[0]


def render(s: Settings, etc: Path, etc_inside: str | None = None) -> str:
    lab.render_config(s, etc, "/spool", lab_passwords=True, etc_inside=etc_inside)
    return (etc / "pjsip.conf").read_text()


def test_given_no_tls_setting_when_rendered_then_desks_stay_on_udp_without_srtp(tmp_path):
    conf = render(settings(tmp_path), tmp_path / "etc")

    assert "[transport-tls]" not in conf
    desk = conf.split("[desk-phone](!)")[1].split("\n[")[0]
    assert "transport = transport-udp\n" in desk
    assert "media_encryption = no\n" in desk


def test_given_tls_port_and_files_when_rendered_then_desks_register_over_tls_with_srtp(
        tmp_path, server):
    conf = render(settings(tmp_path, **tls_env(server)), tmp_path / "etc")

    tls = section(conf, "transport-tls")
    assert "protocol = tls\n" in tls
    assert "bind = 127.0.0.1:5061\n" in tls
    assert f"cert_file = {server.cert}\n" in tls
    assert f"priv_key_file = {server.key}\n" in tls
    assert "method = sslv23\n" in tls  # pjproject's default would be TLS 1.0 only
    assert "verify_client = no\n" in tls
    desk = conf.split("[desk-phone](!)")[1].split("\n[")[0]
    assert "transport = transport-tls\n" in desk
    assert "media_encryption = sdes\n" in desk
    assert "media_encryption_optimistic = no\n" in desk
    # the control room's static UDP contact and the trunk keep plain SIP and RTP
    overflow = conf.split("[overflow](desk-phone)")[1].split("\n[")[0]
    assert overflow.index("transport = transport-udp") > 0
    assert "media_encryption = no\n" in overflow
    assert "transport = transport-udp\n" in section(conf, "trunk")
    assert "sdes" not in section(conf, "trunk")


def test_given_optimistic_srtp_when_rendered_then_plain_rtp_is_accepted_from_a_desk(
        tmp_path, server):
    conf = render(settings(tmp_path, **tls_env(server, VERIFYLINE_DESK_SRTP="optimistic")),
                  tmp_path / "etc")

    assert "media_encryption_optimistic = yes\n" in conf


def test_given_a_ca_file_when_rendered_then_desks_must_present_a_certificate_it_signed(
        tmp_path, server, other):
    conf = render(settings(tmp_path, **tls_env(server, VERIFYLINE_TLS_CA_FILE=str(other.cert))),
                  tmp_path / "etc")

    tls = section(conf, "transport-tls")
    assert f"ca_list_file = {other.cert}\n" in tls
    assert "verify_client = yes\n" in tls
    assert "require_client_cert = yes\n" in tls


def test_given_asterisk_in_a_chroot_when_rendered_then_the_files_are_copied_where_it_sees_them(
        tmp_path, server):
    etc = tmp_path / "etc"

    conf = render(settings(tmp_path, **tls_env(server)), etc, etc_inside="/srv/x/etc")

    assert "cert_file = /srv/x/etc/desk-tls.crt\n" in conf
    assert "priv_key_file = /srv/x/etc/desk-tls.key\n" in conf
    assert (etc / "desk-tls.key").read_bytes() == server.key.read_bytes()
    assert stat.S_IMODE((etc / "desk-tls.key").stat().st_mode) == 0o600


@pytest.mark.parametrize(("env", "named"), [
    ({"VERIFYLINE_DESK_TLS_PORT": "5061"},
     ["VERIFYLINE_TLS_CERT_FILE", "VERIFYLINE_TLS_KEY_FILE"]),
    ({"VERIFYLINE_DESK_TLS_PORT": "5061", "VERIFYLINE_TLS_CERT_FILE": "/c.pem"},
     ["VERIFYLINE_TLS_KEY_FILE"]),
    ({"VERIFYLINE_TLS_CERT_FILE": "/c.pem", "VERIFYLINE_TLS_KEY_FILE": "/k.pem"},
     ["VERIFYLINE_DESK_TLS_PORT"]),
    ({"VERIFYLINE_DESK_TLS_PORT": "70000"}, ["VERIFYLINE_DESK_TLS_PORT"]),
    ({"VERIFYLINE_DESK_SRTP": "sometimes"}, ["VERIFYLINE_DESK_SRTP"]),
])
def test_given_incomplete_tls_settings_when_read_then_refused_naming_the_variable(
        tmp_path, env, named):
    with pytest.raises(ConfigError) as refused:
        Settings.from_env({"VERIFYLINE_HOME": str(tmp_path), **env})

    for name in named:
        assert name in str(refused.value)


def test_given_a_missing_certificate_when_rendered_then_refused_and_nothing_written(
        tmp_path, server):
    s = settings(tmp_path, **tls_env(server, VERIFYLINE_TLS_CERT_FILE=str(tmp_path / "no.crt")))

    with pytest.raises(lab.LabError, match=r"VERIFYLINE_TLS_CERT_FILE=.*no\.crt: cannot be read"):
        render(s, tmp_path / "etc")
    assert not (tmp_path / "etc").exists()


def test_given_a_key_of_another_certificate_when_rendered_then_refused(tmp_path, server, other):
    s = settings(tmp_path, **tls_env(server, VERIFYLINE_TLS_KEY_FILE=str(other.key)))

    with pytest.raises(lab.LabError, match="not a PEM certificate and its private key"):
        render(s, tmp_path / "etc")
    assert not (tmp_path / "etc").exists()


def test_given_a_ca_file_that_is_no_certificate_when_rendered_then_refused(tmp_path, server):
    junk = tmp_path / "ca.pem"
    junk.write_text("not a certificate\n")
    s = settings(tmp_path, **tls_env(server, VERIFYLINE_TLS_CA_FILE=str(junk)))

    with pytest.raises(lab.LabError, match=r"VERIFYLINE_TLS_CA_FILE=.*not a PEM list"):
        render(s, tmp_path / "etc")


# --- the ITSP trunk's addresses (docs/operations.md, "Connect an ITSP trunk") ---------------


def test_given_no_trunk_match_when_rendered_then_the_lab_s_caller_address_is_the_trunk(tmp_path):
    conf = render(settings(tmp_path), tmp_path / "etc")

    assert "match = 127.0.0.2\n" in section(conf, "trunk", nth=1)


def test_given_the_itsp_s_addresses_when_rendered_then_the_trunk_matches_exactly_those(
        tmp_path):
    s = settings(tmp_path, VERIFYLINE_TRUNK_MATCH="192.0.2.10, 198.51.100.0/28,2001:db8::5")

    conf = render(s, tmp_path / "etc")

    assert ("match = 192.0.2.10/32,198.51.100.0/28,2001:db8::5/128\n"
            in section(conf, "trunk", nth=1))


@pytest.mark.parametrize("raw", ["itsp.example.net", "192.0.2.300", "192.0.2.1,"])
def test_given_a_trunk_match_that_is_no_address_when_read_then_refused(tmp_path, raw):
    with pytest.raises(ConfigError, match="VERIFYLINE_TRUNK_MATCH"):
        Settings.from_env({"VERIFYLINE_HOME": str(tmp_path), "VERIFYLINE_TRUNK_MATCH": raw})
