"""What an instance may send through the proxy: allow-lists of the vendors' fields, in the vendors' own
(snake_case) shapes, so the production images' bodies pass unchanged. Any other field (a sender, an
inbox, a messaging profile, a webhook URL, raw headers) is dropped: the proxy builds the vendor's body
from these and adds the fields it owns itself. A field the proxy owns that names another inbox or
number is refused (`claims_other_sender`), never silently rewritten."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from shared.validation import InputModel

Text = Annotated[str, StringConstraints(max_length=200_000)]
Short = Annotated[str, StringConstraints(max_length=1_000)]
Addresses = Short | Annotated[list[Short], Field(max_length=50)]
Labels = Annotated[
    list[Annotated[str, StringConstraints(min_length=1, max_length=100)]], Field(max_length=20)
]


class _Vendor(InputModel):
    # Unknown fields are dropped, not refused: the images' bodies carry fields we do not forward.
    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    def vendor_body(self) -> dict[str, Any]:
        return self.model_dump(exclude_none=True, exclude={"sender", "inbox_id", "messaging_profile_id"})


class Attachment(BaseModel):
    model_config = ConfigDict(extra="ignore")
    filename: Short | None = None
    content_type: Short | None = None
    # base64, as AgentMail takes it; bounded by the body-size limit of the app.
    content: Annotated[str, StringConstraints(max_length=800_000)] | None = None
    url: Short | None = None


class EmailSend(_Vendor):
    to: Addresses
    cc: Addresses | None = None
    bcc: Addresses | None = None
    reply_to: Addresses | None = None
    subject: Short | None = None
    text: Text | None = None
    html: Text | None = None
    labels: Labels | None = None
    attachments: Annotated[list[Attachment], Field(max_length=10)] | None = None
    # Owned by the proxy: read only to refuse a request that names another inbox.
    sender: Short | None = Field(None, alias="from")
    inbox_id: Short | None = None


class EmailLabels(_Vendor):
    add_labels: Labels | None = None
    remove_labels: Labels | None = None


class SmsSend(_Vendor):
    to: Annotated[str, StringConstraints(pattern=r"^\+[1-9][0-9]{6,14}$")]
    text: Annotated[str, StringConstraints(max_length=1_600)] | None = None
    subject: Short | None = None
    media_urls: Annotated[list[Short], Field(max_length=10)] | None = None
    # Owned by the proxy: `from` must be absent or the instance's own number.
    sender: Short | None = Field(None, alias="from")
    messaging_profile_id: Short | None = None


class ProxyInfo(BaseModel):
    model_config = ConfigDict(populate_by_name=True)
    instance_id: str = Field(serialization_alias="instanceId")
    email: str | None
    phone: str | None


def claims_other_sender(claimed: str | None, own: str) -> bool:
    """True when the request names a sender that is not the instance's own (case-insensitive for mail)."""
    if claimed is None or claimed == "":
        return False
    return claimed.strip().lower() != own.strip().lower()
