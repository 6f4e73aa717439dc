"""`poolctl sync|upgrade|agents`: one agent's template actions and an owner's agents through the
operator API (registered on `poolctl`'s top level by `pool.cli`)."""

from __future__ import annotations

from typing import Annotated

import typer

from pool.cli_http import DEFAULT_URL, KeyOpt, UrlOpt, call, console

InstanceArg = Annotated[str, typer.Argument(help="Instance id.")]


def sync(instance_id: InstanceArg, url: UrlOpt = DEFAULT_URL, key: KeyOpt = "") -> None:
    """Push its template's current instructions to one claimed agent (no redeploy)."""
    body = call("POST", url, key, f"/api/pool/instances/{instance_id}/sync")
    console.print(f"[green]synced[/] {instance_id} at {body.get('templateSyncedAt')}")
