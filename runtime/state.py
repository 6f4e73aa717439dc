import json
import os
import tempfile
from pathlib import Path

from pydantic import BaseModel


class Binding(BaseModel):
    conversation_id: str
    inbox_id: str
    invite_url: str
    agent_name: str
    instructions: str
    join_url: str | None = None
    pending: bool = False


class BindingStore:
    """The one conversation this instance is bound to, kept on disk so a restart does not forget it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.binding = self._load()

    def _load(self) -> Binding | None:
        try:
            raw = self.path.read_text()
        except FileNotFoundError:
            return None
        return Binding.model_validate(json.loads(raw))

    def save(self, binding: Binding) -> None:
        self._write(binding.model_dump_json(indent=2))
        self.binding = binding

    def clear(self) -> None:
        self.path.unlink(missing_ok=True)
        self.binding = None

    def _write(self, text: str) -> None:
        # Write beside the target and rename over it, so a crash mid-write leaves the old file or the new one.
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".binding-", suffix=".tmp")
        try:
            with os.fdopen(fd, "w") as f:
                f.write(text)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
