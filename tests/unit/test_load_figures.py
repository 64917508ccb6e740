"""The load benchmark's own arithmetic (benchmarks/load.py), without a lab."""

from __future__ import annotations

from benchmarks.load import ProcSample, Sample, rss_by_minute


def sample(at: float, rss_mib: float) -> Sample:
    proc = ProcSample(ticks=0, rss_kb=int(rss_mib * 1024), fds=10)
    return Sample(at, {"app": proc}, {"app": 1}, (0, 0), None)


def test_given_a_soak_then_rss_by_minute_is_the_largest_in_each_whole_minute() -> None:
    # given samples once a second for 150 s, the app growing 1 MiB a minute
    samples = [sample(1000.0 + t, 80.0 + t // 60) for t in range(150)]

    # when the figures are made for the window
    by_minute = rss_by_minute(samples, "app", 1000.0, 1150.0)

    # then two whole minutes (the half minute at the end is left out)
    assert by_minute == [80.0, 81.0]


def test_given_a_short_run_then_no_minute_is_reported() -> None:
    samples = [sample(1000.0 + t, 80.0) for t in range(30)]

    assert rss_by_minute(samples, "app", 1000.0, 1030.0) == []
