"""All three vendor fakes behind one respx router, configured through the plugins' own env vars,
so the real registry builds the real plugins against them."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
import respx

from devtools.vendor_fakes.agentmail import FakeAgentMail
from devtools.vendor_fakes.openrouter import FakeOpenRouter
from devtools.vendor_fakes.telnyx import FakeTelnyx

PROFILE = "4001767e-ce0f-4cae-9d5f-0d5e636e7809"


@dataclass
class Vendors:
    openrouter: FakeOpenRouter = field(default_factory=FakeOpenRouter)
    agentmail: FakeAgentMail = field(default_factory=FakeAgentMail)
    telnyx: FakeTelnyx = field(default_factory=FakeTelnyx)

    def leftovers(self) -> dict[str, int]:
        """What still exists at each provider."""
        return {
            "openrouter": len(self.openrouter.keys),
            "agentmail": len(self.agentmail.inboxes),
            "telnyx": len(self.telnyx.numbers),
        }

    def counts(self) -> dict[str, tuple[int, int]]:
        """(creates, deletes) each provider received."""
        return {
            "openrouter": (self.openrouter.created, self.openrouter.deleted),
            "agentmail": (self.agentmail.created, self.agentmail.deleted),
            "telnyx": (self.telnyx.created, self.telnyx.deleted),
        }

    def secrets(self) -> list[str]:
        return list(self.openrouter.secrets.values())


@contextlib.contextmanager
def vendor_fakes(monkeypatch: pytest.MonkeyPatch, *, pooled: bool = True) -> Iterator[Vendors]:
    vendors = Vendors()
    env = {
        "OPENROUTER_MANAGEMENT_KEY": vendors.openrouter.management_key,
        "AGENTMAIL_API_KEY": vendors.agentmail.api_key,
        "TELNYX_API_KEY": vendors.telnyx.api_key,
        "TELNYX_MESSAGING_PROFILE_ID": PROFILE,
        "TELNYX_ORDER_POLL_SECONDS": "0.01",
        "TELNYX_NOT_FOUND_BACKOFF_SECONDS": "0.01",
        "POOLED_TOOLS": '["bankr"]' if pooled else "[]",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with respx.mock(assert_all_called=False, assert_all_mocked=False) as router:
        vendors.openrouter.install(router)
        vendors.agentmail.install(router)
        vendors.telnyx.install(router)
        router.route().pass_through()
        yield vendors
