"""Services' status batch (`POST /status/batch`) as the pool reads it: the wire form is
`shared.schemas.StatusBatch`, parsed here into slotted dataclasses that declare the fields the
tick reads, unknown ones ignored.

A tick parses one entry per instance it observes (1,000 at 10,000 idle with the defaults), and
what it parses is the tick's peak memory: as the wire's two pydantic models per entry (each with
a `__dict__` and a set of the fields set) the entries took ~2.2 KB each, in this form ~0.3 KB.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel
from pydantic.dataclasses import dataclass

from shared.schemas import PlatformOrphan

ANSWER = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore")


@dataclass(slots=True, config=ANSWER)
class Health:
    """Services' `/pool/health` probe of the instance (`shared.schemas.HealthProbe`)."""

    ok: bool
    ready: bool | None = None


@dataclass(slots=True, config=ANSWER)
class Seen:
    """One instance as services observed it (`shared.schemas.InstanceObservation`)."""

    instance_id: str
    url: str | None
    deploy_status: str | None  # a DeployState, read as text
    health: Health | None
    created_at: datetime
    error: str | None = None
    phase: str | None = None  # a CreatePhase, read as text
    platform: str | None = None
    platform_ok: bool | None = None


class Batch(BaseModel):
    """`shared.schemas.StatusBatch`, its entries as `Seen`."""

    model_config = ANSWER

    observed_at: datetime
    instances: dict[str, Seen]
    unprobed: list[str] = Field(default_factory=list)
    orphans: list[PlatformOrphan] = Field(default_factory=list)
    platform_ok: bool = True
    platform_error: str | None = None
    fleet: list[str] | None = None
    platform_calls: int | None = None
