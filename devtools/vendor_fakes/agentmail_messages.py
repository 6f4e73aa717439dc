"""The messages half of the AgentMail fake: send from an inbox, list, read, label, threads and
attachments (the REST API under `/v0/inboxes/{inbox_id}/...`), and `deliver` for a test to put an
inbound message in an inbox. Items carry `inbox_id`, as the vendor's do; another inbox's message
answers 404 under this inbox's path, as AgentMail scopes it."""

from __future__ import annotations

import base64
import json
import secrets
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

import httpx

from devtools.vendor_fakes.vendor import Route, iso, now

if TYPE_CHECKING:
    from devtools.vendor_fakes.agentmail import FakeAgentMail

PREFIX = "/inboxes/(?P<inbox_id>[^/?]+)"


class AgentMailMessages:
    def __init__(self, fake: FakeAgentMail) -> None:
        self.fake = fake
        self.messages: dict[str, dict[str, Any]] = {}
        self.attachments: dict[str, bytes] = {}
        self.sent: list[dict[str, Any]] = []
        # Which inbox holds each message (kept apart from the answer, which a test may strip).
        self.owner: dict[str, str] = {}

    def routes(self) -> list[Route]:
        message = PREFIX + "/messages/(?P<message_id>[^/?]+)"
        return [
            Route("POST", PREFIX + "/messages/send", self._send),
            Route("GET", PREFIX + "/messages", self._list),
            Route("GET", message + "/attachments/(?P<attachment_id>[^/?]+)", self._attachment),
            Route("GET", message, self._get),
            Route("PATCH", message, self._patch),
            Route("GET", PREFIX + "/threads", self._threads),
        ]

    def deliver(
        self, inbox_id: str, *, sender: str, subject: str, text: str, attachment: bytes | None = None
    ) -> str:
        """An inbound message arriving in `inbox_id` (what a test's outside correspondent sends)."""
        return str(
            self._store(
                inbox_id,
                sender=sender,
                to=[inbox_id],
                subject=subject,
                text=text,
                labels=["received"],
                attachment=attachment,
            )["message_id"]
        )

    def _store(
        self,
        inbox_id: str,
        *,
        sender: str,
        to: list[str],
        subject: str,
        text: str,
        labels: list[str],
        attachment: bytes | None = None,
        thread_id: str | None = None,
    ) -> dict[str, Any]:
        message_id = f"msg_{secrets.token_hex(8)}"
        stamp = iso(now())
        attachments = []
        if attachment is not None:
            attachment_id = f"att_{secrets.token_hex(6)}"
            self.attachments[attachment_id] = attachment
            attachments.append(
                {
                    "attachment_id": attachment_id,
                    "filename": "file.bin",
                    "size": len(attachment),
                    "content_type": "application/octet-stream",
                    "inline": False,
                }
            )
        message = {
            "inbox_id": inbox_id,
            "thread_id": thread_id or f"thr_{secrets.token_hex(6)}",
            "message_id": message_id,
            "labels": labels,
            "timestamp": stamp,
            "from": sender,
            "to": to,
            "subject": subject,
            "preview": text[:80],
            "text": text,
            "attachments": attachments,
            "size": len(text),
            "created_at": stamp,
            "updated_at": stamp,
        }
        self.messages[message_id] = message
        self.owner[message_id] = inbox_id
        return message

    def _own(self, request: httpx.Request, operation: str, inbox_id: str) -> httpx.Response | str:
        if refused := self.fake._auth(request, operation):
            return refused
        inbox = unquote(inbox_id)
        if inbox not in self.fake.inboxes:
            return self.fake.error(404, "Inbox not found")
        return inbox

    def _message(self, inbox: str, message_id: str) -> dict[str, Any] | None:
        message_id = unquote(message_id)
        return self.messages.get(message_id) if self.owner.get(message_id) == inbox else None

    def _send(self, request: httpx.Request, inbox_id: str) -> httpx.Response:
        inbox = self._own(request, "send", inbox_id)
        if isinstance(inbox, httpx.Response):
            return inbox
        body = json.loads(request.content or b"{}")
        to = body.get("to")
        if not to:
            return httpx.Response(
                400,
                json={
                    "name": "ValidationError",
                    "code": "validation_error",
                    "message": "to is required",
                    "errors": [{"path": ["to"]}],
                },
            )
        self.sent.append({"inbox_id": inbox, **body})
        message = self._store(
            inbox,
            sender=inbox,
            to=to if isinstance(to, list) else [to],
            subject=str(body.get("subject") or ""),
            text=str(body.get("text") or ""),
            labels=["sent", *body.get("labels", [])],
        )
        return httpx.Response(
            200, json={"message_id": message["message_id"], "thread_id": message["thread_id"]}
        )

    def _list(self, request: httpx.Request, inbox_id: str) -> httpx.Response:
        inbox = self._own(request, "list_messages", inbox_id)
        if isinstance(inbox, httpx.Response):
            return inbox
        limit = int(request.url.params.get("limit", "20"))
        items = [
            {k: v for k, v in m.items() if k != "text"}
            for m in self.messages.values()
            if m["inbox_id"] == inbox
        ]
        items.sort(key=lambda m: m["timestamp"], reverse=True)
        return httpx.Response(
            200, json={"count": len(items[:limit]), "limit": limit, "messages": items[:limit]}
        )

    def _get(self, request: httpx.Request, inbox_id: str, message_id: str) -> httpx.Response:
        inbox = self._own(request, "get_message", inbox_id)
        if isinstance(inbox, httpx.Response):
            return inbox
        message = self._message(inbox, message_id)
        return httpx.Response(200, json=message) if message else self.fake.error(404, "Message not found")

    def _patch(self, request: httpx.Request, inbox_id: str, message_id: str) -> httpx.Response:
        inbox = self._own(request, "update_message", inbox_id)
        if isinstance(inbox, httpx.Response):
            return inbox
        message = self._message(inbox, message_id)
        if message is None:
            return self.fake.error(404, "Message not found")
        body = json.loads(request.content or b"{}")
        labels = [label for label in message["labels"] if label not in (body.get("remove_labels") or [])]
        labels += [label for label in body.get("add_labels") or [] if label not in labels]
        message["labels"], message["updated_at"] = labels, iso(now())
        return httpx.Response(200, json=message)

    def _attachment(
        self, request: httpx.Request, inbox_id: str, message_id: str, attachment_id: str
    ) -> httpx.Response:
        inbox = self._own(request, "get_attachment", inbox_id)
        if isinstance(inbox, httpx.Response):
            return inbox
        content = self.attachments.get(attachment_id)
        if self._message(inbox, message_id) is None or content is None:
            return self.fake.error(404, "Attachment not found")
        return httpx.Response(200, content=content, headers={"content-type": "application/octet-stream"})

    def _threads(self, request: httpx.Request, inbox_id: str) -> httpx.Response:
        inbox = self._own(request, "list_threads", inbox_id)
        if isinstance(inbox, httpx.Response):
            return inbox
        threads: dict[str, dict[str, Any]] = {}
        for message in self.messages.values():
            if self.owner[message["message_id"]] != inbox:
                continue
            thread = threads.setdefault(
                message["thread_id"],
                {
                    "inbox_id": inbox,
                    "thread_id": message["thread_id"],
                    "labels": [],
                    "message_count": 0,
                    "subject": message["subject"],
                    "preview": message["preview"],
                    "timestamp": message["timestamp"],
                    "senders": [],
                    "recipients": [],
                },
            )
            thread["message_count"] += 1
            thread["senders"] = sorted({*thread["senders"], message["from"]})
            thread["recipients"] = sorted({*thread["recipients"], *message["to"]})
        return httpx.Response(200, json={"count": len(threads), "threads": list(threads.values())})


def encoded(content: bytes) -> str:
    return base64.b64encode(content).decode()
