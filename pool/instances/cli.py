"""`poolctl sync|upgrade|agents`: one agent's template actions and an owner's agents through the
operator API (registered on `poolctl`'s top level by `pool.cli`)."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlencode

import typer
from rich.table import Table

from pool.cli_http import DEFAULT_URL, KeyOpt, UrlOpt, call, console

InstanceArg = Annotated[str, typer.Argument(help="Instance id.")]


def sync(instance_id: InstanceArg, url: UrlOpt = DEFAULT_URL, key: KeyOpt = "") -> None:
    """Push its template's current instructions to one claimed agent (no redeploy)."""
    body = call("POST", url, key, f"/api/pool/instances/{instance_id}/sync")
    console.print(f"[green]synced[/] {instance_id} at {body.get('templateSyncedAt')}")


def upgrade(instance_id: InstanceArg, url: UrlOpt = DEFAULT_URL, key: KeyOpt = "") -> None:
    """Roll one agent to its template's current version (services redeploys it with that image)."""
    body = call("POST", url, key, f"/api/pool/instances/{instance_id}/upgrade", timeout=120.0)
    image = body.get("image") or "the deployment's image"
    console.print(
        f"[green]upgraded[/] {instance_id} from version {body['fromVersion']} to {body['toVersion']} "
        f"({image}; deploy {body.get('deployStatus')})"
    )


def agents(
    owner: Annotated[
        str | None, typer.Option("--owner", help="Only this owner's live agents (what its quota counts).")
    ] = None,
    url: UrlOpt = DEFAULT_URL,
    key: KeyOpt = "",
) -> None:
    """List agents: every bound instance, or one owner's live agents."""
    path = "/api/pool/agents" + (f"?{urlencode({'ownerId': owner})}" if owner is not None else "")
    rows = call("GET", url, key, path)
    table = Table(title=f"Agents of {owner}" if owner is not None else "Agents")
    for column in ("id", "status", "agent", "template", "version", "owner", "claimed", "parent"):
        table.add_column(column)
    for a in rows:
        values = (a["id"], a["status"], a.get("agentName"), a.get("templateId"), a.get("templateVersion"))
        more = (a.get("ownerId"), a.get("claimedAt"), a.get("parentInstance"))
        table.add_row(*(str(v) if v is not None else "" for v in (*values, *more)))
    console.print(table)
