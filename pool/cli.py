"""`poolctl`: the operator's terminal client of the pool's bearer API.

Exit codes: 0 ok, 1 the pool refused the request (4xx/5xx), 2 usage error, 3 unauthorized (401),
4 pool empty or busy (503), 5 the pool cannot be reached.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

import httpx
import segno
import typer
from rich.table import Table

from pool.cli_http import (
    DEFAULT_URL,
    EXIT_REFUSED,
    EXIT_UNAVAILABLE,
    KeyOpt,
    UrlOpt,
    call,
    console,
    fail,
)
from pool.instances import cli as instances_cli
from pool.templates.cli import app as templates_app

app = typer.Typer(help="Operate a warm pool of agent instances.", no_args_is_help=True, add_completion=False)
app.add_typer(templates_app, name="templates")


def counts_table(counts: dict[str, Any]) -> Table:
    table = Table(title="Instances by status")
    table.add_column("status")
    table.add_column("count", justify="right")
    for status, count in counts.items():
        table.add_row(status, str(count))
    return table


def agents_table(agents: list[dict[str, Any]]) -> Table:
    table = Table(title="Agents")
    for column in ("id", "status", "name", "agent", "since"):
        table.add_column(column)
    for agent in agents:
        table.add_row(
            str(agent.get("id", "")),
            str(agent.get("status", "")),
            str(agent.get("name") or ""),
            str(agent.get("agentName") or ""),
            str(agent.get("statusChangedAt") or agent.get("createdAt") or ""),
        )
    return table


LOOP_FIELDS = (
    ("healthy", "healthy"),
    ("lastTickAt", "last tick"),
    ("lastTickDurationMs", "tick ms"),
    ("leaderId", "leader"),
    ("backoffUntil", "backing off until"),
    ("consecutiveCreateFailures", "failed creates"),
    ("lastError", "last error"),
    ("lastCreateError", "last create error"),
)


def loop_table(loop: dict[str, Any]) -> Table:
    table = Table(title="Reconcile loop", show_header=False)
    for key, label in LOOP_FIELDS:
        if loop.get(key) is not None:
            table.add_row(label, str(loop[key]))
    return table


def platforms_table(platforms: list[dict[str, Any]]) -> Table:
    table = Table(title="Platforms")
    for column in ("platform", "provider", "priority", "in use", "creating", "capacity", "health"):
        table.add_column(column)
    for p in platforms:
        health = str(p.get("health", ""))
        if p.get("backoffUntil"):
            health += f" until {p['backoffUntil']}"
        if p.get("lastError") and p.get("health") != "ok":
            health += f" ({p['lastError']})"
        capacity = "no cap" if p.get("capacity") is None else str(p["capacity"])
        row = (p.get("name"), p.get("provider"), p.get("priority"), p.get("inUse"), p.get("creating"))
        table.add_row(*(str(v) for v in row), capacity, health)
    return table


def templates_table(pools: list[dict[str, Any]]) -> Table:
    table = Table(title="Templates")
    for column in (
        "template",
        "version",
        "target idle",
        "idle",
        "starting",
        "claimed",
        "queued",
        "idle by version",
    ):
        table.add_column(column)
    for p in pools:
        counts = p.get("counts", {})
        name = f"{p.get('slug')} ({p.get('templateId')})" + (" archived" if p.get("archived") else "")
        by_version = ", ".join(f"v{v}: {n}" for v, n in (p.get("idleByVersion") or {}).items())
        starting = counts.get("starting", 0) + counts.get("creating", 0)
        claimed = counts.get("claimed", 0) + counts.get("pending_acceptance", 0)
        row = (name, p.get("currentVersion"), p.get("target"), counts.get("idle", 0), starting, claimed)
        table.add_row(*(str(v) for v in row), str(p.get("queued", 0)), by_version)
    return table


def _agents_of(body: Any) -> list[dict[str, Any]]:
    if isinstance(body, list):
        return body
    if isinstance(body, dict):
        for key in ("agents", "instances"):
            if isinstance(body.get(key), list):
                return list(body[key])
    return []


@app.command()
def status(url: UrlOpt = DEFAULT_URL, key: KeyOpt = "") -> None:
    """Show counts by status, the target, loop health and the instances."""
    body = call("GET", url, key, "/api/pool/status")
    counts = body.get("counts", {}) if isinstance(body, dict) else {}
    console.print(counts_table(counts))
    if "target" in body:
        console.print(f"[bold]target idle[/]: {body['target']}  (now {counts.get('idle', 0)})")
    loop = body.get("loop")
    if isinstance(loop, dict):
        console.print(loop_table(loop))
    templates = body.get("templates")
    if isinstance(templates, list) and templates:
        console.print(templates_table(templates))
    platforms = body.get("platforms")
    if isinstance(platforms, list) and platforms:
        console.print(platforms_table(platforms))
    agents = _agents_of(body)
    if agents:
        console.print(agents_table(agents))


def _queue_line(ticket: dict[str, Any]) -> str:
    if ticket.get("status") != "queued":
        return "an instance was assigned: provisioning the agent…"
    eta = ticket.get("etaSeconds")
    estimate = f"about {eta:.0f} s to go" if isinstance(eta, int | float) else "no estimate yet"
    return f"queued: position {ticket.get('position')}, {estimate}"


def follow_claim(url: str, key: str, ticket: dict[str, Any], wait: int) -> dict[str, Any]:
    """Follow a queued claim's events, printing its place and ETA as they change, until its outcome."""
    shown = ""
    path = f"{url.rstrip('/')}/api/pool/claims/{ticket['id']}/events"
    # The stream sends a heartbeat at least every 15 s; the claim ends by its deadline plus a
    # provision, which this bound covers.
    timeout = httpx.Timeout(30.0, connect=10.0)
    try:
        with httpx.stream("GET", path, headers={"Authorization": f"Bearer {key}"}, timeout=timeout) as stream:
            for line in stream.iter_lines():
                if not line.startswith("data: "):
                    continue
                ticket = json.loads(line.removeprefix("data: "))
                text = _queue_line(ticket)
                if ticket.get("status") in ("queued", "pending") and text != shown:
                    console.print(text)
                    shown = text
                if ticket.get("status") in ("succeeded", "failed", "cancelled"):
                    break
    except httpx.HTTPError:
        pass  # the final read below says where the claim is
    if ticket.get("status") not in ("succeeded", "failed", "cancelled"):
        ticket = call("GET", url, key, f"/api/pool/claims/{ticket['id']}")
    if ticket.get("status") == "succeeded":
        return ticket
    error = ticket.get("error") or {}
    detail = str(error.get("error") or f"the claim is {ticket.get('status')} after {wait} s")
    fail(detail, EXIT_UNAVAILABLE if error.get("kind") in (None, "Unavailable") else EXIT_REFUSED)


@app.command()
def claim(
    name: Annotated[str, typer.Option("--name", help="Agent name.")],
    instructions: Annotated[str, typer.Option("--instructions", help="What the agent should do.")],
    join: Annotated[str | None, typer.Option("--join", help="Invite URL of a conversation to join.")] = None,
    wait: Annotated[
        int | None,
        typer.Option(
            "--wait", min=1, help="Wait up to N seconds in the claim queue, showing position and ETA."
        ),
    ] = None,
    url: UrlOpt = DEFAULT_URL,
    key: KeyOpt = "",
) -> None:
    """Claim an idle instance as a new agent; prints the invite URL and its QR code."""
    payload: dict[str, Any] = {"agentName": name, "instructions": instructions}
    if join:
        payload["joinUrl"] = join
    if wait is None:
        with console.status("Claiming an idle instance and provisioning the agent…"):
            result = call("POST", url, key, "/api/pool/claim", json=payload)
    else:
        ticket = call("POST", url, key, "/api/pool/claims", json={**payload, "timeoutSeconds": wait})
        if ticket.get("status") != "succeeded":
            ticket = follow_claim(url, key, ticket, wait)
        result = ticket["claim"]
    console.print(f"[green]claimed[/] instance {result.get('instanceId')} ({result.get('status')})")
    invite = result.get("inviteUrl")
    if invite:
        console.print(f"invite URL: [bold]{invite}[/]")
        segno.make(invite, error="m").terminal(compact=True)


@app.command()
def kill(
    instance_id: Annotated[str, typer.Argument(help="Instance id.")],
    url: UrlOpt = DEFAULT_URL,
    key: KeyOpt = "",
) -> None:
    """Destroy one instance, claimed or not."""
    call("DELETE", url, key, f"/api/pool/instances/{instance_id}")
    console.print(f"[green]killed[/] {instance_id}")


@app.command()
def drain(
    count: Annotated[int, typer.Argument(min=1, help="How many idle instances to remove.")],
    url: UrlOpt = DEFAULT_URL,
    key: KeyOpt = "",
) -> None:
    """Remove up to N idle (never claimed) instances."""
    body = call("POST", url, key, "/api/pool/drain", json={"count": count})
    console.print(f"[green]drain[/]: {body}")


@app.command()
def replenish(
    count: Annotated[int, typer.Argument(min=1, help="How many instances to create.")],
    url: UrlOpt = DEFAULT_URL,
    key: KeyOpt = "",
) -> None:
    """Create N more instances now."""
    body = call("POST", url, key, "/api/pool/replenish", json={"count": count})
    console.print(f"[green]replenish[/]: {body}")


# One agent's template actions and an owner's agents (pool/instances/cli.py).
for command in (instances_cli.sync, instances_cli.upgrade, instances_cli.agents):
    app.command()(command)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
