"""docker-compose.yml, checked offline: valid against the compose specification's schema
(check-jsonschema's builtin copy, no network), and holding the promises the deployment makes
(host networking, restarts, health checks, secrets without defaults, named volumes, start
order). tests/e2e/test_compose.py runs the file for real (make test-compose)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML

REPO = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO / "docker-compose.yml"
LONG_RUNNING = ("postgres", "asterisk", "ari-app", "console")
SECRETS = ("VERIFYLINE_ARI_PASSWORD", "VERIFYLINE_CONSOLE_SECRET", "VERIFYLINE_DB_PASSWORD")


def validate(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.compose-spec",
         str(path)], capture_output=True, text=True, timeout=60)


def services() -> dict[str, Any]:
    doc: dict[str, Any] = YAML(typ="safe").load(COMPOSE_FILE.read_text())
    found: dict[str, Any] = doc["services"]
    return found


def test_given_the_compose_file_when_validated_against_the_compose_spec_then_it_is_valid():
    result = validate(COMPOSE_FILE)

    assert result.returncode == 0, result.stdout + result.stderr


def test_given_a_service_with_a_misspelt_key_when_validated_then_the_schema_refuses_it(
        tmp_path):
    bad = tmp_path / "docker-compose.yml"
    bad.write_text(COMPOSE_FILE.read_text().replace("    healthcheck:\n", "    healtcheck:\n", 1))

    result = validate(bad)

    assert result.returncode == 1
    assert "'healtcheck' was unexpected" in result.stdout


def test_given_the_compose_file_then_every_long_running_service_uses_the_host_network_restarts_and_is_health_checked():  # noqa: E501
    found = services()

    for name in LONG_RUNNING:
        service = found[name]
        assert service["network_mode"] == "host", name
        assert service["restart"] == "unless-stopped", name
        assert service["healthcheck"]["test"][0] == "CMD", name
    # the one-shot that renders Asterisk's configuration must not be restarted for ever
    assert found["asterisk-config"]["restart"] == "no"


def test_given_the_compose_file_then_each_secret_is_required_and_has_no_default():
    text = COMPOSE_FILE.read_text()

    for secret in SECRETS:
        uses = re.findall(r"\$\{" + secret + r"(:?[-?+])?[^}]*\}", text)
        assert uses, f"{secret} is not used"
        assert set(uses) == {":?"}, f"{secret} has a default or is optional somewhere: {uses}"


def test_given_the_compose_file_then_the_app_waits_for_a_healthy_database_and_asterisk_and_the_console_for_the_app():  # noqa: E501
    found = services()

    assert found["ari-app"]["depends_on"] == {
        "postgres": {"condition": "service_healthy"},
        "asterisk": {"condition": "service_healthy"}}
    assert found["console"]["depends_on"] == {"ari-app": {"condition": "service_healthy"}}
    assert found["asterisk"]["depends_on"] == {
        "asterisk-config": {"condition": "service_completed_successfully"}}


def test_given_the_compose_file_then_the_data_lives_in_named_volumes():
    doc: dict[str, Any] = YAML(typ="safe").load(COMPOSE_FILE.read_text())
    found = doc["services"]

    assert {"database", "recordings", "spool", "journal"} <= set(doc["volumes"])
    assert "database:/var/lib/postgresql/data" in found["postgres"]["volumes"]
    assert "journal:/var/lib/verifyline/journal" in found["ari-app"]["volumes"]
    # Asterisk writes the recordings and the fallback spool; the app and the console read them
    assert "recordings:/var/spool/asterisk/recording" in found["asterisk"]["volumes"]
    assert "spool:/var/lib/verifyline/spool" in found["asterisk"]["volumes"]
    assert "spool:/var/lib/verifyline/spool" in found["ari-app"]["volumes"]
    assert "recordings:/var/spool/asterisk/recording:ro" in found["console"]["volumes"]
