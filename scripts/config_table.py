"""README.md's configuration table, generated from the settings classes so it cannot drift.

    .venv/bin/python -m scripts.config_table           # print the table
    .venv/bin/python -m scripts.config_table --write   # rewrite the block between the README markers
    .venv/bin/python -m scripts.config_table --check   # exit 1 when README.md's block is stale

Names and defaults come from the classes; meanings come from a field's `description` or from
MEANINGS below (the settings modules belong to their apps, so the operator's wording lives here).
Variables no settings class reads (`make up`, poolctl, containers, tests) are listed in EXTRA.
tests/test_readme.py fails when a setting has no row, or when the README is older than this output.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings

from pool.config import PLACEHOLDER_SECRETS as POOL_PLACEHOLDERS
from pool.config import Settings as PoolSettings
from runtime.config import Settings as RuntimeSettings
from services.config import PLACEHOLDER_SECRETS as SERVICES_PLACEHOLDERS
from services.config import Settings as ServicesSettings
from services.platforms.railway.settings import RailwaySettings
from services.pooled.service import PooledSettings
from services.sweep.service import SweepSettings
from services.tools.agentmail import AgentMailSettings
from services.tools.openrouter import OpenRouterSettings
from services.tools.telnyx import TelnyxSettings

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
BEGIN, END = "<!-- config-table -->", "<!-- /config-table -->"
PLACEHOLDERS = POOL_PLACEHOLDERS | SERVICES_PLACEHOLDERS - {""}
REQUIRED = "**required**"
REGENERATE = ".venv/bin/python -m scripts.config_table --write"


@dataclass(frozen=True)
class Section:
    title: str
    settings: type[BaseSettings]


SECTIONS = (
    Section("Pool (`python -m pool`, image `pool`)", PoolSettings),
    Section("Services (`python -m services`, image `services`)", ServicesSettings),
    Section("Services: the sweep's view of the pool", SweepSettings),
    Section(
        "Railway provider (services, on a `railway` platform; a platform's `settings` in "
        '`SERVICES_PLATFORMS` override these by field name, e.g. `{"mode": "per-instance"}`)',
        RailwaySettings,
    ),
    Section("OpenRouter tool (services; offered when the key is set)", OpenRouterSettings),
    Section("AgentMail tool (services; offered when the key is set)", AgentMailSettings),
    Section("Telnyx tool (services; offered when the key is set)", TelnyxSettings),
    Section("Pooled tools (services; operator-supplied secrets handed out one per instance)", PooledSettings),
    Section(
        "Agent instance (`python -m runtime`, image `runtime`; services sets these for each instance)",
        RuntimeSettings,
    ),
)

MEANINGS: dict[str, str] = {
    # pool
    "POOL_ENVIRONMENT": "`development`, `test` or `production`; production refuses placeholder secrets.",
    "POOL_LOG_LEVEL": "Level of the structured log lines (`DEBUG`, `INFO`, `WARNING`).",
    "POOL_DATABASE_URL": "The pool's PostgreSQL database, `postgresql://user:pass@host:5432/pool`; "
    "also what `alembic --name pool` migrates. Required (`make up` sets it).",
    "POOL_HOST": "Address the API and dashboard listen on (the image sets `0.0.0.0`).",
    "POOL_PORT": "Port of the API and dashboard.",
    "POOL_API_KEY": "Bearer key of the operator API and `POST /api/pool/claim`; also logs into the "
    "dashboard.",
    "POOL_ADMIN_PASSWORD": "Dashboard password (never valid on the API); empty: only the API key logs in.",
    "POOL_SERVICES_URL": "Base URL of the services app.",
    "POOL_SERVICES_API_KEY": "Bearer the pool presents to services; must equal `SERVICES_API_KEY`.",
    "POOL_ENCRYPTION_KEY": "Passphrase encrypting each instance's gateway token at rest. Changing it "
    "makes the stored tokens unreadable (see docs/operating.md, secrets).",
    "POOL_MIN_IDLE": "Idle instances the loop keeps ready; starting and creating ones count toward it.",
    "POOL_MAX_TOTAL": "Cap on instances of every status together; neither the loop nor replenish passes it.",
    "POOL_CREATE_CONCURRENCY": "Instance creations in flight at once.",
    "POOL_TOOLS": 'Tools each instance the pool creates gets, as JSON (`["openrouter","agentmail"]`). '
    "The pool always sends this list, so `SERVICES_DEFAULT_TOOLS` does not apply to its creates.",
    "POOL_TICK_ENABLED": "Run the reconcile loop here; any number of replicas may (one leads at a "
    "time). `false`: serve only.",
    "POOL_TICK_INTERVAL_SECONDS": "Seconds between reconcile ticks, start to start (`make up` uses 5).",
    "POOL_STARTING_PROBE_INTERVAL_SECONDS": "Seconds between probes of `starting` instances, which "
    "promote them to idle without waiting for the next tick.",
    "POOL_STUCK_TIMEOUT_SECONDS": "A deploy not healthy after this long is replaced; also the age at "
    "which a `creating` row is given up.",
    "POOL_FAILED_PROBES_FOR_DEATH": "Consecutive failed observations before a deployed instance is dead.",
    "POOL_ORPHAN_GRACE_SECONDS": "Age before an instance services knows and the pool does not is destroyed.",
    "POOL_CLAIM_PROVISION_TIMEOUT_SECONDS": "Timeout of each call a claim makes to an instance: "
    "`/pool/provision`, and after a failed one `/convos/reset` and `/convos/status` (a claim tries at "
    "most 2 instances); it sets the stale bound (`POOL_CLAIM_STALE_MARGIN_SECONDS`).",
    "POOL_CLAIM_WAIT_MAX_SECONDS": "Largest `?wait=` a claim may ask for (seconds in the claim queue).",
    "POOL_CLAIM_DUPLICATE_WAIT_SECONDS": "How long a duplicate of an in-flight claim waits for its answer.",
    # services
    "SERVICES_ENVIRONMENT": "`development`, `test` or `production`; production refuses placeholder secrets.",
    "SERVICES_DATABASE_URL": "Services' PostgreSQL database, `postgresql://user:pass@host:5432/services`; "
    "also what `alembic --name services` migrates. Required (`make up` sets it).",
    "SERVICES_HOST": "Address services listens on (the image sets `0.0.0.0`).",
    "SERVICES_PORT": "Port of services.",
    "SERVICES_PUBLIC_URL": "URL instances call services on (their `SERVICES_URL`); empty: `http://HOST:PORT`.",
    "SERVICES_POOL_URL": "URL of the pool, given to instances as `POOL_URL` and used by the sweep.",
    "SERVICES_API_KEY": "Bearer key of services' internal API (the pool and operators).",
    "SERVICES_ENCRYPTION_KEY": "Passphrase encrypting tool secrets and instance tokens at rest. Changing "
    "it makes them unreadable (see docs/operating.md, secrets).",
    "SERVICES_LOG_LEVEL": "Level of the structured log lines.",
    "SERVICES_PLATFORM": "Where instances run when `SERVICES_PLATFORMS` is unset: `local` (runtime "
    "processes on this host) or `railway`.",
    "SERVICES_RUNTIME_IMAGE": "Image deployed for each instance on Railway (unless `RAILWAY_DEFAULT_IMAGE` "
    "is set); the local provider runs `python -m runtime` instead.",
    "SERVICES_DEFAULT_TOOLS": "Tools for a create request that names none, as JSON.",
    "SERVICES_PROBE_CONCURRENCY": (
        "Least number of health probes in flight during `/status/batch`; grows with the fleet "
        "up to `SERVICES_PROBE_CONCURRENCY_MAX`."
    ),
    "SERVICES_PROBE_TIMEOUT_SECONDS": "Timeout of one `/pool/health` probe.",
    "SERVICES_LOCAL_DATA_DIR": "Local provider: where each instance's data dir lives.",
    "SERVICES_LOCAL_RUNTIME_ENV": 'Local provider: extra env for every runtime, as JSON (`{"RUNTIME_STARTUP_'
    'DELAY": "5"}`).',
    "SERVICES_LOCAL_STOP_GRACE_SECONDS": "Local provider: SIGTERM, then SIGKILL after this long.",
    "SERVICES_SWEEP_INTERVAL_SECONDS": "Seconds between sweeps of orphaned resources; `0` disables the loop.",
    "SERVICES_SWEEP_GRACE_SECONDS": "Age before the sweep removes an orphan or finishes a stuck ledger row.",
    "SERVICES_SWEEP_POOL_API_KEY": "The pool's `POOL_API_KEY`, so the sweep can compare services' "
    "instances with the pool's; empty skips that comparison.",
    # railway
    "RAILWAY_API_TOKEN": "Railway API token.",
    "RAILWAY_API_TOKENS": "More tokens, comma-separated: creations rotate over them to spread the "
    "per-token project/volume cooldowns.",
    "RAILWAY_TOKEN_KIND": "`account` or `workspace` (sent as `Authorization: Bearer`) or `project` "
    "(sent as `Project-Access-Token`; shared mode only).",
    "RAILWAY_API_URL": "Railway's GraphQL endpoint (the fake's URL under `RAILWAY_FAKE=1`).",
    "RAILWAY_MODE": "`shared`: every instance a service in `RAILWAY_PROJECT_ID`; `per-instance`: a "
    "project per instance (no ~100-services cap).",
    "RAILWAY_PROJECT_ID": "The project of shared mode (required there).",
    "RAILWAY_ENVIRONMENT_ID": "Shared mode's environment; empty: looked up once (`production`).",
    "RAILWAY_WORKSPACE_ID": "Workspace new projects go in (per-instance mode), and the deploy-event rule's "
    "(shared mode looks it up from the project when empty).",
    "RAILWAY_WEBHOOK_SECRET": "Deploy events (DESIGN.md §13): the secret in services' webhook URL "
    "`<SERVICES_PUBLIC_URL>/webhooks/railway/<secret>` (24-128 of `A-Za-z0-9_-`; never an API key). Set: "
    "services makes the workspace's notification rule at start-up unless one with that URL exists. "
    "Empty: no events (the tick alone observes).",
    "RAILWAY_REQUESTS_PER_SECOND": "Client-side pacing per process (Railway Pro allows 50/s).",
    "RAILWAY_REQUESTS_PER_HOUR": "Client-side hourly budget per process (Railway Pro allows 10,000/h "
    "per account, shared by every replica and tool using it).",
    "RAILWAY_PROJECT_CREATE_COOLDOWN_SECONDS": "Seconds a token rests after a `projectCreate`.",
    "RAILWAY_VOLUME_CREATE_COOLDOWN_SECONDS": "Seconds a token rests after a `volumeCreate`.",
    "RAILWAY_MAX_ATTEMPTS": "Attempts per call on 429, 5xx and retryable errors.",
    "RAILWAY_BACKOFF_SECONDS": "First retry delay (doubling) when Railway sends no `Retry-After`.",
    "RAILWAY_MAX_RETRY_AFTER_SECONDS": "Longest `Retry-After` honoured before giving up the call.",
    "RAILWAY_TIMEOUT_SECONDS": "Timeout of one GraphQL request.",
    "RAILWAY_PAGE_SIZE": "Page size of the fleet listing in the status query (one call per page).",
    "RAILWAY_STATUS_BATCH_SIZE": "Per-instance mode: projects per aliased status request.",
    "RAILWAY_REGION": "Region of instance volumes; empty: Railway's default.",
    "RAILWAY_VOLUME_MOUNT_PATH": "Where each instance's volume is mounted (its `RUNTIME_DATA_DIR`).",
    "RAILWAY_SERVICE_NAME_PREFIX": "Prefix of service names; the sweep treats only these as ours.",
    "RAILWAY_DEFAULT_IMAGE": "Instance image; when unset, `SERVICES_RUNTIME_IMAGE` is used.",
    "RAILWAY_START_COMMAND": "Start command override of the instance image; empty: the image's own.",
    "RAILWAY_TARGET_PORT": "Port the instance's public domain routes to (the image's `PORT`).",
    "RAILWAY_PUBLIC_SCHEME": "Scheme of instance URLs (`http` only for the fake).",
    # tools
    "OPENROUTER_MANAGEMENT_KEY": "OpenRouter management (provisioning) key; mints one API key per instance.",
    "OPENROUTER_BASE_URL": "OpenRouter API base URL.",
    "OPENROUTER_KEY_LIMIT": "Credit limit (USD) of each minted key.",
    "OPENROUTER_KEY_LIMIT_RESET": "When the limit resets (`daily`, `weekly`, `monthly`); unset: never.",
    "OPENROUTER_NAME_PREFIX": "Prefix of key names; the sweep treats only these as ours.",
    "OPENROUTER_TIMEOUT_SECONDS": "Timeout of one OpenRouter request.",
    "AGENTMAIL_API_KEY": "AgentMail API key; creates one inbox per instance.",
    "AGENTMAIL_BASE_URL": "AgentMail API base URL.",
    "AGENTMAIL_DOMAIN": "Inbox domain (verified at AgentMail); empty: AgentMail's own.",
    "AGENTMAIL_NAME_PREFIX": "Prefix of inbox client ids and usernames; the sweep treats only these as ours.",
    "AGENTMAIL_TIMEOUT_SECONDS": "Timeout of one AgentMail request.",
    "AGENTMAIL_USERNAME_ATTEMPTS": "Other usernames tried when ours is taken.",
    "TELNYX_API_KEY": "Telnyx API key; gives each instance a phone number.",
    "TELNYX_BASE_URL": "Telnyx API base URL.",
    "TELNYX_MESSAGING_PROFILE_ID": "Messaging profile assigned to each number; empty: none.",
    "TELNYX_COUNTRY": "Country of numbers bought.",
    "TELNYX_RELEASE_MODE": "On destroy, `release` the number or `recycle` it into the pooled table.",
    "TELNYX_NAME_PREFIX": "Prefix of customer references; the sweep treats only these as ours.",
    "TELNYX_TIMEOUT_SECONDS": "Timeout of one Telnyx request.",
    "TELNYX_SEARCH_LIMIT": "Available numbers fetched per search.",
    "TELNYX_ORDER_POLL_SECONDS": "Poll interval of a number order.",
    "TELNYX_ORDER_TIMEOUT_SECONDS": "Give up a number order after this long.",
    "TELNYX_NOT_FOUND_ATTEMPTS": "Tries while a just-bought number still answers 404.",
    "TELNYX_NOT_FOUND_BACKOFF_SECONDS": "First delay (doubling) between those tries.",
    "POOLED_TOOLS": 'Pooled tools to offer, as JSON (`["bankr"]`); add their secrets with '
    "`POST /pooled/{kind}`.",
    # runtime
    "PORT": "Port the instance listens on.",
    "HOST": "Address the instance listens on (the image sets `0.0.0.0`).",
    "INSTANCE_ID": "The instance's id (12 chars); names its data dir.",
    "GATEWAY_TOKEN": "The instance's own bearer for `/pool/provision` and `/convos/*`; minted per instance.",
    "POOL_URL": "The pool's URL (instance contract; the reference runtime only carries it).",
    "SERVICES_URL": "Services' URL, where the instance provisions its own tools with "
    "`INSTANCE_SERVICES_TOKEN`.",
    "INSTANCE_SERVICES_TOKEN": "The instance's own bearer on services' tool routes; minted per instance.",
    "RUNTIME_DATA_DIR": "Where the binding and the memory persist; unset: `.data/runtime/<INSTANCE_ID>`.",
    "RUNTIME_INVITE_BASE": "Base of the invite URLs the reference runtime makes up.",
    "RUNTIME_VERSION": "Version reported by `/pool/health`.",
    "RUNTIME_STARTUP_DELAY": "Test knob: seconds before `/pool/health` says ready.",
    "RUNTIME_NEVER_READY": "Test knob: never become ready.",
    "RUNTIME_CRASH_AFTER": "Test knob: exit after this many seconds.",
    "RUNTIME_FAIL_PROVISION": "Test knob: `/pool/provision` fails.",
    "RUNTIME_PROVISION_DELAY": "Test knob: seconds `/pool/provision` takes.",
    "RUNTIME_JOIN_PENDING": "Test knob: joins end `pending_acceptance`.",
    "RUNTIME_FAIL_IMPORT": "Test knob: `/convos/import` fails (500) after restoring, leaving state to reset.",
}

# Secrets with a development placeholder default: shown, but marked as refused in production.
SECRETS = {
    "POOL_API_KEY",
    "POOL_ADMIN_PASSWORD",
    "POOL_SERVICES_API_KEY",
    "POOL_ENCRYPTION_KEY",
    "SERVICES_API_KEY",
    "SERVICES_ENCRYPTION_KEY",
    "SERVICES_SWEEP_POOL_API_KEY",
    "RAILWAY_API_TOKEN",
    "RAILWAY_API_TOKENS",
    "OPENROUTER_MANAGEMENT_KEY",
    "AGENTMAIL_API_KEY",
    "TELNYX_API_KEY",
    "GATEWAY_TOKEN",
    "INSTANCE_SERVICES_TOKEN",
}

# (section title, [(name, default cell, meaning)]) for variables no settings class reads.
EXTRA: tuple[tuple[str, tuple[tuple[str, str, str], ...]], ...] = (
    (
        "`make up` (`python -m devtools.up`; every other variable passes through to the apps)",
        (
            ("WARMPOOL_DATA_DIR", "`.data`", "PostgreSQL data, logs, generated keys, instance data dirs."),
            ("POOL_MIN_IDLE", "`2`", "`make up`'s own default target (the pool's is 3)."),
            ("POOL_PORT", "`8000`", "Pool port; `make up` also passes it to services as the pool's URL."),
            ("SERVICES_PORT", "`8001`", "Services port; `make up` also passes it to the pool."),
            (
                "POOL_API_KEY",
                "(generated)",
                "Kept in `WARMPOOL_DATA_DIR/admin-key` (mode 0600); a value set here wins.",
            ),
            (
                "POOL_ADMIN_PASSWORD",
                "(generated)",
                "Kept in `WARMPOOL_DATA_DIR/admin-password` (mode 0600); a value set here wins.",
            ),
            ("POOL_TICK_INTERVAL_SECONDS", "`5`", "A faster tick than the pool's default, for a laptop."),
            (
                "RAILWAY_API_TOKEN",
                "(empty)",
                "When set, services uses the `railway` provider (real Railway).",
            ),
            (
                "RAILWAY_FAKE",
                "(empty)",
                "`1`: start the fake Railway API and point services at it (per-instance mode, "
                "1 s cooldowns).",
            ),
        ),
    ),
    (
        "`poolctl` (pool/cli.py)",
        (
            ("POOL_URL", "`http://127.0.0.1:8000`", "The pool to talk to (`--url`)."),
            ("POOL_API_KEY", "(empty)", "Operator key (`--key`); `make up` prints where to find it."),
        ),
    ),
    (
        "Containers (docker/, docker-compose.yml)",
        (
            ("PRESTART_DB_TIMEOUT", "`60`", "Seconds the prestart step waits for the database."),
            (
                "APP_UID",
                "`10001`",
                "Runtime image: the user the entrypoint drops to after chowning its volume.",
            ),
            ("POSTGRES_PASSWORD", REQUIRED, "compose: the `postgres` superuser's password."),
            ("POOL_DB_PASSWORD", REQUIRED, "compose: password of the `pool` role (created on first start)."),
            ("SERVICES_DB_PASSWORD", REQUIRED, "compose: password of the `services` role."),
            ("POOL_DB_NAME", "`pool`", "Postgres init script: the pool's database and role name."),
            ("SERVICES_DB_NAME", "`services`", "Postgres init script: services' database and role name."),
            ("POOL_PUBLIC_URL", REQUIRED, "compose: URL instances reach the pool on (`SERVICES_POOL_URL`)."),
            ("IMAGE_PREFIX", "`ghcr.io/warmpool`", "compose: registry and owner of the images."),
            ("IMAGE_TAG", "`latest`", "compose: tag of the pool and services images."),
            ("POOL_PUBLISH_PORT", "`8000`", "compose: host port of the pool."),
            ("SERVICES_PUBLISH_PORT", "`8001`", "compose: host port of services."),
        ),
    ),
    (
        "Tests and make",
        (
            (
                "TEST_DATABASE_URL",
                "(empty: embedded)",
                "A PostgreSQL server for the tests (a role that may create databases).",
            ),
            ("PYTEST_ARGS", "(empty)", "`make test` / `make soak`: extra pytest arguments."),
            (
                "SOAK_SEED",
                "`20261124` (tests), random (`python -m devtools.soak`)",
                "The chaos soak's seed; every failing soak prints the one that replays it.",
            ),
            (
                "SOAK_KEEP_WORKDIR",
                "(empty)",
                "`1`: a soak run keeps its work directory (its apps' logs and databases) to read afterwards.",
            ),
            (
                "WARMPOOL_CHROMIUM",
                "`/usr/bin/chromium`",
                "The Chromium the dashboard's browser tests drive; missing, `make test` stops and says so.",
            ),
            (
                "WARMPOOL_SKIP_BROWSER_TESTS",
                "(empty)",
                "`1`: skip the browser tests when Chromium is missing (instead of stopping the run).",
            ),
            ("VENV", "`.venv`", "`make`: the virtualenv every target uses."),
        ),
    ),
)


def env_name(settings: type[BaseSettings], name: str, field: FieldInfo) -> str:
    if isinstance(field.alias, str):
        return field.alias.upper()
    prefix = str(settings.model_config.get("env_prefix", ""))
    return f"{prefix}{name}".upper()


def env_value(value: Any) -> str:
    """A default as one would write it in the environment."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | dict | tuple):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


def default_cell(name: str, field: FieldInfo) -> str:
    if field.is_required():
        return REQUIRED
    value = field.get_default(call_default_factory=True)
    if value is None:
        return "(unset)"
    if value == "":
        return "(empty)"
    cell = f"`{env_value(value)}`"
    if name in SECRETS and value in PLACEHOLDERS:
        cell += " (dev placeholder; refused in production)"
    return cell


def meaning(name: str, field: FieldInfo) -> str:
    text = field.description or MEANINGS.get(name)
    if not text:
        raise KeyError(f"{name} has no meaning: add it to MEANINGS in scripts/config_table.py")
    return text


def rows(section: Section) -> list[tuple[str, str, str]]:
    return [
        (env, default_cell(env, field), meaning(env, field))
        for name, field in section.settings.model_fields.items()
        for env in [env_name(section.settings, name, field)]
    ]


def _escape(text: str) -> str:
    return text.replace("|", "\\|")


def _table(title: str, body: list[tuple[str, str, str]]) -> list[str]:
    lines = [f"#### {title}", "", "| variable | default | meaning |", "|---|---|---|"]
    lines += [f"| `{name}` | {default} | {_escape(text)} |" for name, default, text in body]
    return [*lines, ""]


def render() -> str:
    lines: list[str] = []
    for section in SECTIONS:
        lines += _table(section.title, rows(section))
    for title, extra in EXTRA:
        lines += _table(title, list(extra))
    return "\n".join(lines).rstrip() + "\n"


def splice(readme: str, table: str) -> str:
    head, sep, rest = readme.partition(BEGIN)
    _, sep2, tail = rest.partition(END)
    if not (sep and sep2):
        raise ValueError(f"README.md lacks the {BEGIN} … {END} markers")
    return f"{head}{BEGIN}\n{table}{END}{tail}"


def main(argv: list[str]) -> int:
    table = render()
    if not argv:
        sys.stdout.write(table)
        return 0
    current = README.read_text()
    wanted = splice(current, table)
    if argv == ["--write"]:
        README.write_text(wanted)
        return 0
    if argv == ["--check"]:
        if current != wanted:
            print(f"README.md's configuration table is stale: run {REGENERATE}")
            return 1
        return 0
    print(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
