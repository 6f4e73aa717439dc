"""Tool plugins by name. A builder returns None when its keys are not configured, and such a
tool is absent from `/registry` and refused with 400 when asked for.

Tests swap a plugin in by name (`monkeypatch.setitem(TOOLS, "echo", ...)`).
"""

from __future__ import annotations

from collections.abc import Callable

import httpx

from services.config import Settings
from services.tools.agentmail import build_agentmail
from services.tools.base import ToolProvider
from services.tools.openrouter import build_openrouter
from services.tools.pooled import build_bankr
from services.tools.telnyx import build_telnyx
from services.tools.testing import build_echo_tool
from shared.errors import BadRequest

ToolBuilder = Callable[[Settings, httpx.AsyncClient], ToolProvider | None]

TOOLS: dict[str, ToolBuilder] = {
    "echo": build_echo_tool,
    "openrouter": build_openrouter,
    "agentmail": build_agentmail,
    "telnyx": build_telnyx,
    "bankr": build_bankr,
}


def build_tools(settings: Settings, http_client: httpx.AsyncClient) -> dict[str, ToolProvider]:
    tools: dict[str, ToolProvider] = {}
    for name, builder in TOOLS.items():
        tool = builder(settings, http_client)
        if tool is not None:
            tools[name] = tool
    return tools


def get_tool(tools: dict[str, ToolProvider], tool_id: str) -> ToolProvider:
    try:
        return tools[tool_id]
    except KeyError:
        configured = ", ".join(sorted(tools)) or "none"
        raise BadRequest(f"tool {tool_id!r} is not configured (configured: {configured})") from None
