"""Mail through AgentMail, always in the instance's own inbox (specs/agentmail.md, runtime-callbacks.md).

The inbox is in the path of every vendor call, taken from the ledger; a message read back must also
name that inbox in its answer, and an answer without it is refused (the original let it pass)."""

from __future__ import annotations

import base64
from email.utils import parseaddr
from typing import Any
from urllib.parse import quote

from services.proxy.resources import Owned, body_of, call, vendor
from services.proxy.schemas import EmailLabels, EmailSend
from services.tools.base import ToolProvider
from shared.errors import Forbidden, NotFound

# The list and thread queries an instance may pass through; the inbox is never one of them.
LIST_QUERY = ("limit", "page_token", "labels", "before", "after", "ascending", "include_spam")
MAX_INLINE_ATTACHMENTS = 10


def _inbox(owned: Owned) -> str:
    if owned.email is None:
        raise NotFound("this instance has no inbox; provision one with POST /api/proxy/email/provision")
    return owned.email


def _path(inbox: str, rest: str = "") -> str:
    return f"/inboxes/{quote(inbox, safe='@')}{rest}"


def _message_id(message_id: str) -> str:
    return quote(message_id, safe="")


def same_address(claimed: str | None, own: str) -> bool:
    if not claimed:
        return True
    return parseaddr(claimed)[1].strip().lower() == own.strip().lower()


def query(params: dict[str, str]) -> dict[str, str]:
    return {name: value for name, value in params.items() if name in LIST_QUERY}


async def send(tools: dict[str, ToolProvider], owned: Owned, body: EmailSend) -> tuple[int, Any]:
    _, client = vendor(tools, "agentmail", "email")
    inbox = _inbox(owned)
    if not same_address(body.sender, inbox) or not same_address(body.inbox_id, inbox):
        raise Forbidden("an instance sends from its own inbox only")
    response = await call(
        client, "POST", _path(inbox, "/messages/send"), what="send email", json=body.vendor_body()
    )
    return response.status_code, body_of(response)


async def listing(
    tools: dict[str, ToolProvider], owned: Owned, kind: str, params: dict[str, str]
) -> tuple[int, Any]:
    _, client = vendor(tools, "agentmail", "email")
    inbox = _inbox(owned)
    response = await call(client, "GET", _path(inbox, f"/{kind}"), what=f"list {kind}", params=query(params))
    answer = body_of(response)
    if response.is_success and isinstance(answer, dict):
        # Defence in depth: whatever the vendor answered, only this inbox's items go back.
        items = answer.get(kind)
        if isinstance(items, list):
            answer[kind] = [
                item for item in items if isinstance(item, dict) and item.get("inbox_id") == inbox
            ]
            answer["count"] = len(answer[kind])
    return response.status_code, answer


def _own_message(answer: Any, inbox: str) -> dict[str, Any]:
    if not isinstance(answer, dict) or answer.get("inbox_id") != inbox:
        # Missing is refused too: a lookup the vendor cannot tie to this inbox is not this instance's.
        raise Forbidden("the message does not belong to this instance's inbox")
    return answer


async def read(
    tools: dict[str, ToolProvider], owned: Owned, message_id: str, max_bytes: int
) -> tuple[int, Any]:
    _, client = vendor(tools, "agentmail", "email")
    inbox = _inbox(owned)
    path = _path(inbox, f"/messages/{_message_id(message_id)}")
    response = await call(client, "GET", path, what="read email")
    answer = body_of(response)
    if not response.is_success:
        return response.status_code, answer
    message = _own_message(answer, inbox)
    attachments = message.get("attachments")
    if isinstance(attachments, list):
        message["attachments"] = [
            await _inline(client, path, item, max_bytes) if index < MAX_INLINE_ATTACHMENTS else item
            for index, item in enumerate(attachments)
        ]
    return response.status_code, message


async def _inline(client: Any, message_path: str, item: Any, max_bytes: int) -> Any:
    """The attachment with its bytes as base64 `content` (or `inline_error` saying why not)."""
    if not isinstance(item, dict) or not item.get("attachment_id"):
        return item
    if int(item.get("size") or 0) > max_bytes:
        return {**item, "inline_error": f"larger than {max_bytes} bytes; not inlined"}
    attachment_path = f"{message_path}/attachments/{_message_id(str(item['attachment_id']))}"
    response = await call(client, "GET", attachment_path, what="read attachment")
    if not response.is_success:
        return {**item, "inline_error": f"the vendor answered {response.status_code}"}
    content = response.content
    if "json" in response.headers.get("content-type", ""):
        # The current API answers metadata with a short-lived `download_url`: fetch the bytes from it.
        meta = body_of(response)
        url = meta.get("download_url") if isinstance(meta, dict) else None
        if not isinstance(url, str):
            return {**item, "inline_error": "the vendor gave no content"}
        download = await client._client.get(url, timeout=client.timeout)
        content = download.content
    if len(content) > max_bytes:
        return {**item, "inline_error": f"larger than {max_bytes} bytes; not inlined"}
    return {**item, "content": base64.b64encode(content).decode()}


async def label(
    tools: dict[str, ToolProvider], owned: Owned, message_id: str, body: EmailLabels
) -> tuple[int, Any]:
    _, client = vendor(tools, "agentmail", "email")
    inbox = _inbox(owned)
    path = _path(inbox, f"/messages/{_message_id(message_id)}")
    # Checked before the change, so a message that is not this inbox's is never touched.
    before = await call(client, "GET", path, what="read email")
    if not before.is_success:
        return before.status_code, body_of(before)
    _own_message(body_of(before), inbox)
    response = await call(client, "PATCH", path, what="label email", json=body.vendor_body(), idempotent=True)
    answer = body_of(response)
    if response.is_success:
        _own_message(answer, inbox)
    return response.status_code, answer
