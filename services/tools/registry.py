"""Tool plugins by name. A builder returns None when its keys are not configured, and such a
tool is absent from `/registry` and refused with 400 when asked for.

Tests swap a plugin in by name (`monkeypatch.setitem(TOOLS, "echo", ...)`).
"""

from __future__ import annotations

from collections.abc import Callable

from services.tools.agentmail import build_agentmail
from services.tools.bankr import build_bankr
from services.tools.base import ToolContext, ToolProvider
from services.tools.openrouter import build_openrouter
from services.tools.telnyx import build_telnyx
from shared.errors import BadRequest

ToolBuilder = Callable[[ToolContext], ToolProvider | None]

TOOLS: dict[str, ToolBuilder] = {
    "openrouter": build_openrouter,
    "agentmail": build_agentmail,
    "telnyx": build_telnyx,
    "bankr": build_bankr,
}


def build_tools(context: ToolContext) -> dict[str, ToolProvider]:
    tools: dict[str, ToolProvider] = {}
    for name, builder in TOOLS.items():
        tool = builder(context)
        if tool is not None:
            tools[name] = tool
    return tools


def get_tool(tools: dict[str, ToolProvider], tool_id: str) -> ToolProvider:
    try:
        return tools[tool_id]
    except KeyError:
        configured = ", ".join(sorted(tools)) or "none"
        raise BadRequest(f"tool {tool_id!r} is not configured (configured: {configured})") from None
