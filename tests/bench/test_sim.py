"""The sizing simulator: sane, checkable numbers on tiny traces, CSV traces, the report."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from bench import report, sim
from bench.__main__ import main
from bench.sim import policies
from bench.sim import report as sim_report
from bench.sim.engine import SimConfig
from bench.sim.platform import INSTANT, PlatformModel
from bench.sim.traces import Trace, TraceError, from_csv, steady

INSTANT_PROBE = SimConfig(probe_interval_s=0.0)


def every_policy() -> list[policies.Policy]:
    return policies.default_policies()


def test_with_zero_refill_no_claim_waits() -> None:
    trace = steady(seed=3, hours=1.0, per_minute=2.0)
    for policy in every_policy():
        outcome = sim.simulate(trace, policy, INSTANT, seed=3, config=INSTANT_PROBE)
        assert outcome.claims == sum(1 for t in trace.claims if t >= trace.measure_from), policy.name
        assert max(outcome.waits) == 0.0, policy.name
        assert outcome.unserved == 0
        if policy.kind != "ours":
            # A pool that keeps one or more ready and refills at once always has one.
            assert outcome.hits == outcome.claims, policy.name


def test_demand_above_refill_capacity_starves_small_static_pools() -> None:
    # 4 claims/min against one token that makes one instance a minute.
    slow = PlatformModel(tokens=1, create_interval_s=60.0, failure_rate=0.0)
    trace = steady(seed=5, hours=1.0, per_minute=4.0)
    small = sim.simulate(trace, policies.static(2), slow, seed=5, config=SimConfig())
    assert small.hits / small.claims < 0.1
    # The queue only grows: waits run into tens of minutes, and claims are left unserved.
    assert max(small.waits) > 1200 and small.unserved > 0
    # Every waiting claim asked for its instance; the token's pace, not the pool, held them back.
    assert small.created >= small.claims


def test_a_big_enough_static_pool_is_all_warm_and_costs_its_size() -> None:
    trace = steady(seed=7, hours=2.0, per_minute=0.5)
    model = PlatformModel(failure_rate=0.0)
    big = sim.simulate(trace, policies.static(12), model, seed=7, config=SimConfig())
    assert big.hits == big.claims
    # Never more than 12 idle, and at most ~2 being replaced at 0.5/min: 20-24 idle-h over 2 h.
    assert 20 * 3600 <= big.idle_seconds <= 24 * 3600
    assert big.created == big.claims  # one replacement per claim, nothing else


def test_ours_sizes_from_demand_and_the_same_seed_replays() -> None:
    trace = steady(seed=11, hours=2.0, per_minute=1.0)
    model = PlatformModel()
    first = sim.simulate(trace, policies.ours(), model, seed=11, config=SimConfig())
    again = sim.simulate(trace, policies.ours(), model, seed=11, config=SimConfig())
    assert (first.hits, first.waits, first.idle_seconds, first.created) == (
        again.hits,
        again.waits,
        again.idle_seconds,
        again.created,
    )
    assert first.hits / first.claims >= 0.97
    assert "claims/min × refill" in first.last_reason
    # It kept a pool sized to the demand, not an arbitrary large one.
    assert 4 <= max(target for _, _, target in first.timeline) <= 16


def test_budget_caps_ours_and_says_so() -> None:
    trace = steady(seed=13, hours=2.0, per_minute=1.0)
    capped = policies.ours(policies.Limits(idle_hours_per_day=24.0), name="ours, budget")
    outcome = sim.simulate(trace, capped, PlatformModel(), seed=13, config=SimConfig())
    assert outcome.limited_by["budget"] > 0
    assert "capped by budget 24 idle-h/day" in outcome.last_reason
    assert outcome.idle_seconds / 3600 <= 2.0 * 2 + 0.5  # at most the 1 + 1 a 24 idle-h budget allows


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "claims.csv"
    path.write_text(text)
    return path


def test_csv_traces_parse(tmp_path: Path) -> None:
    seconds = from_csv(write(tmp_path, "at,user\n30,a\n5.5,b\n\n# a comment\n120,c\n"))
    assert seconds.claims == (5.5, 30.0, 120.0) and seconds.duration == 720.0
    stamps = from_csv(
        write(tmp_path, "2024-05-02T09:00:10Z\n2024-05-02T09:00:00\n2024-05-02T10:00:00+01:00\n")
    )
    assert stamps.claims == (0.0, 0.0, 10.0)
    assert stamps.start.isoformat() == "2024-05-02T09:00:00+00:00"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("at\n10\nsoon\n", r"claims.csv:3: 'soon' is neither seconds from the start nor an ISO-8601 time"),
        ("10\n-5\n", r"claims.csv:2: '-5' is not a time >= 0"),
        ("10\n2024-05-02T09:00:00Z\n", r"claims.csv:2: mixes seconds and ISO-8601 times"),
        ("at\n", r"claims.csv: no claim times in it"),
        ("10\nnan\n", r"claims.csv:2: 'nan' is not a time >= 0"),
    ],
)
def test_bad_csv_says_where_and_why(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(TraceError, match=message):
        from_csv(write(tmp_path, text))


def test_missing_csv_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(TraceError, match="cannot read it"):
        from_csv(tmp_path / "nope.csv")


def test_cli_refuses_a_bad_trace_before_running(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["sim", "--trace", str(write(tmp_path, "10\nlater\n"))])
    assert exited.value.code == 2
    assert "claims.csv:2: 'later' is neither seconds" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["claims", "--trace", str(tmp_path / "claims.csv")])
    assert "--trace is for the simulator alone" in capsys.readouterr().err


def test_a_csv_run_renders_its_section(tmp_path: Path) -> None:
    times = "\n".join(str(60.0 * i + 7 * (i % 3)) for i in range(90))
    run = replace(sim.SimRun(), csv=write(tmp_path, f"at\n{times}\n"), csv_warmup_s=1800.0)
    result = sim.run(run)
    (trace,) = result["traces"]
    assert trace["name"] == "claims" and trace["warmup_hours"] == 0.5
    assert {row["policy"] for row in trace["rows"]} >= {"static 1", "original 3", "ours"}
    report.write({"sim": result, "machine": {"cpus": 2}}, tmp_path / "BENCHMARKS.md", tmp_path / "img")
    text = (tmp_path / "BENCHMARKS.md").read_text()
    assert "## Sizing simulator" in text and "| ours |" in text
    assert "- claims: ours" in text
    assert (tmp_path / "img" / "sim.png").stat().st_size > 0


def test_trace_at_maps_seconds_to_the_clock() -> None:
    trace = Trace("t", "", (0.0,), 10.0)
    assert trace.at(3600).isoformat() == "2024-01-01T01:00:00+00:00"


def test_the_reading_judges_ours_and_each_variant_against_the_smallest_static_match() -> None:
    def row(policy: str, kind: str, hit: float, idle_hours: float) -> dict[str, object]:
        return {"policy": policy, "kind": kind, "hit_rate": hit, "idle_hours": idle_hours, "wait_p99_s": 0.0}

    trace = {
        "name": "flash",
        "rows": [
            row("static 8", "static", 0.83, 38.9),
            row("static 48", "static", 1.0, 276.2),
            row("original 3", "original", 0.64, 10.1),
            row("ours", "ours", 0.83, 181.7),
            row("ours, schedule, short peak", "ours", 0.9907, 116.4),
        ],
    }
    first, variant, original = sim_report.reading(trace).splitlines()
    assert first.startswith("- flash: ours 83.00%") and "static 8" in first and "❌ misses" in first
    assert variant.startswith("  - ours, schedule, short peak: 99.07%") and "static 48" in variant
    assert "0.42× its idle-hours (✅ meets" in variant
    assert original.startswith("  - The original (original 3")
