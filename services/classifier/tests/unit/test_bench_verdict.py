"""make bench's verdict: every live target decides the exit status; the retired OIP target is
reported with its measured share of the inference ceiling and never fails the run."""

from __future__ import annotations

import argparse

import pytest
from bench import report as bench_report
from bench.harness import Overload, Run
from bench.report import render

CEILING, NAIVE = 4500.0, 420.0


def _report(monkeypatch: pytest.MonkeyPatch, *, v1_rps: float, oip_rps: float) -> str:
    monkeypatch.setattr(bench_report, "tool_version", lambda argv: "wrk 4.1.0")
    results = {
        "seed-style baseline (Flask + gunicorn)": [Run(rps=217, p50_ms=72.9, p99_ms=87.5)],
        "v1 classify, 24 PNG": [Run(rps=v1_rps, p50_ms=39.0, p99_ms=73.8)],
        "OIP infer, binary UINT8 tensor": [Run(rps=oip_rps, p50_ms=15.2, p99_ms=31.8)],
    }
    load = Overload(
        accepted=20501,
        shed=83105,
        other=0,
        accepted_p50_ms=129.3,
        accepted_p99_ms=170.5,
        shed_p50_ms=131.2,
        shed_p99_ms=170.6,
        rss_start_kib=315 * 1024,
        rss_end_kib=327 * 1024,
        seconds=60,
        server_p99_at_most_ms=250,
    )
    args = argparse.Namespace(rounds=3, seconds=8.0, concurrency=16, overload_concurrency=256)
    return render(results, CEILING, NAIVE, load, args, cores=2)


def _row(report: str, start: str) -> str:
    (row,) = [line for line in report.splitlines() if line.startswith(start)]
    return row


def test_the_oip_share_is_reported_but_does_not_fail_the_run(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    report = _report(monkeypatch, v1_rps=430, oip_rps=1029)

    oip = _row(report, "| OIP binary share of the inference ceiling")
    assert oip == (
        "| OIP binary share of the inference ceiling (70% target retired) | 23% "
        "| reported, not a target |"
    )
    assert "FAIL" not in report  # what makes `make bench` exit 0
    assert report.count("| PASS |") == 6


def test_a_live_target_missed_still_fails_the_run(monkeypatch: pytest.MonkeyPatch) -> None:
    report = _report(monkeypatch, v1_rps=300, oip_rps=1029)

    assert _row(report, "| /v1 PNG >= 1.7x seed-style baseline").endswith("| FAIL |")
    assert _row(report, "| /v1 PNG >= 1.0x naive").endswith("| FAIL |")
