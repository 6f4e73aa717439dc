"""What a pool server process loads: every module imported stays resident for the process's life
(the reconcile benchmark's peak RSS bar), so what only a dashboard page needs is loaded when first
used, and what the server never uses is not loaded (pool/__main__.py)."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.pool.conftest import API_KEY
from tests.pool.factories import ENCRYPTION_KEY

# The dashboard's template engine and QR codes (loaded by the first page), httpx's command-line
# tool (rich, pygments), uvicorn's file watcher for --reload and pydantic's v1 (never loaded).
NOT_AT_START = ("jinja2", "segno", "httpx._main", "rich", "pygments", "watchfiles", "pydantic.v1")

PROGRAM = """
import json, sys
import pool.__main__
from pool.config import Settings
from pool.main import create_app
create_app(Settings(environment="test", database_url={url!r}, api_key={api_key!r},
                    services_api_key="k", encryption_key={key!r}, tick_enabled=False))
print(json.dumps(sorted(m for m in {deferred!r} if sys.modules.get(m) is not None)))
"""


def test_server_start_loads_no_dashboard_cli_or_reload_modules() -> None:
    program = PROGRAM.format(
        url="postgresql+asyncpg://u:p@127.0.0.1:1/db",
        api_key=API_KEY,
        key=ENCRYPTION_KEY,
        deferred=NOT_AT_START,
    )
    done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, check=True)
    assert json.loads(done.stdout) == []
