"""`python -m devtools.railway_fake --port 8010`: the fake Railway API on loopback."""

from __future__ import annotations

import argparse

import uvicorn

from devtools.faults import PROFILES, Faults
from devtools.railway_fake import DeploySettings, FakeRailway, FakeSettings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8010)
    parser.add_argument("--token", action="append", default=[], help="accepted bearer token (repeatable)")
    parser.add_argument("--project-interval", type=float, default=30.0, help="s between projects per token")
    parser.add_argument("--volume-interval", type=float, default=0.0, help="s between volumes per token")
    parser.add_argument("--rps", type=float, default=None, help="requests per second before 429")
    parser.add_argument("--deploy-seconds", type=float, default=1.0, help="QUEUED→SUCCESS duration")
    parser.add_argument("--error-rate", type=float, default=0.0)
    parser.add_argument("--services-per-project", type=int, default=100, help="serviceCreate refused past it")
    parser.add_argument("--profile", choices=sorted(PROFILES), default="instant", help="devtools/faults.py")
    parser.add_argument("--time-scale", type=float, default=1.0, help="multiplies the profile's durations")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    faults = Faults.named(args.profile, time_scale=args.time_scale, seed=args.seed, salt="railway")
    step = args.deploy_seconds / 3
    fake = FakeRailway(
        FakeSettings(
            tokens=set(args.token),
            project_create_interval=args.project_interval,
            volume_create_interval=args.volume_interval,
            requests_per_second=args.rps,
            error_rate=args.error_rate,
            services_per_project=args.services_per_project,
            faults=faults,
        ),
        DeploySettings(queued_seconds=step, building_seconds=step, deploying_seconds=step, faults=faults),
    )
    print(f"fake railway: http://{args.host}:{args.port}/graphql/v2", flush=True)
    uvicorn.run(fake.app(), host=args.host, port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
