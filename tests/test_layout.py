"""Imports flow one way: pool → shared, services → shared (and runtime's launcher); neither app
imports the other, shared imports neither, and the runtime stands alone like the production image."""

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FORBIDDEN = {
    "pool": {"services", "runtime"},
    "services": {"pool"},
    "shared": {"pool", "services", "runtime"},
    "runtime": {"pool", "services", "shared"},
}


def imported_packages(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_package_imports_flow_one_way(package: str) -> None:
    offenders = {
        str(path.relative_to(ROOT)): sorted(imported_packages(path) & FORBIDDEN[package])
        for path in (ROOT / package).rglob("*.py")
    }
    assert {path: bad for path, bad in offenders.items() if bad} == {}


def test_layout_check_catches_a_forbidden_import(tmp_path: Path) -> None:
    module = tmp_path / "bad.py"
    module.write_text("from services.models import InstanceInfra\nimport pool.main\n")
    assert imported_packages(module) & FORBIDDEN["shared"] == {"services", "pool"}


PRODUCT = ("pool", "services", "shared", "runtime")


def test_no_product_package_imports_devtools() -> None:
    # devtools (make up, embedded PostgreSQL, the fake Railway) is in no image: a product import of it
    # would fail in production.
    offenders = sorted(
        str(path.relative_to(ROOT))
        for package in PRODUCT
        for path in (ROOT / package).rglob("*.py")
        if "devtools" in imported_packages(path)
    )
    assert offenders == []


def test_devtools_check_catches_a_product_import(tmp_path: Path) -> None:
    module = tmp_path / "bad.py"
    module.write_text("import devtools.pg\nfrom devtools.railway_fake import FakeRailway\n")
    assert imported_packages(module) == {"devtools"}


def copied_from_context(dockerfile: Path) -> list[str]:
    """Sources of every COPY/ADD that reads the build context (not another stage), continuations joined."""
    sources: list[str] = []
    for line in dockerfile.read_text().replace("\\\n", " ").splitlines():
        keyword, _, rest = line.strip().partition(" ")
        if keyword.upper() in {"COPY", "ADD"} and "--from=" not in rest:
            words = [word for word in rest.split() if not word.startswith("--")]
            sources += words[:-1]
    return sources


def copies_devtools(sources: list[str], ignored: set[str]) -> bool:
    # A whole-context copy takes devtools/ too unless .dockerignore leaves it out.
    whole = {".", "./", "*", "./*"}
    return any(source.strip("./").startswith("devtools") for source in sources if source not in whole) or (
        any(source in whole for source in sources) and not {"devtools", "devtools/"} & ignored
    )


def test_no_image_copies_devtools() -> None:
    ignored = set((ROOT / ".dockerignore").read_text().split())
    assert "devtools" in ignored
    dockerfiles = sorted((ROOT / "docker").glob("*.Dockerfile"))
    assert dockerfiles
    offenders = [path.name for path in dockerfiles if copies_devtools(copied_from_context(path), ignored)]
    assert offenders == []


def test_devtools_image_check_catches_a_copy(tmp_path: Path) -> None:
    dockerfile = tmp_path / "bad.Dockerfile"
    dockerfile.write_text("FROM python\nCOPY shared/ \\\n    devtools/ /src/\nCOPY --from=build /x /x\n")
    assert copied_from_context(dockerfile) == ["shared/", "devtools/"]
    assert copies_devtools(copied_from_context(dockerfile), set())
    assert copies_devtools([".", "pyproject.toml"], set())
    assert not copies_devtools([".", "pyproject.toml"], {"devtools"})
    assert not copies_devtools(["shared/", "pool/"], set())


# -- the platform contract is neutral ---------------------------------------------------------

PLATFORMS_DIR = ROOT / "services" / "platforms"
# The contract and the registry; every other entry of services/platforms/ is a provider.
# Modules of services/platforms/ that are no provider: the contract, the registry, placement, its route.
NOT_PROVIDERS = {"__init__", "base", "registry", "placement", "router", "__pycache__"}
REGISTRY = PLATFORMS_DIR / "registry.py"
RAILWAY_DIR = PLATFORMS_DIR / "railway"
# Where a provider's own words may be named outside its folder: only the registry's line mapping
# the name `railway` to the provider module.
RAILWAY_ALLOWED = {
    (REGISTRY, '"railway": _OnUse("services.platforms.railway.provider", "build_railway_platform"),'),
}
RAILWAY_CONCEPTS = re.compile(r"railway|project_?id|service_?id|environment_?id", re.IGNORECASE)
# Railway's DeploymentStatus words (upper case: "success" or "failed" in prose is fine).
RAILWAY_DEPLOY_WORDS = re.compile(
    r"\b(INITIALIZING|QUEUED|WAITING|NEEDS_APPROVAL|BUILDING|DEPLOYING|SUCCESS|FAILED|CRASHED|REMOVED"
    r"|REMOVING|SKIPPED|SLEEPING)\b"
)


def providers() -> set[str]:
    return {entry.stem for entry in PLATFORMS_DIR.iterdir() if entry.stem not in NOT_PROVIDERS}


def imported_modules(path: Path, located: Path) -> set[str]:
    """Every module an import in `path` names, in full (`from a.b import c` gives a.b and a.b.c),
    relative imports resolved as if the file were at `located`."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = list(located.relative_to(ROOT).with_suffix("").parts[:-1])
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            module = ".".join([*base, *([node.module] if node.module else [])])
            names.add(module)
            names.update(f"{module}.{alias.name}" for alias in node.names)
    return names


def provider_of(located: Path) -> str | None:
    """The provider a file belongs to (its module or its folder), if any."""
    if not located.is_relative_to(PLATFORMS_DIR):
        return None
    first = located.relative_to(PLATFORMS_DIR).parts[0]
    return Path(first).stem if Path(first).stem in providers() else None


def provider_imports(path: Path, located: Path | None = None) -> set[str]:
    located = located or path
    foreign = providers() - {provider_of(located)}
    return {
        module
        for module in imported_modules(path, located)
        for provider in foreign
        if module == f"services.platforms.{provider}" or module.startswith(f"services.platforms.{provider}.")
    }


def test_no_module_outside_a_provider_imports_a_provider() -> None:
    assert providers() >= {"local", "railway"}
    offenders = {
        str(path.relative_to(ROOT)): sorted(found)
        for package in PRODUCT
        for path in (ROOT / package).rglob("*.py")
        if path != REGISTRY and (found := provider_imports(path))
    }
    assert offenders == {}


def test_provider_import_check_catches_an_import(tmp_path: Path) -> None:
    module = tmp_path / "bad.py"
    module.write_text(
        "from services.platforms.railway.status import deploy_state\n"
        "from services.platforms import local\nfrom ..platforms.base import Platform\nfrom . import local\n"
    )
    assert provider_imports(module, located=ROOT / "services" / "status" / "bad.py") == {
        "services.platforms.railway.status",
        "services.platforms.railway.status.deploy_state",
        "services.platforms.local",
    }
    # Inside a provider, its own modules are fair game; another provider's are not.
    assert provider_imports(module, located=RAILWAY_DIR / "bad.py") == {"services.platforms.local"}
    assert provider_imports(module, located=PLATFORMS_DIR / "local" / "provider.py") == {
        "services.platforms.railway.status",
        "services.platforms.railway.status.deploy_state",
    }


def railway_mentions(path: Path, root: Path = ROOT) -> list[str]:
    try:
        lines = path.read_text().splitlines()
    except UnicodeDecodeError:
        return []
    return [
        f"{path.relative_to(root)}:{number}: {line.strip()}"
        for number, line in enumerate(lines, 1)
        if (RAILWAY_CONCEPTS.search(line) or RAILWAY_DEPLOY_WORDS.search(line))
        and (path, line.strip()) not in RAILWAY_ALLOWED
    ]


def test_nothing_above_the_railway_provider_names_a_railway_concept() -> None:
    # Railway ids and deploy words stay in services/platforms/railway/ (DESIGN.md §9): the rest
    # speaks the neutral deploy state and keeps platform refs opaque.
    offenders = [
        mention
        for package in ("pool", "shared", "services")
        for path in sorted((ROOT / package).rglob("*"))
        if path.is_file() and "__pycache__" not in path.parts and not path.is_relative_to(RAILWAY_DIR)
        for mention in railway_mentions(path)
    ]
    assert offenders == []


def test_railway_concept_check_catches_ids_and_words(tmp_path: Path) -> None:
    module = tmp_path / "bad.py"
    module.write_text(
        'ok = "the deploy failed"\nref = row.provider_service_id\nif status == "SUCCESS":\n'
        "    environmentId = 1\n# talk to Railway\n"
    )
    assert railway_mentions(module, root=tmp_path) == [
        "bad.py:2: ref = row.provider_service_id",
        'bad.py:3: if status == "SUCCESS":',
        "bad.py:4: environmentId = 1",
        "bad.py:5: # talk to Railway",
    ]
