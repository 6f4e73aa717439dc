"""`poolctl templates ...`: templates through the operator API (`/api/templates`)."""

from __future__ import annotations

import json
from typing import Annotated, Any
from urllib.parse import urlencode

import typer
from rich.table import Table

from pool.cli_http import DEFAULT_URL, EXIT_REFUSED, KeyOpt, UrlOpt, call, console, fail

app = typer.Typer(help="Templates agents are made from.")

IdArg = Annotated[str, typer.Argument(help="Template id (`default` or `tpl_...`).")]
Image = Annotated[str | None, typer.Option("--image", help="Runtime image (default: the deployment's).")]
Tools = Annotated[list[str] | None, typer.Option("--tool", help="A tool by name; repeat for more.")]
AgentName = Annotated[str | None, typer.Option("--agent-name", help="Default agent name.")]
Instructions = Annotated[str | None, typer.Option("--instructions", help="Default instructions.")]
Model = Annotated[str | None, typer.Option("--model", help="Model the agent uses.")]
Env = Annotated[list[str] | None, typer.Option("--env", help="NAME=value (not a secret); repeat for more.")]
MinIdle = Annotated[int | None, typer.Option("--min-idle", min=0, help="Pool policy: least idle.")]
MaxIdle = Annotated[int | None, typer.Option("--max-idle", min=0, help="Pool policy: most idle.")]
Rollout = Annotated[
    str | None, typer.Option("--rollout", help="on-replenish, recreate or canary; its parameters via --json.")
]
Extra = Annotated[
    str | None,
    typer.Option("--json", help="More fields as a JSON object (resources, rollout parameters, ...)."),
]


def _spec(
    image: str | None,
    tools: list[str] | None,
    agent_name: str | None,
    instructions: str | None,
    model: str | None,
    env: list[str] | None,
    min_idle: int | None,
    max_idle: int | None,
    rollout: str | None,
    extra: str | None,
) -> dict[str, Any]:
    """Only the fields the operator gave: a change keeps every other field of the current version."""
    body: dict[str, Any] = {}
    if extra:
        try:
            parsed = json.loads(extra)
        except ValueError as exc:
            fail(f"--json is not valid JSON: {exc}", 2)
        if not isinstance(parsed, dict):
            fail("--json must be a JSON object", 2)
        body.update(parsed)
    given = {
        "image": image,
        "tools": tools,
        "agentName": agent_name,
        "instructions": instructions,
        "model": model,
    }
    body.update({key: value for key, value in given.items() if value is not None})
    if env:
        pairs = [item.partition("=") for item in env]
        if any(not sep for _, sep, _ in pairs):
            fail("--env takes NAME=value", 2)
        body["env"] = {name: value for name, _, value in pairs}
    if min_idle is not None or max_idle is not None:
        body["poolPolicy"] = {"minIdle": min_idle, "maxIdle": max_idle}
    if rollout is not None:
        body["rollout"] = {**body.get("rollout", {}), "strategy": rollout}
    return body


def _table(templates: list[dict[str, Any]]) -> Table:
    table = Table(title="Templates")
    for column in ("id", "slug", "name", "owner", "visibility", "version", "image", "tools", "archived"):
        table.add_column(column)
    for t in templates:
        current = t.get("current") or {}
        tools = current.get("tools")
        table.add_row(
            str(t["id"]),
            str(t["slug"]),
            str(t["name"]),
            str(t["owner"]),
            str(t["visibility"]),
            str(t["currentVersion"]),
            str(current.get("image") or "deployment's"),
            "deployment's" if tools is None else ", ".join(tools) or "none",
            str(t.get("archivedAt") or ""),
        )
    return table


def _show(template: dict[str, Any], verb: str) -> None:
    console.print(
        f"[green]{verb}[/] {template['id']} ({template['slug']}, version {template['currentVersion']})"
    )


@app.command("list")
def list_(
    owner: Annotated[str | None, typer.Option("--owner", help="Only this owner's.")] = None,
    visibility: Annotated[str | None, typer.Option("--visibility", help="private or public.")] = None,
    archived: Annotated[bool, typer.Option("--archived", help="Include archived templates.")] = False,
    url: UrlOpt = DEFAULT_URL,
    key: KeyOpt = "",
) -> None:
    """List templates with their current version."""
    params = {"owner": owner, "visibility": visibility, "archived": "true" if archived else None}
    query = urlencode({name: value for name, value in params.items() if value is not None})
    body = call("GET", url, key, "/api/templates" + (f"?{query}" if query else ""))
    console.print(_table(body))


@app.command()
def show(
    template_id: IdArg,
    version: Annotated[
        int | None, typer.Option("--version", min=1, help="This version, not the current.")
    ] = None,
    versions: Annotated[bool, typer.Option("--versions", help="Every version.")] = False,
    url: UrlOpt = DEFAULT_URL,
    key: KeyOpt = "",
) -> None:
    """Show one template (or one or all of its versions) as JSON."""
    path = f"/api/templates/{template_id}"
    if versions:
        path += "/versions"
    elif version is not None:
        path += f"/versions/{version}"
    console.print_json(data=call("GET", url, key, path))


@app.command()
def create(
    slug: Annotated[str, typer.Argument(help="Short name, unique among the owner's live templates.")],
    name: Annotated[str, typer.Option("--name", help="Display name.")],
    owner: Annotated[str, typer.Option("--owner", help="Owner id.")] = "operator",
    public: Annotated[bool, typer.Option("--public", help="Anyone may claim from and fork it.")] = False,
    image: Image = None,
    tool: Tools = None,
    agent_name: AgentName = None,
    instructions: Instructions = None,
    model: Model = None,
    env: Env = None,
    min_idle: MinIdle = None,
    max_idle: MaxIdle = None,
    rollout: Rollout = None,
    extra: Extra = None,
    url: UrlOpt = DEFAULT_URL,
    key: KeyOpt = "",
) -> None:
    """Create a template (its version 1)."""
    body = _spec(image, tool, agent_name, instructions, model, env, min_idle, max_idle, rollout, extra)
    body.update(slug=slug, name=name, owner=owner, visibility="public" if public else "private")
    _show(call("POST", url, key, "/api/templates", json=body), "created")


@app.command()
def update(
    template_id: IdArg,
    name: Annotated[str | None, typer.Option("--name", help="New display name (no new version).")] = None,
    visibility: Annotated[str | None, typer.Option("--visibility", help="private or public.")] = None,
    image: Image = None,
    tool: Tools = None,
    agent_name: AgentName = None,
    instructions: Instructions = None,
    model: Model = None,
    env: Env = None,
    min_idle: MinIdle = None,
    max_idle: MaxIdle = None,
    rollout: Rollout = None,
    extra: Extra = None,
    url: UrlOpt = DEFAULT_URL,
    key: KeyOpt = "",
) -> None:
    """Change a template: version fields make a new version, the rest of it carried over."""
    body = _spec(image, tool, agent_name, instructions, model, env, min_idle, max_idle, rollout, extra)
    body.update({k: v for k, v in {"name": name, "visibility": visibility}.items() if v is not None})
    if not body:
        fail("nothing to change: give at least one option", 2)
    _show(call("PATCH", url, key, f"/api/templates/{template_id}", json=body), "updated")


@app.command()
def archive(template_id: IdArg, url: UrlOpt = DEFAULT_URL, key: KeyOpt = "") -> None:
    """Archive a template (the default template stays)."""
    _show(call("POST", url, key, f"/api/templates/{template_id}/archive"), "archived")


@app.command()
def fork(
    template_id: IdArg,
    owner: Annotated[str, typer.Option("--owner", help="Who the private copy belongs to.")],
    slug: Annotated[str | None, typer.Option("--slug", help="Its slug (default: the source's).")] = None,
    name: Annotated[str | None, typer.Option("--name", help="Its name (default: the source's).")] = None,
    url: UrlOpt = DEFAULT_URL,
    key: KeyOpt = "",
) -> None:
    """Fork a public template (or your own) into a private one of --owner."""
    body = {k: v for k, v in {"owner": owner, "slug": slug, "name": name}.items() if v is not None}
    _show(call("POST", url, key, f"/api/templates/{template_id}/fork", json=body), "forked")


def sync_table(outcomes: list[dict[str, Any]]) -> Table:
    table = Table(title="Sync")
    for column in ("instance", "outcome", "reason"):
        table.add_column(column)
    for o in outcomes:
        table.add_row(str(o.get("instanceId")), str(o.get("outcome")), str(o.get("reason") or ""))
    return table


@app.command()
def sync(template_id: IdArg, url: UrlOpt = DEFAULT_URL, key: KeyOpt = "") -> None:
    """Push the template's current instructions to every agent claimed from it (no redeploy).
    Exits 1 if any agent did not answer; skipped agents (e.g. a runtime without the capability)
    are listed with the reason."""
    body = call("POST", url, key, f"/api/templates/{template_id}/sync", timeout=600.0)
    console.print(sync_table(body["instances"]))
    console.print(
        f"[green]synced[/] {body['synced']}, skipped {body['skipped']}, failed {body['failed']} "
        f"(version {body['version']})"
    )
    if body["failed"]:
        fail(f"{body['failed']} agent(s) did not take the instructions", EXIT_REFUSED)
