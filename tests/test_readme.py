"""README.md stays true to the code: every setting of every settings class has a row with its default,
every variable the code or the containers read is documented, the table is exactly what
scripts/config_table.py generates, and the two commands are shown."""

from __future__ import annotations

import ast
import importlib
import json
import re
from pathlib import Path
from typing import Any

import pytest
from pydantic_settings import BaseSettings, SettingsConfigDict

from scripts import config_table

ROOT = Path(__file__).resolve().parent.parent
# devtools too: `make up` reads variables (WARMPOOL_DATA_DIR, RAILWAY_FAKE) that README documents.
PACKAGES = ("pool", "services", "shared", "runtime", "devtools")
NAME = re.compile(r"^[A-Z][A-Z0-9_]+$")


def readme() -> str:
    return (ROOT / "README.md").read_text()


def table_rows() -> dict[str, list[str]]:
    """Variable name → its rows in the configuration block (a name may appear in several sections)."""
    block = readme().partition(config_table.BEGIN)[2].partition(config_table.END)[0]
    rows: dict[str, list[str]] = {}
    for line in block.splitlines():
        found = re.match(r"^\| `([A-Z0-9_]+)` \|", line)
        if found:
            rows.setdefault(found.group(1), []).append(line)
    return rows


def python_files() -> list[Path]:
    return [path for package in PACKAGES for path in sorted((ROOT / package).rglob("*.py"))]


def settings_classes_in_code() -> set[type[BaseSettings]]:
    """Every `class X(BaseSettings)` in the packages, found in the source so none is missed by an import."""
    found: set[type[BaseSettings]] = set()
    for path in python_files():
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef) and any(
                (isinstance(base, ast.Name) and base.id == "BaseSettings")
                or (isinstance(base, ast.Attribute) and base.attr == "BaseSettings")
                for base in node.bases
            ):
                module = ".".join(path.relative_to(ROOT).with_suffix("").parts)
                found.add(getattr(importlib.import_module(module), node.name))
    return found


def expected_default(field: Any) -> str:
    if field.is_required():
        return "**required**"
    value = field.get_default(call_default_factory=True)
    if value is None:
        return "(unset)"
    if value == "":
        return "(empty)"
    if isinstance(value, bool):
        return "`true`" if value else "`false`"
    if isinstance(value, list | dict):
        return f"`{json.dumps(value, separators=(',', ':'))}`"
    return f"`{value}`"


def _is_environ(node: ast.expr) -> bool:
    if isinstance(node, ast.Call):
        node = node.func
    return isinstance(node, ast.Attribute) and node.attr == "environ"


def variables_read_by_code() -> set[str]:
    """Names passed to os.environ.get / os.getenv / os.environ[...] / `in os.environ` / typer's envvar=."""
    names: set[str] = set()
    for path in python_files():
        for node in ast.walk(ast.parse(path.read_text())):
            candidates: list[ast.expr] = []
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
                func = node.func
                if (func.attr == "get" and _is_environ(func.value)) or func.attr == "getenv":
                    candidates += node.args[:1]
            if isinstance(node, ast.Call):
                candidates += [kw.value for kw in node.keywords if kw.arg == "envvar"]
            if isinstance(node, ast.Subscript) and _is_environ(node.value):
                candidates.append(node.slice)
            if isinstance(node, ast.Compare) and any(_is_environ(c) for c in node.comparators):
                candidates.append(node.left)
            for c in candidates:
                if isinstance(c, ast.Constant) and isinstance(c.value, str) and NAME.match(c.value):
                    names.add(c.value)
    return names


def variables_read_by_containers() -> set[str]:
    """`${NAME...}` outside comments in the compose file and the scripts the images and Postgres run."""
    files = [ROOT / "docker-compose.yml", *sorted((ROOT / "docker").rglob("*.sh"))]
    code = [
        line for path in files for line in path.read_text().splitlines() if not line.lstrip().startswith("#")
    ]
    return {name for line in code for name in re.findall(r"\$\{([A-Z][A-Z0-9_]*)", line)}


def test_every_settings_class_is_in_the_table() -> None:
    listed = {section.settings for section in config_table.SECTIONS}
    assert settings_classes_in_code() == listed


@pytest.mark.parametrize("section", config_table.SECTIONS, ids=lambda s: s.settings.__name__)
def test_every_setting_has_a_row_with_its_default(section: config_table.Section) -> None:
    rows = table_rows()
    prefix = str(section.settings.model_config.get("env_prefix", ""))
    for name, field in section.settings.model_fields.items():
        env = f"{prefix}{name}".upper()
        assert env in rows, f"{env} is missing from README.md's configuration table"
        default = expected_default(field)
        assert any(f"| {default}" in row for row in rows[env]), f"{env}: README does not show {default}"


def test_placeholder_secrets_are_marked_as_refused_in_production() -> None:
    rows = table_rows()
    for name in ("POOL_API_KEY", "POOL_ENCRYPTION_KEY", "SERVICES_API_KEY", "SERVICES_ENCRYPTION_KEY"):
        assert "refused in production" in rows[name][0]


def test_every_variable_the_code_and_containers_read_is_documented() -> None:
    read = variables_read_by_code() | variables_read_by_containers()
    # Set by the postgres image or by the runtime image itself, not by an operator.
    read -= {"POSTGRES_USER", "POSTGRES_DB"}
    assert {"WARMPOOL_DATA_DIR", "RAILWAY_FAKE", "POOL_URL", "PRESTART_DB_TIMEOUT"} <= read
    assert read - set(table_rows()) == set()


def test_table_is_what_the_script_generates() -> None:
    text = readme()
    assert config_table.splice(text, config_table.render()) == text, (
        f"README.md's configuration table is stale: run {config_table.REGENERATE}"
    )


def test_a_setting_without_a_meaning_stops_the_generator(monkeypatch: pytest.MonkeyPatch) -> None:
    class NewSettings(BaseSettings):
        model_config = SettingsConfigDict(env_prefix="NEW_")
        undocumented_knob: int = 1

    monkeypatch.setattr(config_table, "SECTIONS", (config_table.Section("New", NewSettings),))
    with pytest.raises(KeyError, match="NEW_UNDOCUMENTED_KNOB"):
        config_table.render()


def test_readme_shows_the_two_commands() -> None:
    blocks = "\n".join(re.findall(r"```sh\n(.*?)```", readme(), flags=re.S))
    assert re.search(r"^make up\b", blocks, flags=re.M)
    assert re.search(r"^make test\b", blocks, flags=re.M)


def test_readme_links_point_at_files_that_exist() -> None:
    targets = re.findall(r"\]\(((?!https?://|#)[^)#\s]+)", readme())
    assert targets, "README.md links to no file"
    for target in targets:
        assert (ROOT / target).exists(), f"README.md links to {target}, which does not exist"


def _routes(app: Any) -> set[str]:
    spec = app.openapi()
    return {f"{method.upper()} {path}" for path, ops in spec["paths"].items() for method in ops}


def test_api_section_names_every_route_of_both_apps() -> None:
    from pool.config import Settings as PoolSettings
    from pool.main import create_app as create_pool
    from services.config import Settings as ServicesSettings
    from services.main import create_app as create_services

    def shape(route: str) -> str:
        return re.sub(r"\{[^}]*\}", "{}", route)

    api = readme().partition("\n## API\n")[2]
    assert api, "README.md has no API section"
    documented = {shape(route) for route in re.findall(r"`((?:GET|POST|DELETE|PUT|PATCH) /[^`\s]*)`", api)}
    routes = _routes(create_pool(PoolSettings())) | _routes(create_services(ServicesSettings()))
    assert {shape(route) for route in routes} - documented == set()
