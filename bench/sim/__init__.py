"""The sizing simulator (`python -m bench sim`): policies against demand traces, in simulated time.

Each (trace, policy) pair runs `bench.sim.engine.Simulation` with the same seed, so every policy
meets the same claims and the same platform dice (per create, in create order). The result is a
JSON-able dict; `bench.sim.report` turns it into the BENCHMARKS.md section and the plots.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.sim import policies as policies_module
from bench.sim import traces
from bench.sim.engine import Outcome, SimConfig, Simulation
from bench.sim.platform import PlatformModel
from bench.sim.policies import Policy
from bench.sim.report import plotted
from bench.stats import percentile

# A plot point every this many seconds (the timeline is kept per tick).
SERIES_STEP_S = 300.0


@dataclass(frozen=True)
class SimRun:
    seed: int = 1
    trace_names: tuple[str, ...] = tuple(traces.BUNDLED)
    csv: Path | None = None
    csv_warmup_s: float = 0.0
    model: PlatformModel = field(default_factory=PlatformModel)
    config: SimConfig = field(default_factory=SimConfig)


QUICK = SimRun(trace_names=("steady", "bursty"))


def load_traces(run: SimRun) -> list[traces.Trace]:
    if run.csv is not None:
        return [traces.from_csv(run.csv, warmup_seconds=run.csv_warmup_s)]
    return [traces.BUNDLED[name](run.seed) for name in run.trace_names]


def simulate(
    trace: traces.Trace, policy: Policy, model: PlatformModel, seed: int, config: SimConfig
) -> Outcome:
    return Simulation(policy, trace, model, seed, config).run()


def summarise(policy: Policy, outcome: Outcome, trace: traces.Trace) -> dict[str, Any]:
    hours = (trace.duration - trace.measure_from) / 3600
    waits = outcome.waits
    return {
        "policy": policy.name,
        "kind": policy.kind,
        "claims": outcome.claims,
        "hit_rate": round(outcome.hits / outcome.claims, 4) if outcome.claims else None,
        "wait_p50_s": round(percentile(waits, 50), 1) if waits else None,
        "wait_p99_s": round(percentile(waits, 99), 1) if waits else None,
        "wait_max_s": round(max(waits), 1) if waits else None,
        "unserved": outcome.unserved,
        "idle_hours": round(outcome.idle_seconds / 3600, 1),
        "mean_idle": round(outcome.idle_seconds / 3600 / hours, 2) if hours else None,
        "created": outcome.created,
        "failed_creates": outcome.failed_creates,
        "recycled": outcome.recycled,
        "drained": outcome.drained,
        "limited_by": dict(outcome.limited_by),
        "last_reason": outcome.last_reason,
    }


def series(outcome: Outcome, trace: traces.Trace) -> dict[str, Any]:
    """The idle count every SERIES_STEP_S from the start (the plot's line) and the misses' times."""
    idle: list[int] = []
    for seconds, count, _ in outcome.timeline:
        if seconds >= len(idle) * SERIES_STEP_S and seconds <= trace.duration:
            idle.append(count)
    return {
        "step_h": SERIES_STEP_S / 3600,
        "idle": idle,
        "misses": [round(t / 3600, 3) for t in outcome.misses],
    }


def run(config: SimRun) -> dict[str, Any]:
    started = time.perf_counter()
    result: dict[str, Any] = {
        "config": {
            "seed": config.seed,
            "platform": config.model.describe(),
            "tick_s": config.config.tick_interval_s,
            "probe_s": config.config.probe_interval_s,
        },
        "traces": [],
    }
    for trace in load_traces(config):
        rows, plots = [], {}
        for policy in policies_module.default_policies(trace.name):
            outcome = simulate(trace, policy, config.model, config.seed, config.config)
            rows.append(summarise(policy, outcome, trace))
            plots[policy.name] = series(outcome, trace)
        # Only the policies the plot draws keep their series: the results file stays readable.
        drawn = plotted(rows)
        plots = {name: plots[name] for name in drawn}
        result["traces"].append(
            {
                "name": trace.name,
                "description": trace.description,
                "hours": round((trace.duration - trace.measure_from) / 3600, 2),
                "warmup_hours": round(trace.measure_from / 3600, 2),
                "rows": rows,
                "series": plots,
            }
        )
    result["sim_seconds"] = round(time.perf_counter() - started, 1)
    return result
