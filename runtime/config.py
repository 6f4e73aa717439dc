from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

Capability = Literal["export", "import", "instructions"]
CAPABILITIES: tuple[Capability, ...] = ("export", "import", "instructions")


class Settings(BaseSettings):
    # No env_prefix: these names are the instance contract (DESIGN.md §4), shared with the production image.
    model_config = SettingsConfigDict(extra="ignore")

    port: int = 8080
    host: str = "127.0.0.1"
    # The id becomes a directory name, so it must not be able to climb out of the data root.
    instance_id: str = Field("local", pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    gateway_token: SecretStr
    pool_url: str | None = None
    services_url: str | None = None
    instance_services_token: SecretStr | None = None
    runtime_data_dir: Path | None = None
    runtime_invite_base: str = "https://convos.local/invite/"
    runtime_version: str = "0.1.0"
    # What /pool/health announces beyond the core contract (DESIGN.md §4); `[]` plays a runtime
    # that cannot be cloned or synced.
    runtime_capabilities: list[Capability] = Field(
        default_factory=lambda: list(CAPABILITIES),
        description="Optional contract routes this runtime serves and announces in `/pool/health`, as JSON "
        '(`["export", "import", "instructions"]`); `[]` plays a runtime that cannot be cloned or synced.',
    )
    runtime_state_max_bytes: int = Field(
        8 * 1024 * 1024,
        ge=1024,
        description="Largest agent state `/convos/export` hands out and `/convos/import` accepts, in bytes: "
        "both the memory's files unpacked and the tar.gz archive; past it 413.",
    )

    # Test knobs: they let the pool's tests play out slow, broken and crashing instances.
    runtime_startup_delay: float = Field(0.0, ge=0)
    runtime_never_ready: bool = False
    runtime_crash_after: float | None = Field(None, ge=0)
    runtime_fail_provision: bool = False
    runtime_provision_delay: float = Field(0.0, ge=0)
    runtime_join_pending: bool = False
    runtime_fail_import: bool = False

    @field_validator("gateway_token")
    @classmethod
    def _token_not_empty(cls, value: SecretStr) -> SecretStr:
        # An empty token would make every bearer header with an empty value a valid credential.
        if not value.get_secret_value():
            raise ValueError("GATEWAY_TOKEN must not be empty")
        return value

    @property
    def data_dir(self) -> Path:
        return self.runtime_data_dir or Path(".data") / "runtime" / self.instance_id
