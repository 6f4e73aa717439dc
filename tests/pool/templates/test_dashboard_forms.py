"""The dashboard's template forms over real HTTP (pool + services for the tools check): a post that
works changes what /api/templates answers; a refused one shows the form again with the sentence,
at its 4xx, and writes nothing."""

from __future__ import annotations

import html
import re
from typing import Any

import httpx
import pytest

from pool.main import create_app
from tests.pool.dashboard.conftest import API_KEY, dashboard_settings, form_token, log_in, page_csrf
from tests.support import serve

BEARER = {"Authorization": f"Bearer {API_KEY}"}
FORM = {
    "slug": "mailer",
    "name": "Mailer",
    "owner": "operator",
    "visibility": "public",
    "image": "ghcr.io/acme/runtime:1",
    "tools": "openrouter, agentmail",
    "agent_name": "Postie",
    "model": "openai/gpt-4o-mini",
    "instructions": "Answer mail.\r\nBe brief.",
    "env": "LOG_LEVEL=debug\r\nGREETING=<b>hi</b> & bye\r\n",
    "resources": '{"cpu": 1}',
    "min_idle": "1",
    "max_idle": "3",
    "rollout_strategy": "recreate",
    "rollout_floor": "1",
}


async def _submit(operator: httpx.AsyncClient, page: str, action: str, **fields: str) -> httpx.Response:
    token = form_token((await operator.get(page)).text)
    return await operator.post(action, data={**fields, "csrf_token": token})


async def _create(operator: httpx.AsyncClient, **overrides: str) -> httpx.Response:
    return await _submit(
        operator, "/dashboard/templates/new", "/dashboard/templates/new", **{**FORM, **overrides}
    )


async def _api(operator: httpx.AsyncClient, path: str = "/api/templates?archived=true") -> Any:
    response = await operator.get(path, headers=BEARER)
    assert response.status_code == 200, response.text
    return response.json()


def _error(page: httpx.Response) -> str:
    match = re.search(r'<p class="error" id="form-error" role="alert">([^<]*)</p>', page.text)
    assert match, f"no error shown: {page.status_code} {page.text[:300]}"
    return html.unescape(match.group(1))


async def test_a_created_template_is_the_apis_and_its_page_shows_it_escaped(
    operator: httpx.AsyncClient,
) -> None:
    response = await _create(operator)

    assert response.status_code == 303, response.text
    template_id = response.headers["location"].rsplit("/", 1)[1]
    made = await _api(operator, f"/api/templates/{template_id}")
    assert made["owner"] == "operator" and made["visibility"] == "public"
    assert made["current"]["tools"] == ["openrouter", "agentmail"]
    # Textarea newlines arrive as CRLF and are stored as LF.
    assert made["current"]["instructions"] == "Answer mail.\nBe brief."
    assert made["current"]["env"] == {"LOG_LEVEL": "debug", "GREETING": "<b>hi</b> & bye"}
    assert made["current"]["rollout"] == {"strategy": "recreate", "floor": 1}
    assert made["current"]["poolPolicy"] == {"minIdle": 1, "maxIdle": 3}
    page = (await operator.get(f"/dashboard/templates/{template_id}")).text
    assert "GREETING=&lt;b&gt;hi&lt;/b&gt; &amp; bye" in page and "<b>hi</b>" not in page
    listed = (await operator.get("/dashboard/templates")).text
    assert f'<tr data-template="{template_id}">' in listed


@pytest.mark.parametrize(
    ("overrides", "sentence", "status"),
    [
        ({"slug": "Not A Slug"}, "Slug: String should match pattern", 400),
        ({"env": "OPENAI_API_KEY=sk-live-abcdef0123456789"}, "Env OPENAI_API_KEY looks like a secret", 400),
        ({"env": "NOTE=sk-live-abcdef0123456789"}, "Env NOTE looks like a secret", 400),
        ({"env": "LOG_LEVEL"}, "Env line 1 must be NAME=value", 400),
        ({"env": "A=1\nA=2"}, "Env A is given twice", 400),
        ({"resources": "[1, 2]"}, "Resources must be a JSON object", 400),
        ({"min_idle": "4", "max_idle": "2"}, "Idle bounds: minIdle must not exceed maxIdle", 400),
        ({"max_idle": "two"}, "Max idle must be a whole number", 400),
        ({"tools": "openrouter, nosuch"}, "Unknown or unconfigured tools: nosuch", 400),
        ({"rollout_strategy": "yolo"}, "Rollout must be one of on-replenish, recreate, canary", 400),
        ({"slug": "default"}, "Owner 'operator' already has a template with slug 'default'", 409),
    ],
)
async def test_a_refused_create_shows_the_sentence_in_the_form_and_writes_nothing(
    operator: httpx.AsyncClient, overrides: dict[str, str], sentence: str, status: int
) -> None:
    before = await _api(operator)

    response = await _create(operator, **overrides)

    assert response.status_code == status, response.text
    assert _error(response).startswith(sentence), _error(response)
    assert 'id="template-form"' in response.text  # the form again, with what was typed
    assert 'value="Mailer"' in response.text
    # A value refused as a secret is not sent back to the browser.
    assert "sk-live-abcdef0123456789" not in response.text
    assert await _api(operator) == before


async def test_a_post_without_the_csrf_token_is_refused_and_writes_nothing(
    operator: httpx.AsyncClient,
) -> None:
    before = await _api(operator)

    response = await operator.post("/dashboard/templates/new", data=FORM)

    assert response.status_code == 403
    assert await _api(operator) == before


async def test_services_down_is_a_sentence_in_the_form_not_a_500(pool_db_url: str) -> None:
    # Named tools are checked against services' registry; here services is a closed port.
    async with serve(create_app(dashboard_settings(pool_db_url))) as url:
        async with httpx.AsyncClient(base_url=url, timeout=15.0) as operator:
            await log_in(operator)
            before = await _api(operator)

            response = await _create(operator)

            assert response.status_code == 502, response.text
            assert "unreachable" in _error(response)
            assert await _api(operator) == before
            # Without tools there is nothing to check: the same form is written.
            assert (await _create(operator, tools="")).status_code == 303


async def test_an_edit_makes_a_new_version_and_the_page_shows_what_changed(
    operator: httpx.AsyncClient,
) -> None:
    template_id = (await _create(operator)).headers["location"].rsplit("/", 1)[1]
    edit = f"/dashboard/templates/{template_id}/edit"
    shown = (await operator.get(edit)).text
    assert "Answer mail.\nBe brief.</textarea>" in shown and 'value="openrouter, agentmail"' in shown

    unchanged = await _submit(operator, edit, edit, **FORM)
    assert unchanged.status_code == 400
    assert _error(unchanged).startswith("Nothing changed")
    renamed = await _submit(operator, edit, edit, **{**FORM, "name": "Mail desk"})
    assert renamed.status_code == 303
    after_rename = await _api(operator, f"/api/templates/{template_id}")
    assert (after_rename["name"], after_rename["currentVersion"]) == ("Mail desk", 1)

    changed = {
        **FORM,
        "name": "Mail desk",
        "model": "openai/gpt-4o",
        "instructions": "Answer mail.\nBe kind.",
    }
    response = await _submit(operator, edit, edit, **changed)

    assert response.status_code == 303
    versions = await _api(operator, f"/api/templates/{template_id}/versions")
    assert [v["version"] for v in versions] == [1, 2]
    assert versions[1]["model"] == "openai/gpt-4o" and versions[1]["env"] == versions[0]["env"]
    page = (await operator.get(f"/dashboard/templates/{template_id}")).text
    assert '<strong id="current-version">v2</strong>' in page
    v2 = page.split('data-version="2"')[1].split("</details>")[0]
    assert "Changes from v1" in v2
    assert "<del>openai/gpt-4o-mini</del> → <ins>openai/gpt-4o</ins>" in v2
    assert '<span class="del">-Be brief.</span>' in v2 and '<span class="add">+Be kind.</span>' in v2


async def test_a_refused_edit_shows_the_sentence_and_keeps_the_version(operator: httpx.AsyncClient) -> None:
    template_id = (await _create(operator)).headers["location"].rsplit("/", 1)[1]
    edit = f"/dashboard/templates/{template_id}/edit"

    response = await _submit(operator, edit, edit, **{**FORM, "env": "GITHUB_TOKEN=ghp_abcdefghijklmnop"})

    assert response.status_code == 400
    assert _error(response).startswith("Env GITHUB_TOKEN looks like a secret")
    assert "ghp_abcdefghijklmnop" not in response.text
    assert (await _api(operator, f"/api/templates/{template_id}"))["currentVersion"] == 1


async def test_archive_and_fork_from_the_template_page(operator: httpx.AsyncClient) -> None:
    default_page = "/dashboard/templates/default"
    refused = await _submit(operator, default_page, f"{default_page}/archive")
    assert refused.status_code == 409
    assert _error(refused).startswith("The default template cannot be archived")

    public_id = (await _create(operator, owner="acme")).headers["location"].rsplit("/", 1)[1]
    page = f"/dashboard/templates/{public_id}"
    forked = await _submit(operator, page, f"{page}/fork", owner="operator", slug="my-mailer", name="")
    assert forked.status_code == 303
    fork = await _api(operator, f"/api/templates/{forked.headers['location'].rsplit('/', 1)[1]}")
    assert (fork["owner"], fork["slug"], fork["visibility"], fork["forkedFrom"]) == (
        "operator", "my-mailer", "private", public_id
    )  # fmt: skip

    # Another owner's private template is not the operator's to fork: the page says so.
    private_id = (
        (await _create(operator, owner="acme", slug="secret-desk", visibility="private"))
        .headers["location"]
        .rsplit("/", 1)[1]
    )
    private_page = f"/dashboard/templates/{private_id}"
    before = await _api(operator)
    denied = await _submit(operator, private_page, f"{private_page}/fork", owner="operator", slug="mine")
    assert denied.status_code == 404 and _error(denied).startswith(f"No template {private_id}")
    assert await _api(operator) == before

    archived = await _submit(operator, page, f"{page}/archive")
    assert archived.status_code == 303
    assert (await _api(operator, f"/api/templates/{public_id}"))["archivedAt"] is not None
    assert f'data-template="{public_id}"' not in (await operator.get("/dashboard/templates")).text
    again = (await operator.get(page)).text
    assert 'id="archived"' in again and 'id="archive-template"' not in again


async def test_the_launch_form_offers_live_templates_the_operator_may_use(
    operator: httpx.AsyncClient,
) -> None:
    mine = (await _create(operator, slug="mine", visibility="private")).headers["location"].rsplit("/", 1)[1]
    theirs = (
        (await _create(operator, slug="theirs", owner="acme", visibility="private"))
        .headers["location"]
        .rsplit("/", 1)[1]
    )
    shared = (await _create(operator, slug="shared", owner="acme")).headers["location"].rsplit("/", 1)[1]
    gone = (await _create(operator, slug="gone")).headers["location"].rsplit("/", 1)[1]
    await _submit(operator, f"/dashboard/templates/{gone}", f"/dashboard/templates/{gone}/archive")

    page = (await operator.get("/dashboard")).text
    select = page.split('<select id="launch-template" name="templateId">')[1].split("</select>")[0]

    offered = re.findall(r'<option value="([^"]+)"', select)
    assert offered[0] == "default" and set(offered) == {"default", mine, shared}
    assert '<option value="default" selected>' in select
    assert theirs not in select and gone not in select


async def test_a_launch_from_an_archived_or_unknown_template_is_a_sentence_and_claims_nothing(
    operator: httpx.AsyncClient,
) -> None:
    template_id = (await _create(operator, slug="retired")).headers["location"].rsplit("/", 1)[1]
    await _submit(
        operator, f"/dashboard/templates/{template_id}", f"/dashboard/templates/{template_id}/archive"
    )
    csrf = page_csrf((await operator.get("/dashboard")).text)

    for chosen, status, sentence in [
        (template_id, 409, f"Template {template_id} is archived"),
        ("tpl_000000000000", 404, "No template tpl_000000000000"),
    ]:
        response = await operator.post(
            "/dashboard/launch", json={"templateId": chosen}, headers={"X-CSRF-Token": csrf}
        )
        assert response.status_code == status, response.text
        assert response.json()["error"].startswith(sentence)
    claims = await operator.get("/api/pool/agents", headers=BEARER)
    assert claims.status_code == 200 and claims.json() == []
