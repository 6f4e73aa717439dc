"""Print the project's runtime dependencies from pyproject.toml, one requirement a line, for an image's
`pip install -r`. pyproject.toml stays the one list of versions; each image takes only what it needs.

    python requirements.py [--pyproject PATH] [--only NAME ...] [--exclude NAME ...]

A name that is not a dependency is an error, so an image cannot silently drift from pyproject.toml.
"""

from __future__ import annotations

import argparse
import re
import sys
import tomllib
from pathlib import Path


def dependency_name(requirement: str) -> str:
    name = re.split(r"[\s\[<>=!~;@]", requirement.strip(), maxsplit=1)[0]
    return re.sub(r"[-_.]+", "-", name).lower()


def select(dependencies: list[str], only: list[str], exclude: list[str]) -> list[str]:
    by_name = {dependency_name(dep): dep for dep in dependencies}
    asked = [dependency_name(name) for name in [*only, *exclude]]
    unknown = sorted(set(asked) - set(by_name))
    if unknown:
        raise ValueError(f"not dependencies in pyproject.toml: {', '.join(unknown)}")
    keep = {dependency_name(name) for name in only} or set(by_name)
    keep -= {dependency_name(name) for name in exclude}
    return [dep for name, dep in by_name.items() if name in keep]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--pyproject", type=Path, default=Path("pyproject.toml"))
    parser.add_argument("--only", nargs="+", default=[])
    parser.add_argument("--exclude", nargs="+", default=[])
    args = parser.parse_args(argv)
    project = tomllib.loads(args.pyproject.read_text())["project"]
    try:
        chosen = select(project["dependencies"], args.only, args.exclude)
    except ValueError as exc:
        print(f"requirements.py: {exc}", file=sys.stderr)
        return 2
    print("\n".join(chosen))
    return 0


if __name__ == "__main__":
    sys.exit(main())
