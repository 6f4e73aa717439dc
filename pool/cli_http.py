"""`poolctl`'s one way to call the pool: every failure becomes a message and an exit code (see
`pool.cli`'s docstring), shared by its command modules."""

from __future__ import annotations

from typing import Annotated, Any, NoReturn

import httpx
import typer
from rich.console import Console

EXIT_REFUSED, EXIT_UNAUTHORIZED, EXIT_UNAVAILABLE, EXIT_UNREACHABLE = 1, 3, 4, 5
DEFAULT_URL = "http://127.0.0.1:8000"

console = Console()
errors = Console(stderr=True)

UrlOpt = Annotated[str, typer.Option("--url", envvar="POOL_URL", help="Pool base URL.")]
KeyOpt = Annotated[
    str, typer.Option("--key", envvar="POOL_API_KEY", help="Operator API key.", show_default=False)
]


def fail(message: str, code: int) -> NoReturn:
    errors.print(f"[bold red]error:[/] {message}")
    raise typer.Exit(code)


def _detail(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:200] or response.reason_phrase
    if isinstance(body, dict):
        detail = body.get("error", body.get("detail", body))
        return detail if isinstance(detail, str) else str(detail)
    return str(body)


def call(method: str, url: str, key: str, path: str, *, json: Any = None, timeout: float = 60.0) -> Any:
    """One request to the pool; every failure becomes a message and an exit code."""
    if not key:
        fail("no API key: pass --key or set POOL_API_KEY", 2)
    try:
        response = httpx.request(
            method,
            url.rstrip("/") + path,
            json=json,
            headers={"Authorization": f"Bearer {key}"},
            timeout=timeout,
        )
    except httpx.ConnectError:
        fail(f"cannot reach the pool at {url} (is it running? `poolctl up` starts one)", EXIT_UNREACHABLE)
    except httpx.TimeoutException:
        fail(f"the pool at {url} did not answer within {timeout:.0f}s", EXIT_UNREACHABLE)
    if response.status_code == 401:
        fail("unauthorized: the API key was refused (check POOL_API_KEY)", EXIT_UNAUTHORIZED)
    if response.status_code == 503:
        retry = response.headers.get("Retry-After")
        hint = f" (retry after {retry}s)" if retry else ""
        fail(f"pool unavailable: {_detail(response)}{hint}", EXIT_UNAVAILABLE)
    if response.status_code >= 400:
        fail(f"{response.status_code}: {_detail(response)}", EXIT_REFUSED)
    if not response.content:
        return None
    return response.json()
