"""`echo`: a tool plugin with no network, for tests and local demos.

It behaves like a per-instance provider should (idempotent provision, "already gone" revoke is
success) and counts what it was asked, so ledger tests can check what reached the provider.
Tests swap it into the registry by name (the `echo` fixture in tests/services/conftest.py).
"""

from __future__ import annotations

import asyncio
import secrets
from typing import Any

from services.tools.base import Grant, InventoryItem
from shared.errors import TransientError


class EchoTool:
    name = "echo"
    env_key = "ECHO_API_KEY"
    mode = "per-instance"

    def __init__(
        self,
        *,
        name: str = "echo",
        env_key: str = "ECHO_API_KEY",
        provision_delay: float = 0.0,
        fail_provision: bool = False,
    ) -> None:
        self.name = name
        self.env_key = env_key
        self.provision_delay = provision_delay
        self.fail_provision = fail_provision
        # resource id → (instance id, secret): what exists "at the provider".
        self.resources: dict[str, tuple[str, str]] = {}
        self.provision_calls = 0
        self.revoke_calls = 0
        self._counter = 0

    async def provision(self, instance_id: str) -> Grant:
        self.provision_calls += 1
        if self.provision_delay:
            await asyncio.sleep(self.provision_delay)
        if self.fail_provision:
            raise TransientError("echo provider refused to provision (fail_provision is set)")
        for resource_id, (owner, secret) in self.resources.items():
            if owner == instance_id:
                return Grant(resource_id=resource_id, env_value=secret)
        self._counter += 1
        resource_id = f"{self.name}-{instance_id}-{self._counter}"
        # A vendor's key shape (`*_sk_`), which the logs redact; not one of the tokens we mint.
        secret = f"echo_sk_{secrets.token_urlsafe(32)}"
        self.resources[resource_id] = (instance_id, secret)
        return Grant(resource_id=resource_id, env_value=secret, meta={"owner": instance_id})

    async def revoke(self, resource_id: str, meta: dict[str, Any]) -> None:
        self.revoke_calls += 1
        self.resources.pop(resource_id, None)

    async def inventory(self) -> list[InventoryItem]:
        return [InventoryItem(resource_id=rid, name=owner) for rid, (owner, _) in self.resources.items()]
