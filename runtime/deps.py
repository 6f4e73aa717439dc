import hmac
from typing import Annotated

from fastapi import Depends, Request

from runtime.errors import Unauthorized
from runtime.service import Agent


def get_agent(request: Request) -> Agent:
    agent: Agent = request.app.state.agent
    return agent


AgentDep = Annotated[Agent, Depends(get_agent)]


async def require_token(request: Request, agent: AgentDep) -> None:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise Unauthorized("missing bearer token")
    expected = agent.settings.gateway_token.get_secret_value()
    if not hmac.compare_digest(token.strip().encode(), expected.encode()):
        raise Unauthorized("invalid bearer token")
