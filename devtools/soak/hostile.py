"""Hostile claim bodies the soak sends in turn: each must be refused with a 4xx and change nothing."""

from __future__ import annotations

from typing import Any

# 2,000 characters outside the Basic Multilingual Plane: too big for a btree index entry.
ASTRAL = "\U0001f600" * 2000
HOSTILE: list[tuple[str, Any]] = [
    ("nul_instructions", {"agentName": "a", "instructions": "x\u0000y"}),
    ("nul_metadata", {"agentName": "a", "instructions": "x", "metadata": {"k": "\u0000"}}),
    ("nan_metadata", '{"agentName": "a", "instructions": "x", "metadata": {"k": NaN}}'),
    ("nul_join_url", {"agentName": "a", "instructions": "x", "joinUrl": "https://convos.org/\u0000"}),
    ("lone_surrogate", '{"agentName": "\\ud800", "instructions": "x"}'),
    ("astral_join_url", {"agentName": "a", "instructions": "x", "joinUrl": "https://c.org/" + ASTRAL}),
    ("huge_body", {"agentName": "a", "instructions": "x" * 3_000_000}),
]  # fmt: skip
