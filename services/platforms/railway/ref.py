"""Railway's typed view of the opaque `PlatformRef.data` (services stores it as JSON, unread).

Keys, each present only once known: `mode` (the mode the instance was created in, kept even if
`RAILWAY_MODE` changes later), `project_id`, `environment_id`, `service_id`, `volume_id`,
`domain`, `domain_id`. Values are Railway ids and names, never secrets.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

from services.platforms.base import PlatformRef


@dataclass
class RailwayRef:
    mode: str | None = None
    project_id: str | None = None
    environment_id: str | None = None
    service_id: str | None = None
    volume_id: str | None = None
    domain: str | None = None
    domain_id: str | None = None

    @classmethod
    def of(cls, ref: PlatformRef) -> RailwayRef:
        names = {f.name for f in fields(cls)}
        return cls(**{k: str(v) for k, v in ref.data.items() if k in names and v is not None})

    def write(self, ref: PlatformRef) -> PlatformRef:
        """Record every known field in `ref.data` (other keys are left as they are); returns `ref`."""
        ref.data.update({k: v for k, v in asdict(self).items() if v is not None})
        return ref
