"""The reference runtime's memory and portable state: `/convos/memory`, `/convos/export`,
`/convos/import` (DESIGN.md §4): a round trip carries the memory and not the conversation; the
size cap, the checksum, the clean-instance rule and unsafe archives are refused with clear errors."""

from __future__ import annotations

import base64
import hashlib
import io
import tarfile
from pathlib import Path
from typing import Any

import httpx

from runtime.config import Settings
from tests.runtime.test_runtime_app import AUTH, BODY, TOKEN, make_client


def settings(path: Path, **overrides: Any) -> Settings:
    return Settings(gateway_token=TOKEN, instance_id="inst_1", runtime_data_dir=path, **overrides)


def envelope(data: bytes, **overrides: Any) -> dict[str, Any]:
    body = {
        "format": "warmpool-memory/1",
        "encoding": "tar+gzip+base64",
        "size": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
        "archive": base64.b64encode(data).decode(),
    }
    body.update(overrides)
    return body


def tar_gz(members: list[tuple[tarfile.TarInfo, bytes | None]]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return buffer.getvalue()


def file_member(name: str, data: bytes) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    return info, data


async def remember(client: httpx.AsyncClient, *texts: str) -> None:
    for text in texts:
        response = await client.post("/convos/memory", json={"text": text}, headers=AUTH)
        assert response.status_code == 200, response.text


async def notes(client: httpx.AsyncClient) -> list[str]:
    response = await client.get("/convos/memory", headers=AUTH)
    assert response.status_code == 200, response.text
    return [note["text"] for note in response.json()["notes"]]


async def test_export_then_import_carries_the_memory_but_not_the_conversation(tmp_path: Path) -> None:
    async with (
        make_client(settings(tmp_path / "a")) as source,
        make_client(settings(tmp_path / "b")) as clone,
    ):
        assert (await source.post("/pool/provision", json=BODY, headers=AUTH)).status_code == 200
        await remember(source, "the user's name is Ada", "she likes tea")
        exported = await source.post("/convos/export", headers=AUTH)
        assert exported.status_code == 200, exported.text
        body = exported.json()
        archive = base64.b64decode(body["archive"])
        assert (body["format"], body["size"], body["sha256"]) == (
            "warmpool-memory/1",
            len(archive),
            hashlib.sha256(archive).hexdigest(),
        )

        imported = await clone.post("/convos/import", json=body, headers=AUTH)
        assert imported.status_code == 200, imported.text
        assert imported.json() == {"ok": True, "size": body["size"], "sha256": body["sha256"], "notes": 2}
        assert await notes(clone) == ["the user's name is Ada", "she likes tea"]
        # Memory but no conversation: not clean, yet free to be provisioned into a new conversation.
        status = (await clone.get("/convos/status", headers=AUTH)).json()
        assert (status["conversationId"], status["clean"]) == (None, False)
        provisioned = await clone.post("/pool/provision", json=BODY, headers=AUTH)
        assert provisioned.status_code == 200, provisioned.text
        source_conversation = (await source.get("/convos/status", headers=AUTH)).json()["conversationId"]
        assert provisioned.json()["conversationId"] != source_conversation
        # The source is untouched by its export.
        assert await notes(source) == ["the user's name is Ada", "she likes tea"]


async def test_memory_survives_a_restart_and_reset_forgets_it(tmp_path: Path) -> None:
    async with make_client(settings(tmp_path)) as client:
        await remember(client, "remember me")
    async with make_client(settings(tmp_path)) as client:
        assert await notes(client) == ["remember me"]
        assert (await client.get("/convos/status", headers=AUTH)).json()["clean"] is False
        assert (await client.post("/convos/reset", headers=AUTH)).status_code == 200
        assert await notes(client) == []
        assert (await client.get("/convos/status", headers=AUTH)).json()["clean"] is True


async def test_import_needs_a_clean_instance(tmp_path: Path) -> None:
    archive = tar_gz([file_member("notes.json", b"[]")])
    async with make_client(settings(tmp_path)) as client:
        await remember(client, "mine")
        refused = await client.post("/convos/import", json=envelope(archive), headers=AUTH)
        assert refused.status_code == 409, refused.text
        assert refused.json()["error"] == "Conflict"
        assert await notes(client) == ["mine"]
        await client.post("/convos/reset", headers=AUTH)
        assert (await client.post("/pool/provision", json=BODY, headers=AUTH)).status_code == 200
        bound = await client.post("/convos/import", json=envelope(archive), headers=AUTH)
        assert bound.status_code == 409, bound.text


async def test_a_damaged_archive_is_refused_and_nothing_is_kept(tmp_path: Path) -> None:
    archive = tar_gz([file_member("notes.json", b'[{"text": "x", "at": "2026-01-01T00:00:00Z"}]')])
    async with make_client(settings(tmp_path)) as client:
        wrong_sum = envelope(archive, sha256="0" * 64)
        wrong_size = envelope(archive, size=len(archive) + 1)
        not_base64 = envelope(archive, archive="***")
        not_tar = envelope(b"not a tar archive")
        bad_notes = envelope(tar_gz([file_member("notes.json", b'{"not": "a list"}')]))
        for body in (wrong_sum, wrong_size, not_base64, not_tar, bad_notes):
            response = await client.post("/convos/import", json=body, headers=AUTH)
            assert response.status_code == 400, response.text
            assert response.json()["error"] == "BadRequest"
        missing = await client.post("/convos/import", json={"size": 1}, headers=AUTH)
        assert missing.status_code == 400
        assert (await client.get("/convos/status", headers=AUTH)).json()["clean"] is True
        assert not any(tmp_path.glob(".memory-import-*"))


async def test_unsafe_archive_members_are_refused(tmp_path: Path) -> None:
    link = tarfile.TarInfo("notes.json")
    link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
    escaping = [file_member("../escaped.txt", b"x")]
    absolute = [file_member("/tmp/absolute.txt", b"x")]
    async with make_client(settings(tmp_path / "data")) as client:
        for members in ([(link, None)], escaping, absolute):
            response = await client.post("/convos/import", json=envelope(tar_gz(members)), headers=AUTH)
            assert response.status_code == 400, response.text
        assert not (tmp_path / "escaped.txt").exists()
        assert (await client.get("/convos/status", headers=AUTH)).json()["clean"] is True


async def test_state_past_the_cap_is_refused_with_413(tmp_path: Path) -> None:
    cap = 4096
    async with make_client(settings(tmp_path / "a", runtime_state_max_bytes=cap)) as client:
        await remember(client, "x" * 1000)
        too_much = await client.post("/convos/memory", json={"text": "y" * 5000}, headers=AUTH)
        assert too_much.status_code == 413, too_much.text
    async with make_client(settings(tmp_path / "b", runtime_state_max_bytes=cap)) as clean:
        # A small archive that unpacks past the cap (zeros compress to almost nothing).
        bomb = tar_gz([file_member("notes.json", b"0" * (cap + 1))])
        assert len(bomb) < cap
        refused = await clean.post("/convos/import", json=envelope(bomb), headers=AUTH)
        assert refused.status_code == 413, refused.text
        big = envelope(b"z" * (cap + 1))
        assert (await clean.post("/convos/import", json=big, headers=AUTH)).status_code == 413
        # A body past the cap is refused before it is parsed.
        huge = b'{"archive": "' + b"A" * (cap * 2) + b'"}'
        headers = {**AUTH, "Content-Type": "application/json"}
        assert (await clean.post("/convos/import", content=huge, headers=headers)).status_code == 413
        assert (await clean.get("/convos/status", headers=AUTH)).json()["clean"] is True


async def test_without_the_capabilities_the_routes_are_absent_and_not_announced(tmp_path: Path) -> None:
    async with make_client(settings(tmp_path, runtime_capabilities=[])) as client:
        health = (await client.get("/pool/health")).json()
        assert health["capabilities"] == []
        assert (await client.post("/convos/export", headers=AUTH)).status_code == 404
        assert (await client.post("/convos/import", json={}, headers=AUTH)).status_code == 404
        # The memory itself is still there: only its portability is switched off.
        await remember(client, "still here")


async def test_state_routes_need_the_instance_token(tmp_path: Path) -> None:
    wrong = {"Authorization": "Bearer not-the-token"}
    async with make_client(settings(tmp_path)) as client:
        for method, path in (
            ("GET", "/convos/memory"),
            ("POST", "/convos/memory"),
            ("POST", "/convos/export"),
            ("POST", "/convos/import"),
        ):
            for headers in ({}, wrong):
                response = await client.request(method, path, json={"text": "x"}, headers=headers)
                assert response.status_code == 401, (method, path, response.text)


async def test_the_fail_import_knob_fails_after_restoring(tmp_path: Path) -> None:
    archive = tar_gz([file_member("notes.json", b'[{"text": "x", "at": "2026-01-01T00:00:00Z"}]')])
    async with make_client(settings(tmp_path, runtime_fail_import=True)) as client:
        response = await client.post("/convos/import", json=envelope(archive), headers=AUTH)
        assert response.status_code == 500
        assert response.json()["error"] == "ImportFailed"
        # What a half-done import leaves behind is what the pool's recovery (reset) must clear.
        assert (await client.get("/convos/status", headers=AUTH)).json()["clean"] is False
        await client.post("/convos/reset", headers=AUTH)
        assert (await client.get("/convos/status", headers=AUTH)).json()["clean"] is True
