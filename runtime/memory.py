"""The agent's memory: what it keeps beyond one conversation, and what a clone carries (DESIGN.md §4, §11).

The reference runtime has no model, so its memory is notes: `POST /convos/memory` adds one and
`GET /convos/memory` reads them back (how a test proves a clone has its source's state). They live
in `<data dir>/memory/`, the one directory `/convos/export` packs and `/convos/import` restores.
The binding (`binding.json`, the conversation) stays out of it: a clone gets a conversation of its own.

The archive is a tar.gz of that directory. One cap (RUNTIME_STATE_MAX_BYTES) bounds the memory's
files unpacked and the archive itself, on both sides: export refuses to pack more, import refuses
to unpack more (read from the tar headers before a byte is written, so a small archive that would
unpack to gigabytes is refused too). Extraction uses tarfile's `data` filter: regular files and
directories only, no absolute or `..` names (refused here, and again by the filter).
"""

from __future__ import annotations

import io
import os
import shutil
import tarfile
import tempfile
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath

from pydantic import BaseModel, TypeAdapter, ValidationError

from runtime.errors import BadRequest, TooLarge

NOTES_FILE = "notes.json"


class Note(BaseModel):
    text: str
    at: datetime


_NOTES = TypeAdapter(list[Note])


class MemoryStore:
    def __init__(self, root: Path, *, max_bytes: int) -> None:
        self.root = root
        self.max_bytes = max_bytes
        self._notes = self._load()

    def notes(self) -> list[Note]:
        return list(self._notes)

    def add(self, text: str) -> int:
        """Remember one note; how many are kept. 413 when memory would pass the cap."""
        notes = [*self._notes, Note(text=text, at=datetime.now(UTC))]
        encoded = _NOTES.dump_json(notes, indent=2)
        others = self.size() - self._file_size(self.root / NOTES_FILE)
        if others + len(encoded) > self.max_bytes:
            raise TooLarge(f"memory would exceed {self.max_bytes} bytes")
        _write_atomic(self.root / NOTES_FILE, encoded)
        self._notes = notes
        return len(notes)

    def empty(self) -> bool:
        return not any(path.is_file() for path in self._files())

    def size(self) -> int:
        return sum(self._file_size(path) for path in self._files())

    def clear(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)
        self._notes = []

    def pack(self) -> bytes:
        """The memory as a tar.gz (empty memory packs to an empty archive)."""
        if self.size() > self.max_bytes:
            raise TooLarge(f"memory is larger than {self.max_bytes} bytes")
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
            for path in sorted(self._files()):
                if path.is_file() and not path.is_symlink():
                    tar.add(path, arcname=path.relative_to(self.root).as_posix(), recursive=False)
        archive = buffer.getvalue()
        if len(archive) > self.max_bytes:
            raise TooLarge(f"memory archive is larger than {self.max_bytes} bytes")
        return archive

    def restore(self, archive: bytes) -> None:
        """Replace the memory with the archive's: unpacked beside it, checked, then renamed into
        place, so a refused archive leaves nothing behind."""
        self.root.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(dir=self.root.parent, prefix=".memory-import-"))
        try:
            _unpack(archive, staging, self.max_bytes)
            notes = _read_notes(staging / NOTES_FILE)
            shutil.rmtree(self.root, ignore_errors=True)
            os.replace(staging, self.root)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        self._notes = notes

    def _files(self) -> list[Path]:
        return [path for path in self.root.rglob("*") if not path.is_dir()] if self.root.exists() else []

    @staticmethod
    def _file_size(path: Path) -> int:
        try:
            return path.stat().st_size
        except FileNotFoundError:
            return 0

    def _load(self) -> list[Note]:
        try:
            return _read_notes(self.root / NOTES_FILE)
        except BadRequest:
            # A runtime must start even if its memory file is damaged; the damage shows as empty notes.
            return []


def _unpack(archive: bytes, into: Path, max_bytes: int) -> None:
    try:
        with tarfile.open(fileobj=io.BytesIO(archive), mode="r:gz") as tar:
            members: list[tarfile.TarInfo] = []
            unpacked = 0
            for member in tar:
                if not (member.isfile() or member.isdir()):
                    raise BadRequest(f"archive member {member.name!r} is not a regular file or directory")
                parts = PurePosixPath(member.name).parts
                if member.name.startswith("/") or ".." in parts:
                    raise BadRequest(f"archive member {member.name!r} points outside the memory directory")
                unpacked += member.size
                if unpacked > max_bytes:
                    raise TooLarge(f"archive unpacks to more than {max_bytes} bytes")
                members.append(member)
            tar.extractall(into, members=members, filter="data")
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise BadRequest(f"archive cannot be unpacked: {type(exc).__name__}") from exc


def _read_notes(path: Path) -> list[Note]:
    try:
        return _NOTES.validate_json(path.read_bytes())
    except FileNotFoundError:
        return []
    except (ValidationError, ValueError) as exc:
        raise BadRequest(f"{NOTES_FILE} is not a list of notes") from exc


def _write_atomic(path: Path, data: bytes) -> None:
    # Write beside the target and rename over it, so a crash mid-write leaves the old file or the new one.
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".notes-", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
