"""The agent's mail and SMS tool: its own inbox and number through the pool's service proxy, with its
own credentials (`INSTANCE_ID`, `GATEWAY_TOKEN`, `POOL_URL` from its env), never a vendor key.

    python -m runtime.tools info
    python -m runtime.tools mail-send --to friend@example.com --subject hi --text hello
    python -m runtime.tools mail-list | mail-read ID | mail-threads
    python -m runtime.tools sms-send --to +15550001111 --text hi
    python -m runtime.tools sms-replies | sms-read ID

Prints `{"status": <HTTP status>, "body": <answer>}`; exits 0 on a 2xx, 1 otherwise."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from typing import Any

import httpx

from runtime.config import Settings

TIMEOUT_SECONDS = 30.0


class ProxyTool:
    def __init__(self, settings: Settings, client: httpx.Client | None = None) -> None:
        if not settings.pool_url:
            raise SystemExit("POOL_URL is not set: this instance has no pool to call")
        token = settings.gateway_token.get_secret_value()
        self._client = client or httpx.Client(
            base_url=settings.pool_url,
            headers={"Authorization": f"Bearer {settings.instance_id}:{token}"},
            timeout=TIMEOUT_SECONDS,
        )

    def call(self, method: str, path: str, **kwargs: Any) -> tuple[int, Any]:
        response = self._client.request(method, f"/api/proxy{path}", **kwargs)
        try:
            return response.status_code, response.json()
        except ValueError:
            return response.status_code, response.text

    def info(self) -> tuple[int, Any]:
        return self.call("GET", "/info")

    def mail_send(self, to: str, subject: str, text: str) -> tuple[int, Any]:
        return self.call("POST", "/email/send", json={"to": to, "subject": subject, "text": text})

    def mail_list(self, limit: int = 20) -> tuple[int, Any]:
        return self.call("GET", "/email/messages", params={"limit": limit})

    def mail_read(self, message_id: str) -> tuple[int, Any]:
        return self.call("GET", f"/email/messages/{message_id}")

    def mail_threads(self) -> tuple[int, Any]:
        return self.call("GET", "/email/threads")

    def sms_send(self, to: str, text: str) -> tuple[int, Any]:
        return self.call("POST", "/sms/send", json={"to": to, "text": text})

    def sms_replies(self, limit: int = 20) -> tuple[int, Any]:
        params = {"filter[record_type]": "message", "filter[direction]": "inbound", "page[size]": limit}
        return self.call("GET", "/sms/records", params=params)

    def sms_read(self, message_id: str) -> tuple[int, Any]:
        return self.call("GET", f"/sms/messages/{message_id}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m runtime.tools", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("info")
    send = commands.add_parser("mail-send")
    send.add_argument("--to", required=True)
    send.add_argument("--subject", default="")
    send.add_argument("--text", default="")
    commands.add_parser("mail-list")
    commands.add_parser("mail-threads")
    commands.add_parser("mail-read").add_argument("id")
    sms = commands.add_parser("sms-send")
    sms.add_argument("--to", required=True)
    sms.add_argument("--text", required=True)
    commands.add_parser("sms-replies")
    commands.add_parser("sms-read").add_argument("id")
    args = parser.parse_args(argv)
    tool = ProxyTool(Settings())
    calls: dict[str, Callable[[], tuple[int, Any]]] = {
        "info": tool.info,
        "mail-send": lambda: tool.mail_send(args.to, args.subject, args.text),
        "mail-list": tool.mail_list,
        "mail-threads": tool.mail_threads,
        "mail-read": lambda: tool.mail_read(args.id),
        "sms-send": lambda: tool.sms_send(args.to, args.text),
        "sms-replies": tool.sms_replies,
        "sms-read": lambda: tool.sms_read(args.id),
    }
    status, body = calls[args.command]()
    print(json.dumps({"status": status, "body": body}))
    return 0 if 200 <= status < 300 else 1


if __name__ == "__main__":
    sys.exit(main())
