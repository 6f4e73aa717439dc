"""`python -m devtools.soak --mode shared --seconds 600 --seed 7 [--templates]`: one soak run, its
report as JSON."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random

from devtools.soak import Report, Soak, SoakConfig, running_system


async def soak(mode: str, seconds: float, seed: int, time_scale: float, templates: bool) -> Report:
    extra = {"templates": True, "max_total": 10} if templates else {}
    config = SoakConfig(mode=mode, seed=seed, time_scale=time_scale, **extra)  # type: ignore[arg-type]
    async with running_system(config) as system:
        return await Soak(system, seconds).run()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--mode", choices=["shared", "per-instance"], default="shared")
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--seed", type=int, default=int(os.environ.get("SOAK_SEED", random.randrange(10**6))))
    parser.add_argument("--time-scale", type=float, default=0.02)
    parser.add_argument(
        "--templates", action="store_true", help="two more templates, rollouts and an archive during the run"
    )
    args = parser.parse_args()
    report = asyncio.run(soak(args.mode, args.seconds, args.seed, args.time_scale, args.templates))
    print(json.dumps(report.summary(), indent=2))
    return 1 if report.violations else 0


if __name__ == "__main__":
    raise SystemExit(main())
