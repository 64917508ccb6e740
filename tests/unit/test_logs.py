"""Log lines: the lab's human format by default; JSON lines with the call's id on every line
logged while a call is handled, and the level, from VERIFYLINE_LOG_FORMAT / _LOG_LEVEL."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from ivr import logs
from ivr.config import Settings
from ivr.exceptions import ConfigError


@pytest.fixture
def restore_root() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for h in list(root.handlers):
        root.removeHandler(h)
    for h in handlers:
        root.addHandler(h)
    root.setLevel(level)


def configured(tmp_path: Path, **env: str) -> io.StringIO:
    out = io.StringIO()
    settings = Settings.from_env({"VERIFYLINE_HOME": str(tmp_path), **env})
    logs.configure(settings, stream=out)
    return out


def lines(out: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in out.getvalue().splitlines()]


def test_given_json_format_when_a_call_task_logs_then_every_line_is_json_with_its_call_id(
        tmp_path, restore_root):
    out = configured(tmp_path, VERIFYLINE_LOG_FORMAT="json")
    log = logging.getLogger("ari_app.runtime")

    async def call(channel_id: str) -> None:
        logs.CALL_ID.set(channel_id)
        log.info("answered")
        await asyncio.sleep(0)  # the other call's task runs meanwhile, with its own id
        log.warning("desk %s did not answer", "desk1")

    async def both() -> None:
        await asyncio.gather(call("1700.1"), call("1700.2"))
        log.info("no call here")
        log.info("Call %s: dtmf %s", "1700.3", "5")  # named by the router, outside a task

    asyncio.run(both())

    got = lines(out)
    assert [(g["call_id"], g["message"]) for g in got] == [
        ("1700.1", "answered"), ("1700.2", "answered"),
        ("1700.1", "desk desk1 did not answer"), ("1700.2", "desk desk1 did not answer"),
        (None, "no call here"), ("1700.3", "Call 1700.3: dtmf 5")]
    assert {g["level"] for g in got} == {"INFO", "WARNING"}
    assert {g["logger"] for g in got} == {"ari_app.runtime"}
    assert all(str(g["ts"]).endswith("+00:00") for g in got)  # UTC, ISO 8601


def test_given_json_format_when_an_exception_is_logged_then_its_traceback_is_in_the_line(
        tmp_path, restore_root):
    out = configured(tmp_path, VERIFYLINE_LOG_FORMAT="json")
    try:
        raise ValueError("bad digit")
    except ValueError:
        logging.getLogger("ivr").exception("Call %s: failed handling %s", "9.1", "Dtmf")

    (line,) = lines(out)
    assert line["call_id"] == "9.1" and line["level"] == "ERROR"
    assert "ValueError: bad digit" in str(line["exc_info"])


def test_given_log_level_warning_in_the_environment_when_info_is_logged_then_it_is_dropped(
        tmp_path, restore_root):
    out = configured(tmp_path, VERIFYLINE_LOG_FORMAT="json", VERIFYLINE_LOG_LEVEL="warning")
    log = logging.getLogger("ivr.journal")

    log.info("quiet")
    log.warning("loud")

    assert [g["message"] for g in lines(out)] == ["loud"]


def test_given_no_setting_when_logging_then_the_labs_human_format_at_info(tmp_path,
                                                                        restore_root):
    out = configured(tmp_path)
    log = logging.getLogger("ari_app.stasis")

    log.debug("hidden")
    log.info("Call %s: dtmf %s", "1.1", "5")

    (line,) = out.getvalue().splitlines()
    assert line.endswith(" INFO ari_app.stasis: Call 1.1: dtmf 5")
    with pytest.raises(ValueError):
        json.loads(line)


@pytest.mark.parametrize("env", [{"VERIFYLINE_LOG_FORMAT": "xml"},
                                 {"VERIFYLINE_LOG_LEVEL": "chatty"},
                                 {"VERIFYLINE_METRICS_PORT": "70000"}])
def test_given_a_bad_log_or_metrics_setting_when_read_then_refused(tmp_path, env):
    with pytest.raises(ConfigError):
        Settings.from_env({"VERIFYLINE_HOME": str(tmp_path), **env})
