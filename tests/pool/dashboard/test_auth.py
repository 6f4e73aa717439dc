"""Dashboard sessions: login by key or password, cookie flags, CSRF on every POST, logout revokes."""

from __future__ import annotations

import time

import httpx

from pool.dashboard.session import COOKIE
from shared.errors import error_body
from tests.pool.dashboard.conftest import API_KEY, Dashboard, form_token, log_in, page_csrf


async def test_dashboard_redirects_to_login_without_a_session(client: httpx.AsyncClient) -> None:
    response = await client.get("/dashboard")
    assert response.status_code == 303
    assert response.headers["location"] == "/dashboard/login"


async def test_fetch_without_a_session_gets_401_json(client: httpx.AsyncClient) -> None:
    response = await client.get("/dashboard/partials/summary", headers={"X-Requested-With": "fetch"})
    assert response.status_code == 401
    assert response.json() == error_body("Unauthorized", "log in to the dashboard first")


async def test_password_login_sets_a_signed_httponly_strict_cookie(client: httpx.AsyncClient) -> None:
    response = await log_in(client)
    assert response.status_code == 303
    assert response.headers["location"] == "/dashboard"
    set_cookie = next(v for v in response.headers.get_list("set-cookie") if v.startswith(COOKIE + "="))
    assert "HttpOnly" in set_cookie
    assert "SameSite=strict" in set_cookie or "SameSite=Strict" in set_cookie
    page = await client.get("/dashboard")
    assert page.status_code == 200
    assert 'id="summary"' in page.text


async def test_admin_key_logs_in_too(client: httpx.AsyncClient) -> None:
    assert (await log_in(client, API_KEY)).status_code == 303
    assert (await client.get("/dashboard")).status_code == 200


async def test_wrong_secret_is_refused_with_no_session(client: httpx.AsyncClient) -> None:
    response = await log_in(client, "not the password")
    assert response.status_code == 401
    assert "Wrong key or password." in response.text
    assert COOKIE not in client.cookies
    assert (await client.get("/dashboard")).status_code == 303


async def test_login_without_the_form_token_is_refused(client: httpx.AsyncClient) -> None:
    await client.get("/dashboard/login")
    response = await client.post("/dashboard/login", data={"secret": API_KEY, "csrf_token": "forged"})
    assert response.status_code == 403
    assert COOKIE not in client.cookies


async def test_repeated_wrong_guesses_slow_the_next_attempt_but_never_lock_it_out(
    client: httpx.AsyncClient, dashboard: Dashboard
) -> None:
    for _ in range(5):
        assert (await log_in(client, "guess")).status_code == 401
    started = time.monotonic()
    response = await log_in(client, API_KEY)
    elapsed = time.monotonic() - started
    assert response.status_code == 303
    assert COOKIE in client.cookies
    delay = dashboard.settings.login_delay_max_seconds
    assert delay * 0.5 <= elapsed <= delay + 2.0


async def test_state_changing_requests_need_the_csrf_token(client: httpx.AsyncClient) -> None:
    await log_in(client)
    csrf = page_csrf((await client.get("/dashboard")).text)
    url = "/dashboard/instances/abcdefabcdef/kill"
    missing = await client.post(url)
    wrong = await client.post(url, headers={"X-CSRF-Token": "nope"})
    right = await client.post(url, headers={"X-CSRF-Token": csrf})
    assert missing.status_code == 403
    assert missing.json() == error_body("Forbidden", "missing or invalid CSRF token")
    assert wrong.status_code == 403
    # With the token the request reaches the pool's kill, which knows no such instance.
    assert right.status_code == 404
    assert right.json() == error_body("NotFound", "no instance abcdefabcdef")


async def test_logout_revokes_the_session_even_for_a_kept_cookie(client: httpx.AsyncClient) -> None:
    await log_in(client)
    page = await client.get("/dashboard")
    kept = client.cookies[COOKIE]
    response = await client.post("/dashboard/logout", data={"csrf_token": form_token(page.text)})
    assert response.status_code == 303
    assert response.headers["location"] == "/dashboard/login"
    assert (await client.get("/dashboard")).status_code == 303
    client.cookies.set(COOKIE, kept)
    replay = await client.get("/dashboard")
    assert replay.status_code == 303


async def test_a_tampered_cookie_is_refused(client: httpx.AsyncClient) -> None:
    await log_in(client)
    cookie = client.cookies[COOKIE]
    client.cookies.clear()
    client.cookies.set(COOKIE, cookie[:-2] + ("AA" if not cookie.endswith("AA") else "BB"))
    assert (await client.get("/dashboard")).status_code == 303


async def test_pages_carry_security_headers(client: httpx.AsyncClient) -> None:
    response = await client.get("/dashboard/login")
    assert "script-src 'self'" in response.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
    assert response.headers["x-content-type-options"] == "nosniff"
