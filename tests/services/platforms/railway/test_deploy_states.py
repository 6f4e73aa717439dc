"""Railway's deployment words become the neutral deploy state inside the provider (DESIGN.md §5, §9)."""

from __future__ import annotations

import pytest

from services.platforms.railway.status import DEPLOY_STATES, deploy_state
from shared.schemas import DEPLOY_STATES as NEUTRAL

# Railway's DeploymentStatus enum, as the published schema lists it.
WORDS = {
    "INITIALIZING": "pending",
    "QUEUED": "pending",
    "WAITING": "pending",
    "NEEDS_APPROVAL": "pending",
    "BUILDING": "deploying",
    "DEPLOYING": "deploying",
    "SUCCESS": "running",
    "SLEEPING": "sleeping",
    "FAILED": "failed",
    "CRASHED": "crashed",
    "REMOVED": "removed",
    "REMOVING": "removed",
    "SKIPPED": "removed",
}


@pytest.mark.parametrize(("word", "state"), sorted(WORDS.items()))
def test_each_railway_word_maps_onto_its_neutral_state(word: str, state: str) -> None:
    assert deploy_state(word) == state


def test_every_mapped_state_is_a_neutral_one() -> None:
    assert set(DEPLOY_STATES) == set(WORDS)
    assert set(DEPLOY_STATES.values()) <= set(NEUTRAL)


def test_no_deployment_stays_none_and_a_new_word_is_unknown() -> None:
    assert deploy_state(None) is None
    assert deploy_state("SOMETHING_NEW") == "unknown"
