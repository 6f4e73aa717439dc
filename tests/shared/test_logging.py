"""Redaction of secrets by their shape, whatever field or message they slip into."""

from __future__ import annotations

import pytest

from shared.auth import MINTED_PREFIXES, mint_token
from shared.logging import REDACTED, format_event, redact


@pytest.mark.parametrize("prefix", MINTED_PREFIXES)
def test_every_token_we_mint_is_redacted_in_a_message_and_a_field(prefix: str) -> None:
    token = mint_token(prefix)

    line = format_event("instance.env", {"note": f"env INSTANCE={token}, next", "value": token})

    assert token not in line
    assert token[len(prefix) + 1 :] not in line
    assert line == f'instance.env note="env INSTANCE={REDACTED}, next" value={REDACTED}'


def test_an_instance_services_token_is_redacted() -> None:
    """issue 11, finding 12: `svc_it_…` tokens reached the logs in clear."""
    assert redact("token svc_it_AbC-dEf_0123456789xyz sent") == f"token {REDACTED} sent"


def test_a_token_prefix_nobody_registered_cannot_be_minted() -> None:
    with pytest.raises(ValueError, match="MINTED_PREFIXES"):
        mint_token("new_kind")
