"""What the lifespan builds, and the dependencies that hand it to routes."""

from __future__ import annotations

from typing import Annotated, TypedDict

import httpx
from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from services.config import Settings
from services.instances.worker import CreateWorkers
from services.platforms.registry import Platforms
from services.tools.base import ToolProvider
from shared.auth import SecretBox


class State(TypedDict):
    settings: Settings
    engine: AsyncEngine
    sessionmaker: async_sessionmaker[AsyncSession]
    http_client: httpx.AsyncClient
    platforms: Platforms
    tools: dict[str, ToolProvider]
    box: SecretBox
    create_workers: CreateWorkers


def get_settings(request: Request) -> Settings:
    settings: Settings = request.state.settings
    return settings


def get_sessionmaker(request: Request) -> async_sessionmaker[AsyncSession]:
    sessionmaker: async_sessionmaker[AsyncSession] = request.state.sessionmaker
    return sessionmaker


def get_http_client(request: Request) -> httpx.AsyncClient:
    client: httpx.AsyncClient = request.state.http_client
    return client


def get_platforms(request: Request) -> Platforms:
    platforms: Platforms = request.state.platforms
    return platforms


def get_tools(request: Request) -> dict[str, ToolProvider]:
    tools: dict[str, ToolProvider] = request.state.tools
    return tools


def get_create_workers(request: Request) -> CreateWorkers:
    workers: CreateWorkers = request.state.create_workers
    return workers


def get_box(request: Request) -> SecretBox:
    box: SecretBox = request.state.box
    return box


SettingsDep = Annotated[Settings, Depends(get_settings)]
# Flows that call the outside world own short transactions of their own (write-ahead), so they
# take the sessionmaker rather than the request's session.
SessionmakerDep = Annotated[async_sessionmaker[AsyncSession], Depends(get_sessionmaker)]
HttpClientDep = Annotated[httpx.AsyncClient, Depends(get_http_client)]
PlatformsDep = Annotated[Platforms, Depends(get_platforms)]
ToolsDep = Annotated[dict[str, ToolProvider], Depends(get_tools)]
BoxDep = Annotated[SecretBox, Depends(get_box)]
CreateWorkersDep = Annotated[CreateWorkers, Depends(get_create_workers)]
