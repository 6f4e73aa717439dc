"""What a soak run reports: its operations, answers, faults, violations (with an example of each)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Report:
    mode: str
    seed: int
    seconds: float
    operations: Counter[str] = field(default_factory=Counter)
    answers: Counter[str] = field(default_factory=Counter)
    faults: Counter[str] = field(default_factory=Counter)
    injected: dict[str, dict[str, int]] = field(default_factory=dict)
    violations: Counter[str] = field(default_factory=Counter)
    examples: dict[str, str] = field(default_factory=dict)
    converge_seconds: float | None = None
    restarts: dict[str, int] = field(default_factory=dict)
    # Templates and rollouts (devtools/soak/templates.py): claims per template, rollouts' ends.
    templates: dict[str, Any] = field(default_factory=dict)

    def add(self, found: list[tuple[str, str]]) -> None:
        for kind, detail in found:
            self.violations[kind] += 1
            self.examples.setdefault(kind, detail)

    def summary(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "seed": self.seed,
            "seconds": round(self.seconds, 1),
            "operations": dict(self.operations),
            "answers": dict(sorted(self.answers.items())),
            "faults": dict(self.faults),
            "fakes_injected": self.injected,
            "violations": dict(self.violations),
            "examples": self.examples,
            "converge_seconds": None if self.converge_seconds is None else round(self.converge_seconds, 1),
            "restarts": self.restarts,
            **({"templates": self.templates} if self.templates else {}),
        }
