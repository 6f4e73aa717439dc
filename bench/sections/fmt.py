"""How the sections write a figure and a verdict."""

from __future__ import annotations

import math
from typing import Any


def ok(good: bool) -> str:
    return "✅ meets" if good else "❌ misses"


def fmt(value: Any, digits: int = 1) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{value:,.{digits}f}" if isinstance(value, float) else f"{value:,}"
