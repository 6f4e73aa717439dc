from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class RailwaySettings(BaseSettings):
    """The Railway provider's own settings; vendor prefix `RAILWAY_` (DESIGN.md §8)."""

    model_config = SettingsConfigDict(env_prefix="RAILWAY_", extra="ignore")

    api_token: str = ""
    # Several tokens spread the per-token project/volume creation throttles (comma-separated).
    api_tokens: str = ""
    # account/workspace tokens go in `Authorization: Bearer`; project tokens in `Project-Access-Token`.
    token_kind: Literal["account", "workspace", "project"] = "workspace"
    api_url: str = "https://backboard.railway.com/graphql/v2"
    mode: Literal["shared", "per-instance"] = "shared"
    project_id: str = ""
    environment_id: str = ""
    workspace_id: str = ""

    # Client-side limits; Pro plan is 50/s and 10,000/hour per account (specs/railway.md §4).
    requests_per_second: float = Field(10.0, gt=0)
    requests_per_hour: int = Field(9000, gt=0)
    project_create_cooldown_seconds: float = Field(30.0, ge=0)
    volume_create_cooldown_seconds: float = Field(30.0, ge=0)
    max_attempts: int = Field(6, ge=1)
    backoff_seconds: float = Field(0.5, ge=0)
    max_retry_after_seconds: float = Field(60.0, ge=0)
    timeout_seconds: float = Field(30.0, gt=0)

    page_size: int = Field(500, ge=1, le=1000)
    # Projects per aliased status request in per-instance mode.
    status_batch_size: int = Field(50, ge=1, le=200)
    region: str = ""
    volume_mount_path: str = "/data"
    service_name_prefix: str = Field("agent-", pattern=r"^[a-z][a-z0-9-]{0,19}$")
    default_image: str = "ghcr.io/warmpool/runtime:latest"
    start_command: str = ""
    target_port: int = 8080
    # Railway domains are served over https; the fake serves plain http on loopback.
    public_scheme: Literal["https", "http"] = "https"
    # Deploy events (DESIGN.md §13): the secret in services' webhook URL, `/webhooks/railway/<secret>`.
    # Empty: no notification rule is made and every delivery is answered 404.
    webhook_secret: str = Field("", pattern=r"^(|[A-Za-z0-9_-]{24,128})$")

    @model_validator(mode="after")
    def _check(self) -> RailwaySettings:
        if not self.tokens:
            raise ValueError("RAILWAY_API_TOKEN or RAILWAY_API_TOKENS must be set")
        if self.mode == "shared" and not self.project_id:
            raise ValueError("RAILWAY_PROJECT_ID is required in shared mode")
        return self

    @property
    def tokens(self) -> list[str]:
        listed = [token.strip() for token in self.api_tokens.split(",") if token.strip()]
        if self.api_token and self.api_token not in listed:
            listed.insert(0, self.api_token)
        return listed
