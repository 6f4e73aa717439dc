"""What the template pages show, from the pool's database only: each template's instance counts,
a version's fields as rows, and what a version changed from the one before it.

Every value goes to the page through Jinja's autoescaping; env values are shown (they are not
secrets: the template API refuses secret-looking ones) but never marked safe.
"""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pool.config import Settings
from pool.models import Instance
from pool.models import Template as TemplateRow
from pool.status import BOUND
from pool.templates import service as templates_service
from pool.templates.pools import template_pools
from pool.templates.schemas import DEFAULT_OWNER, DEFAULT_TEMPLATE_ID, Template, TemplateVersion

CLAIMED = ("claiming", *sorted(BOUND))
STARTING = ("creating", "starting")


@dataclass
class TemplateCounts:
    """A template's pool by what an operator asks of it: how many are warm against its target, how
    many carry an agent, how many are on their way, how many claims wait for one."""

    idle: int = 0
    claimed: int = 0
    starting: int = 0
    target: int | None = None
    queued: int = 0
    idle_by_version: dict[str, int] = field(default_factory=dict)
    # The latest rollout as the status API shows it (phase, reason, versions); None: none yet.
    rollout: dict[str, Any] | None = None


async def template_counts(session: AsyncSession, settings: Settings) -> dict[str, TemplateCounts]:
    """Each template's pool as the status API reports it (pool.templates.pools), from the pool DB."""
    return {
        pool.template_id: TemplateCounts(
            idle=pool.counts.get("idle", 0),
            claimed=sum(pool.counts.get(status, 0) for status in CLAIMED),
            starting=sum(pool.counts.get(status, 0) for status in STARTING),
            # An archived template aims at nothing: no target is shown rather than a 0.
            target=None if pool.archived else pool.target,
            queued=pool.queued,
            idle_by_version=pool.idle_by_version,
            rollout=pool.rollout,
        )
        for pool in await template_pools(session, settings)
    }


async def launchable(session: AsyncSession) -> list[Template]:
    """The templates the dashboard's operator may launch from: live ones that are public or the
    operator's own (another owner's private template is that owner's to claim from)."""
    rows = await templates_service.list_templates(session, owner=None, visibility=None, archived=False)
    usable = [t for t in rows if t.visibility == "public" or t.owner == DEFAULT_OWNER]
    # The default template first: it is what a launch gets when nothing else is chosen.
    return sorted(usable, key=lambda t: (t.id != DEFAULT_TEMPLATE_ID, t.name.lower()))


@dataclass(frozen=True)
class InstanceTemplate:
    slug: str
    name: str
    version: int


async def instance_template(
    sessionmaker: async_sessionmaker[AsyncSession], instance_id: str
) -> InstanceTemplate | None:
    """The template an instance was made from, for the launch answer (a short read of its own: the
    launch holds no transaction while the claim is provisioned)."""
    async with sessionmaker() as session:
        row = (
            await session.execute(
                select(TemplateRow.slug, TemplateRow.name, Instance.template_version)
                .join(TemplateRow, TemplateRow.id == Instance.template_id)
                .where(Instance.id == instance_id)
            )
        ).first()
    return None if row is None else InstanceTemplate(row.slug, row.name, row.template_version)


@dataclass(frozen=True)
class Row:
    label: str
    value: str
    # Text over several lines (instructions, env) is shown as a block and diffed line by line.
    block: bool = False


def _or_deployment(value: str | None) -> str:
    return "deployment's" if value is None else value


def version_rows(version: TemplateVersion) -> list[Row]:
    policy = version.pool_policy
    rollout = version.rollout.model_dump(by_alias=True)
    knobs = ", ".join(f"{key} {value}" for key, value in rollout.items() if key != "strategy")
    tools = None if version.tools is None else (", ".join(version.tools) or "none")
    return [
        Row("Image", _or_deployment(version.image)),
        Row("Tools", _or_deployment(tools)),
        Row("Agent name", version.agent_name or ""),
        Row("Model", version.model or ""),
        Row("Instructions", version.instructions or "", block=True),
        Row("Env", "".join(f"{name}={value}\n" for name, value in sorted(version.env.items())), block=True),
        Row("Resources", json.dumps(version.resources, sort_keys=True) if version.resources else ""),
        Row("Min idle", _or_deployment(None if policy.min_idle is None else str(policy.min_idle))),
        Row("Max idle", _or_deployment(None if policy.max_idle is None else str(policy.max_idle))),
        Row("Rollout", f"{rollout['strategy']} ({knobs})" if knobs else str(rollout["strategy"])),
    ]


@dataclass(frozen=True)
class Change:
    label: str
    before: str
    after: str
    # For a block: unified diff lines (each starting with ' ', '-' or '+'); empty otherwise.
    lines: tuple[str, ...] = ()


def changes(before: TemplateVersion, after: TemplateVersion) -> list[Change]:
    """What `after` changed from `before`, field by field."""
    found = []
    for old, new in zip(version_rows(before), version_rows(after), strict=True):
        if old.value == new.value:
            continue
        lines: tuple[str, ...] = ()
        if new.block:
            diff = difflib.unified_diff(old.value.splitlines(), new.value.splitlines(), lineterm="", n=2)
            lines = tuple(line for line in diff if not line.startswith(("---", "+++", "@@")))
        found.append(Change(new.label, old.value, new.value, lines))
    return found


@dataclass(frozen=True)
class VersionView:
    version: TemplateVersion
    rows: list[Row]
    # None for version 1 (nothing before it).
    changes: list[Change] | None


def version_views(versions: list[TemplateVersion]) -> list[VersionView]:
    """Newest first, each with what it changed from the version before it."""
    views = []
    previous: TemplateVersion | None = None
    for version in versions:
        views.append(
            VersionView(
                version, version_rows(version), None if previous is None else changes(previous, version)
            )
        )
        previous = version
    return list(reversed(views))
