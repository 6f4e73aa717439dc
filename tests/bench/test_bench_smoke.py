"""Every benchmark at a tiny size, so `make bench` cannot rot: each runs end to end (real pool,
services and fleet processes) and its report renders."""

from __future__ import annotations

from pathlib import Path

from bench import claims, queue, reconcile, report, warmup


async def test_benchmarks_run_at_tiny_size_and_render(postgres_admin_url: str, tmp_path: Path) -> None:
    claim_config = claims.ClaimsConfig(
        idle=20,
        concurrencies=(1, 5),
        delays_ms=(0, 50),
        runs=1,
        claims={(0, 1): 4, (0, 5): 10, (50, 1): 2, (50, 5): 5},
        warmup_claims=2,
    )
    results = {
        "claims": await claims.run(postgres_admin_url, claim_config, tmp_path / "logs"),
        "reconcile": await reconcile.run(
            postgres_admin_url,
            reconcile.ReconcileConfig(sizes=(30,), modes=("per-instance",), ticks=1),
            tmp_path / "logs",
        ),
        "warmup": await warmup.run(
            postgres_admin_url,
            warmup.WarmupConfig(target=2, scale=0.02, tokens=2, one_at_a_time=False),
            tmp_path / "logs",
        ),
        "queue": await queue.run(
            postgres_admin_url,
            queue.QueueConfig(min_idle=1, max_total=6, waves=1, claims_per_wave=3),
            tmp_path / "logs",
        ),
    }

    rows = results["claims"]["rows"]
    assert [(r["delay_ms"], r["concurrency"]) for r in rows] == [(0, 1), (0, 5), (50, 1), (50, 5)]
    assert [r["latency_ms"]["n"] for r in rows] == [4, 10, 2, 5]
    assert all(r["errors"] == 0 and r["double_claims"] == 0 for r in rows)
    # Both floors ran the same cases, claimed the same way (every answer its own instance, none
    # left `claiming`).
    for floor in (results["claims"]["floor_rows"], results["claims"]["floor2_rows"]):
        assert [(r["delay_ms"], r["concurrency"], r["latency_ms"]["n"]) for r in floor] == [
            (0, 1, 4),
            (0, 5, 10),
            (50, 1, 2),
            (50, 5, 5),
        ]
        assert all(r["errors"] == 0 and r["double_claims"] == 0 for r in floor)
        assert all(r["checks"]["left_claiming"] == 0 for r in floor)
        assert floor[2]["latency_ms"]["p50"] >= 50
    # The fleet's provision delay is inside the latency, and subtracted from the overhead.
    assert rows[2]["latency_ms"]["p50"] >= 50 > rows[2]["overhead_ms"]["p50"] - rows[0]["overhead_ms"]["max"]

    (tick,) = results["reconcile"]["rows"]
    # A steady tick: one aliased batch of its 30 environments, no listing. The safety net's
    # listing: one page of projects, one aliased batch of 30 environments.
    assert tick["railway_calls"]["max"] == tick["expected_calls"] == 1
    assert tick["listing"]["railway_calls"] == 2 and tick["listing"]["reported"] == 0
    assert tick["errors"] == []

    (refill,) = results["warmup"]["rows"]
    assert refill["reached"] and refill["railway_calls"]["ProjectCreate"] == 2

    # Three claims against one idle instance: at least two wait in the queue, and all are served.
    assert results["queue"]["claims"] == 3 and results["queue"]["not_served"] == 0
    assert results["queue"]["queued"] >= 2

    results["machine"] = {"cpus": 2}
    report.write(results, tmp_path / "BENCHMARKS.md", tmp_path / "img")
    text = (tmp_path / "BENCHMARKS.md").read_text()
    for heading in ("## Claim", "## Reconcile at scale", "## Warm-up", "## Claim queue"):
        assert heading in text
    assert "| overhead p50 / p99 ms: 1 st. | 2 st. | pool |" in text and "| 50 ms | 5 |" in text
    assert sorted(p.name for p in (tmp_path / "img").iterdir()) == [
        "claims.png",
        "queue.png",
        "reconcile.png",
        "warmup.png",
    ]
