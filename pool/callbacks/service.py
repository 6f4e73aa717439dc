"""The callbacks' flows: authenticate the instance, forward to services, record the event."""

from __future__ import annotations

from typing import Any

from pool.auth import authenticate_token
from pool.callbacks import events
from pool.deps import PoolState
from pool.instances import service as instances
from pool.models import Instance
from shared.errors import Conflict
from shared.logging import get_logger

log = get_logger("pool.callbacks")

# Summaries keep what says what happened, never a body: these query keys and answer fields only.
SUMMARY_QUERY = ("limit", "page_token", "labels", "filter[direction]", "page[size]", "page[number]")


async def authenticate(pool: PoolState, *, instance_id: str, token: str | None) -> Instance:
    async with pool["sessionmaker"]() as session:
        return await authenticate_token(session, pool["box"], instance_id=instance_id, token=token)


def _summary(method: str, route: str, params: dict[str, str] | None) -> dict[str, Any]:
    summary: dict[str, Any] = {"method": method, "route": route}
    kept = {k: v for k, v in (params or {}).items() if k in SUMMARY_QUERY}
    if kept:
        summary["query"] = kept
    return summary


def _outcome(status: int, body: Any) -> dict[str, Any]:
    outcome: dict[str, Any] = {"status": status}
    if isinstance(body, dict):
        # Ids say which message without saying what it said.
        for key in ("message_id", "thread_id", "email", "phone", "provisioned", "unprovisioned"):
            if key in body and (body[key] is None or isinstance(body[key], str | bool)):
                outcome[key] = body[key]
        data = body.get("data")
        if isinstance(data, dict) and isinstance(data.get("id"), str):
            outcome["message_id"] = data["id"]
        kind = body.get("kind")
        if isinstance(kind, str):
            outcome["error"] = kind
    return outcome


async def forward(
    pool: PoolState,
    instance: Instance,
    *,
    method: str,
    route: str,
    kind: str,
    json: Any = None,
    params: dict[str, str] | None = None,
) -> tuple[int, Any, dict[str, str]]:
    """One proxied call through services, recorded in the instance's event log (sends rate-limited
    first). Answers services' status and body: the vendor's, or services' own 403/404/502/503."""
    settings = pool["settings"]
    sessionmaker = pool["sessionmaker"]
    summary = _summary(method, route, params)
    if kind in events.SEND_KINDS:
        event_id = await events.reserve_send(
            sessionmaker,
            instance_id=instance.id,
            kind=kind,
            summary=summary,
            limit=settings.proxy_send_limit,
            window=settings.proxy_send_window_seconds,
        )
    else:
        event_id = await events.record(
            sessionmaker, instance_id=instance.id, kind=kind, actor="instance", summary=summary
        )
    try:
        response = await pool["services"].forward(
            method, f"/proxy/{instance.id}{route}", json=json, params=params
        )
    except Exception as exc:
        await events.finish(sessionmaker, event_id, {"status": 502, "error": type(exc).__name__})
        raise
    try:
        body: Any = response.json()
    except ValueError:
        body = {"error": "services answered without JSON", "kind": "UpstreamError"}
    await events.finish(sessionmaker, event_id, _outcome(response.status_code, body))
    headers = {k: v for k, v in response.headers.items() if k.lower() == "retry-after"}
    return response.status_code, body, headers


async def self_destruct(pool: PoolState, instance: Instance) -> None:
    """Mark the instance dead now (it stops being handed out or counted); the caller then tears it
    down through the normal destroy. If this pool dies in between, the tick destroys the dead row."""
    await events.record(
        pool["sessionmaker"],
        instance_id=instance.id,
        kind="callback.self_destruct",
        actor="instance",
        summary={},
    )
    try:
        await instances.mark_dead(pool, instance.id, reason="self-destructed")
    except Conflict:
        log.info("callback.self_destruct.raced", instance_id=instance.id)
    log.info("callback.self_destruct", instance_id=instance.id)


async def destroy(pool: PoolState, instance_id: str) -> None:
    try:
        await instances.destroy(pool, instance_id)
    except Exception as exc:  # the tick destroys a dead row it finds
        log.warning(
            "callback.self_destruct.destroy_failed", instance_id=instance_id, error=type(exc).__name__
        )
