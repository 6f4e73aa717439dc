"""The dashboard's template forms: posted fields read into the API's own bodies (`TemplateCreate`,
`TemplateUpdate`, `TemplateFork`), and a template read back into the fields that prefill a form.

A form post is checked by the same models as `/api/templates`, so the two cannot disagree. What is
wrong comes back as one sentence per problem naming the field, never the value typed (a refused
value may be a secret the operator pasted by mistake).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from pool.templates.schemas import (
    DEFAULT_OWNER,
    SECRET_NAME,
    SECRET_VALUE,
    Template,
    TemplateCreate,
    TemplateFork,
    TemplateSpec,
    TemplateUpdate,
    TemplateVersion,
)
from shared.errors import BadRequest

# A version's fields, in the order the API declares them.
SPEC_FIELDS = tuple(TemplateSpec.model_fields)
# A form field longer than any model allows is refused before parsing (instructions are the longest).
MAX_FIELD_CHARS = 60_000
# The form's names of the fields, as an operator reads them in a message.
LABELS = {
    "slug": "Slug",
    "name": "Name",
    "owner": "Owner",
    "visibility": "Visibility",
    "image": "Image",
    "tools": "Tools",
    "agentName": "Agent name",
    "instructions": "Instructions",
    "model": "Model",
    "env": "Env",
    "resources": "Resources",
    "poolPolicy": "Idle bounds",
    "minIdle": "Min idle",
    "maxIdle": "Max idle",
    "rollout": "Rollout",
    "floor": "Floor",
    "count": "Canary count",
    "windowSeconds": "Canary window",
}
STRATEGIES = ("on-replenish", "recreate", "canary")


def text_fields(form: Mapping[str, Any]) -> dict[str, str]:
    """The posted text fields, newlines as `\\n` (browsers send a textarea's as CRLF, which would
    make an unchanged field look changed)."""
    fields: dict[str, str] = {}
    for name, value in form.items():
        if not isinstance(value, str):
            continue
        if len(value) > MAX_FIELD_CHARS:
            raise BadRequest(f"{LABELS.get(name, name)} is longer than {MAX_FIELD_CHARS} characters")
        fields[name] = value.replace("\r\n", "\n").replace("\r", "\n")
    return fields


def _optional(fields: Mapping[str, str], name: str) -> str | None:
    value = fields.get(name, "").strip()
    return value or None


def _number(fields: Mapping[str, str], name: str, label: str) -> int | None:
    value = fields.get(name, "").strip()
    if not value:
        return None
    try:
        return int(value)
    except ValueError:
        raise BadRequest(f"{label} must be a whole number") from None


def parse_env(text: str) -> dict[str, str]:
    """`NAME=value` lines; blank lines are skipped. The value is everything after the first `=`."""
    env: dict[str, str] = {}
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        name, equals, value = line.partition("=")
        name = name.strip()
        if not equals or not name:
            raise BadRequest(f"env line {number} must be NAME=value")
        if name in env:
            raise BadRequest(f"env {name} is given twice")
        env[name] = value
    return env


def parse_resources(text: str) -> dict[str, Any]:
    if not text.strip():
        return {}
    try:
        value = json.loads(text)
    except ValueError:
        raise BadRequest('resources must be a JSON object, like {"cpu": 1}') from None
    if not isinstance(value, dict):
        raise BadRequest('resources must be a JSON object, like {"cpu": 1}')
    return value


def _rollout(fields: Mapping[str, str]) -> dict[str, Any]:
    strategy = fields.get("rollout_strategy", "on-replenish")
    if strategy not in STRATEGIES:
        raise BadRequest(f"rollout must be one of {', '.join(STRATEGIES)}")
    rollout: dict[str, Any] = {"strategy": strategy}
    # Only the chosen strategy's own fields: the others stay hidden in the form but are posted.
    knobs = {"recreate": (("floor", "rollout_floor"),), "canary": (("count", "rollout_count"),
             ("windowSeconds", "rollout_window_seconds"))}.get(strategy, ())  # fmt: skip
    for key, name in knobs:
        number = _number(fields, name, LABELS[key])
        if number is not None:
            rollout[key] = number
    return rollout


def spec_fields(fields: Mapping[str, str]) -> dict[str, Any]:
    """A version's fields as the API takes them; a blank field is "the deployment's" (None)."""
    tools_text = fields.get("tools", "").replace(",", " ").split()
    return {
        "image": _optional(fields, "image"),
        "tools": tools_text or None,
        "agentName": _optional(fields, "agent_name"),
        "instructions": fields.get("instructions") or None,
        "model": _optional(fields, "model"),
        "env": parse_env(fields.get("env", "")),
        "resources": parse_resources(fields.get("resources", "")),
        "poolPolicy": {
            "minIdle": _number(fields, "min_idle", LABELS["minIdle"]),
            "maxIdle": _number(fields, "max_idle", LABELS["maxIdle"]),
        },
        "rollout": _rollout(fields),
    }


def problems(exc: ValidationError) -> str:
    """The fields and what is wrong with them; pydantic's own text would echo the input back."""
    said = []
    for error in exc.errors():
        where = [LABELS.get(str(part), str(part)) for part in error["loc"] if str(part) not in STRATEGIES]
        message = error["msg"].removeprefix("Value error, ")
        said.append(f"{' '.join(where) or 'form'}: {message}")
    return "; ".join(dict.fromkeys(said))


def create_body(fields: Mapping[str, str]) -> TemplateCreate:
    body = {
        "slug": fields.get("slug", "").strip(),
        "name": fields.get("name", ""),
        "owner": fields.get("owner", "").strip() or DEFAULT_OWNER,
        "visibility": fields.get("visibility", "private"),
        **spec_fields(fields),
    }
    try:
        return TemplateCreate.model_validate(body)
    except ValidationError as exc:
        raise BadRequest(problems(exc)) from None


def update_body(template: Template, fields: Mapping[str, str]) -> TemplateUpdate:
    """Only what the form changed: an unchanged form makes no version, and a change of name or
    visibility alone changes the template in place."""
    try:
        spec = TemplateSpec.model_validate(spec_fields(fields))
        name_and_visibility = TemplateUpdate.model_validate(
            {"name": fields.get("name", ""), "visibility": fields.get("visibility", template.visibility)}
        )
    except ValidationError as exc:
        raise BadRequest(problems(exc)) from None
    current = TemplateSpec.model_validate(template.current.model_dump(include=set(SPEC_FIELDS)))
    changed: dict[str, Any] = {
        name: getattr(spec, name) for name in SPEC_FIELDS if getattr(spec, name) != getattr(current, name)
    }
    for name in ("name", "visibility"):
        value = getattr(name_and_visibility, name)
        if value != getattr(template, name):
            changed[name] = value
    if not changed:
        raise BadRequest("nothing changed: edit a field to make a new version")
    return TemplateUpdate.model_validate(changed)


def fork_body(fields: Mapping[str, str]) -> TemplateFork:
    try:
        return TemplateFork.model_validate(
            {
                "owner": fields.get("owner", "").strip() or DEFAULT_OWNER,
                "slug": _optional(fields, "slug"),
                "name": _optional(fields, "name"),
            }
        )
    except ValidationError as exc:
        raise BadRequest(problems(exc)) from None


def redisplayed(fields: Mapping[str, str]) -> dict[str, str]:
    """What a refused form shows again: what was typed, but not an env value that looks like a
    secret (the API refuses it without echoing it; the form must not send it back either)."""
    lines = []
    for line in fields.get("env", "").split("\n"):
        name, equals, value = line.partition("=")
        secret = equals and (SECRET_NAME.search(name.strip()) or SECRET_VALUE.match(value))
        lines.append(f"{name}=" if secret else line)
    return {**fields, "env": "\n".join(lines)}


def form_values(template: Template | None = None, version: TemplateVersion | None = None) -> dict[str, Any]:
    """The fields that prefill a form: a new template's defaults, or the template as it is now."""
    if template is None or version is None:
        return {"owner": DEFAULT_OWNER, "visibility": "private", "rollout_strategy": "on-replenish"}
    rollout = version.rollout.model_dump(by_alias=True)
    return {
        "slug": template.slug,
        "name": template.name,
        "owner": template.owner,
        "visibility": template.visibility,
        "image": version.image or "",
        "tools": ", ".join(version.tools) if version.tools is not None else "",
        "agent_name": version.agent_name or "",
        "instructions": version.instructions or "",
        "model": version.model or "",
        "env": "".join(f"{name}={value}\n" for name, value in version.env.items()),
        "resources": json.dumps(version.resources) if version.resources else "",
        "min_idle": _blank(version.pool_policy.min_idle),
        "max_idle": _blank(version.pool_policy.max_idle),
        "rollout_strategy": rollout["strategy"],
        "rollout_floor": _blank(rollout.get("floor")),
        "rollout_count": _blank(rollout.get("count")),
        "rollout_window_seconds": _blank(rollout.get("windowSeconds")),
    }


def _blank(value: int | None) -> str:
    return "" if value is None else str(value)
