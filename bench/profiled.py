"""`python -m bench.profiled OUT -m MODULE`: run MODULE (`python -m MODULE`) under cProfile and write
its stats to OUT when it stops, SIGTERM included (uvicorn re-raises the signal it caught after
its graceful shutdown, which `python -m cProfile` does not survive). Used by `bench.profile`.

Timed by the process's CPU clock, not the wall clock: on a loaded machine a socket write that
wakes the reader often loses the CPU to it, and wall time charges that wait to the write."""

from __future__ import annotations

import cProfile
import runpy
import signal
import sys
import time
from types import FrameType


def main() -> None:
    out, flag, module = sys.argv[1:4]
    if flag != "-m":
        raise SystemExit("usage: python -m bench.profiled OUT -m MODULE")
    profiler = cProfile.Profile(time.process_time)

    def stop(signum: int, frame: FrameType | None) -> None:
        profiler.disable()
        profiler.dump_stats(out)
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)
    sys.argv = [module, *sys.argv[4:]]
    profiler.enable()
    try:
        runpy.run_module(module, run_name="__main__", alter_sys=True)
    finally:
        profiler.disable()
        profiler.dump_stats(out)


if __name__ == "__main__":
    main()
