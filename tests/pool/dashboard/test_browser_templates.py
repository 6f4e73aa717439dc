"""The template pages and launching from a chosen template, in headless Chromium (issue 13): an
operator creates a template, edits it (version 2 appears with what changed), is told why a bad edit
is refused, forks a public template, archives one, and launches an agent from a chosen template.

The pool runs over real HTTP on a fresh database without its tick; idle instances are pool rows
served by the fake fleet (real HTTP). Screenshots land in `.data/test-output/dashboard/`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from playwright.async_api import Page, expect
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pool.main import create_app
from shared.ids import new_instance_id
from tests.fakes.fleet import FakeFleet
from tests.pool.dashboard.browser_support import OUTPUT, browser_marks, logged_in
from tests.pool.dashboard.conftest import ADMIN_PASSWORD, API_KEY, SERVICES_API_KEY, dashboard_settings
from tests.pool.factories import ENCRYPTION_KEY, make_instance
from tests.support import serve

pytestmark = browser_marks(timeout_seconds=90)

SECRETS = {
    "pool_api_key": API_KEY,
    "admin_password": ADMIN_PASSWORD,
    "encryption_key": ENCRYPTION_KEY,
    "services_api_key": SERVICES_API_KEY,
}
# Not a secret by the template API's rules, but markup: it must show as text, never as markup.
MARKUP = '<img src=x id="injected">'


@dataclass
class TemplatesPool:
    url: str
    fleet: FakeFleet
    sessionmaker: async_sessionmaker[AsyncSession]

    async def add_idle(self, template_id: str, version: int = 1) -> str:
        """An idle instance of `template_id`, served by the fake fleet."""
        instance_id = new_instance_id()
        agent = self.fleet.add(instance_id)
        async with self.sessionmaker() as session, session.begin():
            await make_instance(
                session,
                id=instance_id,
                token=agent.token,
                status="idle",
                url=self.fleet.url(instance_id),
                template_id=template_id,
                template_version=version,
            )
        return instance_id


@pytest.fixture
async def templates_pool(
    pool_db_url: str, fleet: FakeFleet, sessionmaker: async_sessionmaker[AsyncSession]
) -> AsyncIterator[TemplatesPool]:
    # The fleet's tokens are sealed with the factories' key: the pool must open them to provision.
    settings = dashboard_settings(pool_db_url, encryption_key=ENCRYPTION_KEY)
    async with serve(create_app(settings)) as url:
        yield TemplatesPool(url, fleet, sessionmaker)


async def shot(page: Page, name: str, pages: list[str]) -> None:
    pages.append(await page.content())
    await page.screenshot(path=str(OUTPUT / f"templates-{name}.png"), full_page=True)


async def create_template(page: Page, url: str, **fields: str) -> str:
    """Fill the new-template form from the list page; the template's id from the page it lands on."""
    await page.goto(url + "/dashboard/templates")
    await page.click("#new-template")
    for selector, value in fields.items():
        if selector == "#visibility":
            await page.select_option(selector, value)
        else:
            await page.fill(selector, value)
    await page.click("#save-template")
    await expect(page.locator("#current-version")).to_have_text("v1")
    return str(await page.locator("#template").get_attribute("data-template"))


async def test_create_edit_fork_and_archive_templates_in_the_browser(templates_pool: TemplatesPool) -> None:
    OUTPUT.mkdir(parents=True, exist_ok=True)
    pages: list[str] = []
    async with logged_in(templates_pool.url, ADMIN_PASSWORD) as context:
        page = await context.new_page()
        page.on("dialog", lambda dialog: asyncio.ensure_future(dialog.accept()))
        await page.goto(templates_pool.url + "/dashboard")
        await page.click("#templates-link")
        await expect(page.locator('tr[data-template="default"]')).to_be_visible()

        # 1. Create: version 1, its env value shown as text.
        template_id = await create_template(
            page,
            templates_pool.url,
            **{"#slug": "helpdesk", "#name": "Help desk", "#model": "openai/gpt-4o-mini"},
            **{
                "#template-instructions": "Be helpful.\nBe brief.",
                "#env": f"BANNER={MARKUP}\nLOG_LEVEL=info",
            },
        )
        await expect(page.locator("#versions pre").filter(has_text=f"BANNER={MARKUP}")).to_have_count(1)
        await expect(page.locator("#injected")).to_have_count(0)
        await shot(page, "01-created", pages)

        # 2. Edit: the form holds the current version; a change makes version 2, showing what changed.
        await page.click("#edit-template")
        await expect(page.locator("#template-instructions")).to_have_value("Be helpful.\nBe brief.")
        # Only the chosen rollout strategy's fields show.
        await expect(page.locator("#rollout-floor")).to_be_hidden()
        await page.select_option("#rollout-strategy", "recreate")
        await expect(page.locator("#rollout-floor")).to_be_visible()
        await page.fill("#rollout-floor", "2")
        await page.fill("#model", "openai/gpt-4o")
        await page.fill("#template-instructions", "Be helpful.\nBe kind.")
        await page.click("#save-template")
        await expect(page.locator("#current-version")).to_have_text("v2")
        newest = page.locator('details.version[data-version="2"]')
        await expect(newest).to_have_attribute("open", "")
        await expect(newest.locator(".changes")).to_contain_text("openai/gpt-4o-mini")
        await expect(newest.locator(".changes .del")).to_have_text("-Be brief.")
        await expect(newest.locator(".changes .add")).to_have_text("+Be kind.")
        await expect(newest.locator('[data-field="Rollout"]')).to_contain_text("recreate (floor 2)")
        await expect(page.locator('details.version[data-version="1"]')).to_have_count(1)
        await shot(page, "02-version-2", pages)

        # 3. A refused edit: the sentence above the form, the version unchanged, the secret not echoed.
        await page.click("#edit-template")
        await page.fill("#env", "SLACK_TOKEN=xoxb-0123456789-abcdef")
        await page.click("#save-template")
        await expect(page.locator("#form-error")).to_contain_text("Env SLACK_TOKEN looks like a secret")
        await expect(page.locator("#env")).to_have_value("SLACK_TOKEN=")
        await shot(page, "03-refused-edit", pages)
        await page.goto(f"{templates_pool.url}/dashboard/templates/{template_id}")
        await expect(page.locator("#current-version")).to_have_text("v2")

        # 4. Fork another owner's public template into the operator's own.
        public_id = await create_template(
            page, templates_pool.url, **{"#slug": "concierge", "#name": "Concierge", "#owner": "acme"},
            **{"#visibility": "public"},
        )  # fmt: skip
        await page.fill("#fork-slug", "my-concierge")
        await page.click("#fork-button")
        await expect(page.locator("#forked-from")).to_have_text(public_id)
        await expect(page.locator("#template")).to_contain_text("owner operator")
        await expect(page.locator("#visibility")).to_have_text("private")
        fork_id = str(await page.locator("#template").get_attribute("data-template"))
        assert fork_id not in (public_id, template_id)
        await shot(page, "04-forked", pages)

        # 5. Archive the fork (its confirmation accepted): marked, and gone from the list.
        await page.click("#archive-template")
        await expect(page.locator("#archived")).to_be_visible()
        await expect(page.locator("#archive-template")).to_have_count(0)
        await page.click("#back")
        await expect(page.locator(f'tr[data-template="{template_id}"]')).to_contain_text("v2")
        await expect(page.locator(f'tr[data-template="{fork_id}"]')).to_have_count(0)
        await shot(page, "05-list", pages)

        # The launch form offers the live ones the operator may use, the default preselected.
        await page.goto(templates_pool.url + "/dashboard")
        await expect(page.locator("#launch-template")).to_have_value("default")
        offered = await page.locator("#launch-template option").evaluate_all("os => os.map(o => o.value)")
        assert set(offered) == {"default", template_id, public_id}

    for name, value in SECRETS.items():
        assert not [html for html in pages if value in html], f"{name} shown on a template page"
    assert not [html for html in pages if "xoxb-0123456789-abcdef" in html], "a refused secret sent back"


async def test_launching_from_a_chosen_template_gives_an_instance_of_that_template(
    templates_pool: TemplatesPool,
) -> None:
    OUTPUT.mkdir(parents=True, exist_ok=True)
    pages: list[str] = []
    async with logged_in(templates_pool.url, ADMIN_PASSWORD) as context:
        page = await context.new_page()
        template_id = await create_template(
            page, templates_pool.url, **{"#slug": "mailer", "#name": "Mailer", "#visibility": "public"},
            **{"#agent-name-default": "Postie", "#template-instructions": "Answer mail."},
        )  # fmt: skip
        # The default template's idle instance is the older one: a claim blind to templates takes it.
        default_instance = await templates_pool.add_idle("default")
        chosen_instance = await templates_pool.add_idle(template_id)

        await page.goto(templates_pool.url + "/dashboard")
        await page.select_option("#launch-template", template_id)
        # No agent name typed: the template's default is the agent's.
        await page.click("#launch-button")

        await expect(page.locator("#invite-qr")).to_be_visible(timeout=10_000)
        await expect(page.locator("#launch-result .result")).to_have_attribute(
            "data-instance", chosen_instance
        )
        await expect(page.locator("#launch-result strong").first).to_have_text("Postie")
        await expect(page.locator("#launch-template-used")).to_have_text("From template Mailer (mailer v1).")
        agent = templates_pool.fleet.agents[chosen_instance]
        assert await page.locator("#invite-url").input_value() == agent.invite_url
        # The agents list says which template each instance is of.
        row = page.locator(f'#agent-list tr[data-id="{chosen_instance}"]')
        await expect(row).to_contain_text("mailer v1", timeout=10_000)
        await expect(page.locator(f'#agent-list tr[data-id="{default_instance}"]')).to_contain_text("idle")
        await shot(page, "06-launched-from-template", pages)

        # The template's page counts the claimed one.
        await page.goto(f"{templates_pool.url}/dashboard/templates/{template_id}")
        await expect(page.locator("#count-claimed")).to_have_text("1")
        await expect(page.locator("#count-idle")).to_have_text("0")

    for name, value in SECRETS.items():
        assert not [html for html in pages if value in html], f"{name} shown on the dashboard"
    gateway_token = templates_pool.fleet.agents[chosen_instance].token
    assert not [html for html in pages if gateway_token in html], "a gateway token shown on the dashboard"
