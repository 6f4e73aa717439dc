"""Imports flow one way: pool → shared, services → shared (and runtime's launcher); neither app
imports the other, shared imports neither, and the runtime stands alone like the production image."""

import ast
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
