"""Claimed agents for the template tests: reference runtimes served over real HTTP (each on its own
data directory) and rows that say which template they were claimed from."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from runtime.app import create_app as create_runtime_app
from runtime.config import Settings as RuntimeSettings
from shared.ids import new_instance_id
from tests.pool.factories import make_instance
from tests.support import serve


@dataclass
class Runtime:
    instance_id: str
    url: str
    token: str
    data_dir: Path

    def binding(self) -> dict[str, Any]:
        return dict(json.loads((self.data_dir / "binding.json").read_text()))


@contextlib.asynccontextmanager
async def runtime(tmp_path: Path, **knobs: Any) -> AsyncIterator[Runtime]:
    """One reference runtime on a loopback port, bound to a conversation as a claim leaves it."""
    instance_id = new_instance_id()
    token = f"pool_gw_{instance_id}_token"
    data_dir = tmp_path / instance_id
    settings = RuntimeSettings(
        gateway_token=token, instance_id=instance_id, runtime_data_dir=data_dir, **knobs
    )
    async with serve(create_runtime_app(settings)) as url:
        yield Runtime(instance_id, url, token, data_dir)


async def bind(url: str, token: str, *, instructions: str = "Be kind.", join_url: str | None = None) -> str:
    """Provision the instance as a claim would; its conversation id."""
    body: dict[str, Any] = {"agentName": "Ada", "instructions": instructions}
    if join_url is not None:
        body["joinUrl"] = join_url
    async with httpx.AsyncClient(timeout=10) as http:
        response = await http.post(
            f"{url}/pool/provision", json=body, headers={"Authorization": f"Bearer {token}"}
        )
    assert response.status_code == 200, response.text
    return str(response.json()["conversationId"])


async def add_agent(
    sessionmaker: async_sessionmaker[AsyncSession],
    *,
    url: str,
    token: str,
    template_id: str,
    status: str = "claimed",
    instance_id: str | None = None,
    **values: Any,
) -> str:
    """The pool's row of an agent claimed from `template_id`."""
    async with sessionmaker() as session, session.begin():
        row = await make_instance(
            session,
            id=instance_id or new_instance_id(),
            token=token,
            status=status,
            url=url,
            template_id=template_id,
            **values,
        )
    return row.id
