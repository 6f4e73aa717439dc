#!/bin/sh
# Runs before an app: wait for its database, bring its schema to head, then become the app (exec),
# so the app is PID 1's child no more than it has to be and receives the container's signals.
#
#   prestart <pool|services> <command> [args...]
#
# The URL comes from POOL_DATABASE_URL or SERVICES_DATABASE_URL; PRESTART_DB_TIMEOUT (seconds,
# default 60) bounds the wait. The URL holds a password, so messages name the variable, never its value.
set -eu

if [ "$#" -lt 2 ]; then
    echo "usage: prestart <pool|services> <command> [args...]" >&2
    exit 64
fi
app=$1
shift
case "$app" in
    pool) url_var=POOL_DATABASE_URL ;;
    services) url_var=SERVICES_DATABASE_URL ;;
    *)
        echo "prestart: unknown app '$app' (expected pool or services)" >&2
        exit 64
        ;;
esac

python - "$url_var" "${PRESTART_DB_TIMEOUT:-60}" <<'PY'
import asyncio
import os
import sys
import time

from shared.db import make_engine, ping


async def wait_for(url: str, timeout: float) -> bool:
    # A short connect timeout so a host that drops packets cannot stall one attempt past the deadline.
    engine = make_engine(url, pool_size=1, connect_args={"timeout": 5})
    deadline = time.monotonic() + timeout
    try:
        while not await ping(engine):
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(1)
        return True
    finally:
        await engine.dispose()


name, timeout = sys.argv[1], float(sys.argv[2])
url = os.environ.get(name, "")
if not url:
    sys.exit(f"prestart: {name} is not set")
if not asyncio.run(wait_for(url, timeout)):
    sys.exit(f"prestart: the database in {name} did not answer within {timeout:g}s")
print(f"prestart: database in {name} is up", flush=True)
PY

alembic --name "$app" upgrade head
echo "prestart: $app schema at head"
exec "$@"
