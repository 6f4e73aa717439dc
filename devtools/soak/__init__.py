"""The chaos soak (DESIGN §14): the whole system as real processes, faults injected, invariants checked.

    async with running_system(SoakConfig(mode="shared", seed=7)) as system:
        report = await Soak(system, seconds=60).run()

Used by tests/soak (short in `make test`, long in `make soak`) and `python -m devtools.soak`.
"""

from devtools.soak.chaos import Soak
from devtools.soak.report import Report
from devtools.soak.system import SoakConfig, running_system

__all__ = ["Report", "Soak", "SoakConfig", "running_system"]
