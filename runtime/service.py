import asyncio
import base64
import binascii
import hashlib
import logging
import secrets
import time
from collections import deque
from typing import Any

from runtime.config import Settings
from runtime.errors import BadRequest, Conflict, ImportFailed, NotReady, ProvisionFailed, TooLarge
from runtime.memory import MemoryStore
from runtime.schemas import (
    ConvosStatus,
    Imported,
    InstructionsResult,
    InstructionsUpdate,
    ProvisionRequest,
    ProvisionResult,
    StateArchive,
)
from runtime.state import Binding, BindingStore

log = logging.getLogger("runtime")


class Agent:
    """A stand-in for the chat agent: there is no chat network, so conversations are just minted ids."""

    def __init__(self, settings: Settings, store: BindingStore, memory: MemoryStore) -> None:
        self.settings = settings
        self.store = store
        self.memory = memory
        self._started = time.monotonic()
        # Held across a whole provision, delay included, so two concurrent provisions cannot both bind.
        self._lock = asyncio.Lock()
        # Inbound mail/SMS notices (POST /convos/notify); a stand-in agent only keeps the latest ones.
        self.notices: deque[dict[str, Any]] = deque(maxlen=100)

    def notice(self, notice: dict[str, Any]) -> int:
        """Keep a notice once (a redelivered event id is not kept twice); how many are kept."""
        event_id = notice.get("eventId")
        if event_id is None or all(kept.get("eventId") != event_id for kept in self.notices):
            self.notices.append(notice)
            log.info("runtime.notice kind=%s", notice.get("kind"))
        return len(self.notices)

    def ready(self) -> bool:
        if self.settings.runtime_never_ready:
            return False
        return time.monotonic() - self._started >= self.settings.runtime_startup_delay

    async def provision(self, request: ProvisionRequest) -> ProvisionResult:
        if not self.ready():
            raise NotReady("runtime is still starting")
        async with self._lock:
            if self.store.binding is not None:
                raise Conflict(f"already bound to {self.store.binding.conversation_id}")
            if self.settings.runtime_provision_delay:
                await asyncio.sleep(self.settings.runtime_provision_delay)
            if self.settings.runtime_fail_provision:
                log.warning("runtime.provision.failed reason=RUNTIME_FAIL_PROVISION")
                raise ProvisionFailed("provisioning failed (RUNTIME_FAIL_PROVISION)")
            binding = self._bind(request)
            self.store.save(binding)
        result = _result(binding)
        log.info(
            "runtime.provisioned conversation_id=%s status=%s agent_name=%r",
            binding.conversation_id,
            result.status,
            binding.agent_name,
        )
        return result

    def status(self) -> ConvosStatus:
        binding = self.store.binding
        # Clean means nothing of any agent is left: no conversation and no memory (an import's too).
        if binding is None:
            return ConvosStatus(conversation_id=None, inbox_id=None, pending=False, clean=self.memory.empty())
        return ConvosStatus(
            conversation_id=binding.conversation_id,
            inbox_id=binding.inbox_id,
            pending=binding.pending,
            clean=False,
        )

    async def set_instructions(self, update: InstructionsUpdate) -> InstructionsResult:
        """Replace the bound agent's instructions (and name, if given) in place: the conversation
        and everything else about the agent stay as they are."""
        async with self._lock:
            binding = self.store.binding
            if binding is None:
                raise Conflict("not bound to a conversation: there is no agent to instruct")
            changes: dict[str, Any] = {"instructions": update.instructions}
            if update.agent_name is not None:
                changes["agent_name"] = update.agent_name
            binding = binding.model_copy(update=changes)
            self.store.save(binding)
        log.info("runtime.instructions_set conversation_id=%s", binding.conversation_id)
        return InstructionsResult(conversation_id=binding.conversation_id, agent_name=binding.agent_name)

    async def reset(self) -> None:
        async with self._lock:
            previous = self.store.binding
            self.store.clear()
            self.memory.clear()
        log.info("runtime.reset conversation_id=%s", previous.conversation_id if previous else None)

    def export_state(self) -> StateArchive:
        if not self.ready():
            raise NotReady("runtime is still starting")
        archive = self.memory.pack()
        digest = hashlib.sha256(archive).hexdigest()
        log.info("runtime.exported size=%s sha256=%s", len(archive), digest)
        return StateArchive(size=len(archive), sha256=digest, archive=base64.b64encode(archive).decode())

    async def import_state(self, body: StateArchive) -> Imported:
        """Restore an exported state into this instance, which must be clean (no conversation, no memory)."""
        if not self.ready():
            raise NotReady("runtime is still starting")
        archive = _checked_archive(body, self.settings.runtime_state_max_bytes)
        async with self._lock:
            if self.store.binding is not None or not self.memory.empty():
                raise Conflict("import needs a clean instance: this one holds a conversation or a memory")
            self.memory.restore(archive)
            if self.settings.runtime_fail_import:
                # After the restore, so the failure leaves state behind for the recovery to clean.
                log.warning("runtime.import.failed reason=RUNTIME_FAIL_IMPORT")
                raise ImportFailed("import failed (RUNTIME_FAIL_IMPORT)")
        log.info("runtime.imported size=%s sha256=%s", body.size, body.sha256)
        return Imported(size=body.size, sha256=body.sha256, notes=len(self.memory.notes()))

    def _bind(self, request: ProvisionRequest) -> Binding:
        if request.join_url is None:
            conversation_id = f"conv_{secrets.token_hex(8)}"
            invite_url = f"{self.settings.runtime_invite_base}{conversation_id}"
        else:
            conversation_id = self._conversation_for(request.join_url)
            invite_url = request.join_url
        return Binding(
            conversation_id=conversation_id,
            inbox_id=f"inbox_{secrets.token_hex(8)}",
            invite_url=invite_url,
            agent_name=request.agent_name,
            instructions=request.instructions,
            join_url=request.join_url,
            pending=request.join_url is not None and self.settings.runtime_join_pending,
        )

    def _conversation_for(self, join_url: str) -> str:
        # Our own invite URLs end in the conversation id; any other URL maps to a stable id, so that
        # two instances joining the same invite agree on the conversation.
        base = self.settings.runtime_invite_base
        suffix = join_url.removeprefix(base) if join_url.startswith(base) else ""
        if suffix and suffix.replace("_", "").isalnum():
            return suffix
        return f"conv_{hashlib.sha256(join_url.encode()).hexdigest()[:16]}"


def _checked_archive(body: StateArchive, max_bytes: int) -> bytes:
    """The archive's bytes, once its size and checksum are what the body says."""
    if body.size > max_bytes:
        raise TooLarge(f"archive is larger than {max_bytes} bytes")
    try:
        archive = base64.b64decode(body.archive, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise BadRequest("archive is not valid base64") from exc
    if len(archive) > max_bytes:
        raise TooLarge(f"archive is larger than {max_bytes} bytes")
    if len(archive) != body.size:
        raise BadRequest(f"archive is {len(archive)} bytes, not the {body.size} announced")
    if hashlib.sha256(archive).hexdigest() != body.sha256:
        raise BadRequest("archive sha256 does not match: it was damaged or altered")
    return archive


def _result(binding: Binding) -> ProvisionResult:
    if binding.join_url is None:
        return ProvisionResult(
            conversation_id=binding.conversation_id,
            invite_url=binding.invite_url,
            joined=False,
            status="created",
        )
    return ProvisionResult(
        conversation_id=binding.conversation_id,
        invite_url=binding.invite_url,
        joined=not binding.pending,
        status="pending_acceptance" if binding.pending else "joined",
    )
