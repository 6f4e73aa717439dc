"""After the quiesce and a sweep (DESIGN §14.1): nothing billed that no pool instance owns, and every
live ledger row's resource exists; read from the fakes' inventories and both databases."""

from __future__ import annotations

from typing import Any

import asyncpg

from devtools.soak.system import System


async def live_instances(system: System) -> set[str]:
    conn = await asyncpg.connect(system.pool_db)
    try:
        return {r["id"] for r in await conn.fetch("SELECT id FROM instances")}
    finally:
        await conn.close()


async def ledger_rows(system: System) -> list[dict[str, Any]]:
    conn = await asyncpg.connect(system.services_db)
    try:
        rows = await conn.fetch(
            "SELECT instance_id, tool_id, resource_id, status FROM instance_services WHERE status = 'active'"
        )
        return [dict(r) for r in rows]
    finally:
        await conn.close()


def _owner(name: str, instances: set[str]) -> str | None:
    return next((i for i in instances if i in name), None)


async def check_leaks(system: System) -> list[tuple[str, str]]:
    """After the quiesce and a sweep: nothing billed that no pool instance owns, and every live ledger
    row's resource exists."""
    found: list[tuple[str, str]] = []
    instances = await live_instances(system)
    leftovers = system.railway.store.leftovers()
    for kind in ("projects", "services"):
        for name in leftovers[kind]:
            if name == "fleet":  # shared mode's own project
                continue
            if _owner(name, instances) is None:
                found.append(("railway_leak", f"{kind[:-1]} {name} owned by no instance"))
    inventory = system.vendors.vendors.inventory()
    for vendor, names in inventory.items():
        for name in names:
            if _owner(name, instances) is None:
                found.append(("vendor_leak", f"{vendor}: {name} owned by no instance"))
    existing = {
        "openrouter": set(system.vendors.vendors.openrouter.keys),
        "agentmail": set(system.vendors.vendors.agentmail.inboxes),
        "telnyx": {n["phone_number"] for n in system.vendors.vendors.telnyx.numbers.values()}
        | set(system.vendors.vendors.telnyx.numbers),
    }
    for row in await ledger_rows(system):
        tool, resource = row["tool_id"], row["resource_id"]
        if tool in existing and resource and resource not in existing[tool]:
            found.append(("ledger_missing_resource", f"{tool} {resource} of {row['instance_id']}"))
    return found
