"""The claim queue benchmark's plot and section."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt

from bench.sections.fmt import fmt, ok


def plot(result: dict[str, Any], path: Path) -> None:
    pairs = result.get("pairs") or []
    fig, ax = plt.subplots(figsize=(5, 5))
    waits = [p["wait_s"] for p in pairs]
    etas = [p["eta_s"] for p in pairs]
    ax.scatter(waits, etas, s=12)
    top = max(waits + etas + [1.0])
    ax.plot([0, top], [0, top], linestyle="--", linewidth=1)
    ax.set_xlabel("real wait (s)")
    ax.set_ylabel("ETA given at enqueue (s)")
    ax.set_title("queued claims: ETA against the real wait")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def section(result: dict[str, Any], image: str) -> list[str]:
    config = result["config"]
    relative = result.get("median_relative_error")
    lines = [
        "## Claim queue: ETA honesty",
        "",
        "Command: `python -m bench queue`.",
        "",
        f"The whole system as the soak runs it (real pool and services processes, the fake Railway in "
        f"{config['mode']} mode on its realistic profile, seed {config['seed']}, time scaled ×"
        f"{config['time_scale']}: deploys of 60-180 s take 1.2-3.6 s), a warm pool of {config['min_idle']}. "
        f"{config['waves']} waves of {config['claims_per_wave']} claims, {config['wave_gap_s']} s apart, "
        "through `POST /api/pool/claims`; each queued claim keeps the ETA of its 202 and is followed until "
        "it succeeds. Error = |ETA − real wait|.",
        "",
        "| claims | served at once | queued | queued and served | not served | median wait s | "
        "median abs error s | median error / wait | p90 error / wait |",
        "|---|---|---|---|---|---|---|---|---|",
        "| "
        + " | ".join(
            [
                str(result["claims"]),
                str(result["served_at_once"]),
                str(result["queued"]),
                str(result["queued_served"]),
                str(result["not_served"]),
                fmt(result["median_wait_s"], 2),
                fmt(result["median_abs_error_s"], 2),
                fmt(relative, 3),
                fmt(result.get("p90_relative_error"), 3),
            ]
        )
        + " |",
        "",
    ]
    if relative is not None:
        lines.append(
            f"- Median absolute ETA error = {relative * 100:.0f}% of the real wait (target ≤ 25%): "
            f"{ok(relative <= 0.25)}."
        )
    lines += ["", f"![ETA against the real wait]({image})", ""]
    return lines
