"""The soak's checks of templates and rollouts catch what they name: fed rows of a real pool database
as a broken pool would leave them (an instance of another template handed out, one of an archived
template served long after the archive, a recreate finished with an older version still idle, a
rollout left unfinished), each reports its violation, and the lawful rows beside them stay quiet.
Fast: no system is started."""

from __future__ import annotations

import json

import asyncpg

from devtools.soak.invariants import Answer, ClaimTrace, Sighting, TemplateRun, check_templates

SECOND, ARCHIVED = "tpl_second000000", "tpl_archived0000"


def kinds(found: list[tuple[str, str]]) -> list[str]:
    return sorted(kind for kind, _ in found)


def won(claim_id: str, instance_id: str, template: str) -> ClaimTrace:
    seen = [Sighting(at=1.0, via="get", status="succeeded", instance_id=instance_id)]
    return ClaimTrace(id=claim_id, answered_at=0.0, timeout_seconds=5, sightings=seen, template=template)


async def _rows(pool_db_url: str, rollout: dict[str, object], current_version: int) -> None:
    conn = await asyncpg.connect(pool_db_url)
    try:
        await conn.execute(
            "INSERT INTO templates (id, slug, name, owner, current_version, rollout_state, archived_at) "
            "VALUES ($1, 'second', 'Second', 'operator', $2, $3::jsonb, NULL), "
            "($4, 'archived', 'Archived', 'operator', 1, NULL, now() - interval '60 s')",
            SECOND, current_version, json.dumps(rollout), ARCHIVED,
        )  # fmt: skip
        made = [("i_default", "default", 1), ("i_second1", SECOND, 1), ("i_second3", SECOND, 3)]
        made += [("i_archived", ARCHIVED, 1)]
        for instance_id, template, version in made:
            await conn.execute(
                "INSERT INTO instance_events (instance_id, kind, actor, summary) "
                "VALUES ($1, 'create.requested', 'pool', $2::jsonb)",
                instance_id, json.dumps({"templateId": template, "version": version}),
            )  # fmt: skip
        # Left idle: one of version 1 of the second template (older than its finished recreate of
        # 3), one of version 3; and one of the archived template.
        for instance_id, template, version in made[1:]:
            await conn.execute(
                "INSERT INTO instances (id, name, status, template_id, template_version) "
                "VALUES ($1, $2, 'idle', $3, $4)",
                instance_id, instance_id, template, version,
            )  # fmt: skip
        insert = (
            "INSERT INTO claims (id, caller, request_hash, status, instance_id, template, created_at) "
            "VALUES ($1, 'c', 'h', 'succeeded', $2, $3, now() - make_interval(secs => $4))"
        )
        # The second template's claim got the default template's instance; a lawful one beside it.
        await conn.execute(insert, "c_other", "i_default", SECOND, 100.0)
        await conn.execute(insert, "c_own", "i_second3", SECOND, 100.0)
        # Served from the archived template 30 s after its archive; the other just before it.
        await conn.execute(insert, "c_archived_late", "i_archived", ARCHIVED, 30.0)
        await conn.execute(insert, "c_archived_early", "i_archived", ARCHIVED, 61.0)
    finally:
        await conn.close()


async def test_claims_of_another_or_an_archived_template_and_old_idle_ones_are_reported(
    pool_db_url: str,
) -> None:
    recreate = {"version": 3, "previous": 2, "strategy": "recreate", "phase": "done", "reason": None}
    await _rows(pool_db_url, recreate, current_version=3)
    run = TemplateRun(second=SECOND, archived=ARCHIVED, archived_at=1.0)
    run.published = [("canary", 2), ("recreate", 3)]
    run.outcomes = {2: {"phase": "rolled_back", "reason": "canary x failed: dead"}, 3: recreate}
    traces = [won("c_other", "i_default", SECOND), won("c_own", "i_second3", SECOND)]
    answers = [Answer("claim", 200, instance_id="i_second1", template="default")]
    found = await check_templates(pool_db_url, run, traces, answers)
    assert kinds(found) == [
        "archived_template_served",  # c_archived_late
        "archived_template_served",  # i_archived still idle
        "rollout_old_idle",  # i_second1, version 1 after the recreate of 3
        "template_mismatch",  # c_other, from the claims table
        "template_mismatch",  # the answer naming none that got the second template's instance
    ], found
    assert not [detail for _, detail in found if "c_own" in detail or "c_archived_early" in detail]


async def test_a_rollout_not_ended_or_rolled_back_without_a_reason_is_reported(pool_db_url: str) -> None:
    stuck = {"version": 3, "previous": 1, "strategy": "recreate", "phase": "replacing", "reason": None}
    await _rows(pool_db_url, stuck, current_version=3)
    run = TemplateRun(second=SECOND, published=[("canary", 2), ("recreate", 3)])
    run.outcomes = {2: {"phase": "canary"}}
    found = await check_templates(pool_db_url, run, [won("c_own", "i_second3", SECOND)], [])
    unfinished = [detail for kind, detail in found if kind == "rollout_unfinished"]
    assert (
        len(unfinished) == 2 and "canary of version 2" in unfinished[0] and "still replacing" in unfinished[1]
    )
    assert "templates_idle" not in kinds(found)
    # Nothing published, nothing served from the second template: not exercised.
    idle = await check_templates(pool_db_url, TemplateRun(second=SECOND), [], [])
    assert "templates_idle" in kinds(idle)
