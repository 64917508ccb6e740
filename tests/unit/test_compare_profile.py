"""The comparison benchmark's profile options, summary and machine-speed note
(benchmarks/compare.py), without a lab."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.compare import machine_speed, parse_args, profile_summary, speed_note

STACKS = ("main (ops/cli.py:1);run (ivr/callflow.py:2) 3\n"
          "main (ops/cli.py:1);_run (ivr/journal.py:3) 1\n")


def test_given_profile_gil_without_a_profile_file_then_a_clear_error(
        capsys: pytest.CaptureFixture[str]) -> None:
    # when --profile-gil is given alone
    with pytest.raises(SystemExit) as exit_:
        parse_args(["--profile-gil"])

    # then the command stops with a usage error that names what is missing
    assert exit_.value.code == 2
    assert "--profile-gil needs --profile FILE" in capsys.readouterr().err


def test_given_profile_gil_then_the_options_and_the_summary_say_so(tmp_path: Path) -> None:
    # given a GIL-only profile asked for and its stacks written
    opts = parse_args(["--profile", str(tmp_path / "app.txt"), "--profile-gil"])
    (tmp_path / "app.txt").write_text(STACKS)

    # when it is summed up
    summary = profile_summary(tmp_path / "app.txt", gil_only=opts.profile_gil)

    # then the summary says which samples it counts, and counts them all
    assert opts.profile_gil
    assert summary.splitlines()[0] == "4 samples (100 Hz, the thread holding the GIL)"
    assert "| 75.0 | `ivr/callflow.py:run` |" in summary


def test_given_a_plain_profile_then_every_thread_is_counted(tmp_path: Path) -> None:
    (tmp_path / "app.txt").write_text(STACKS)

    summary = profile_summary(tmp_path / "app.txt")

    assert summary.splitlines()[0] == (
        "4 samples (100 Hz, every thread; py-spy leaves out idle threads)")


def test_given_the_machine_timed_before_and_after_then_the_heading_says_both() -> None:
    # given a short timing (the real one sums 20 million squares, about a second)
    took = machine_speed(200_000)
    # then it is a duration, and the heading's note gives both ends of the run
    assert 0 < took < 5
    note = speed_note(0.861, 1.234)
    assert "0.86 s before the first flow, 1.23 s after the last" in note
    assert "20,000,000 squares" in note
