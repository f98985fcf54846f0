"""A client starts a conversation from the portal ("New message"). Everything else about
messages (the list, a thread, sending, read receipts) is shared with the staff API:
server/messaging_api.py."""

from __future__ import annotations

from pydantic import BaseModel, Field
from starlette.requests import Request

from portal.api import api
from server.actions import messaging
from server.web import require_client


class NewConversationIn(BaseModel):
    subject: str = Field(max_length=200)
    body: str = Field(max_length=10_000)
    # The dialog's own key: sent again after a lost answer, the conversation started the
    # first time (its first message has this client_uid).
    client_uid: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")


class ConversationStarted(BaseModel):
    id: int


@api.route("POST", "/conversations", body=NewConversationIn, response=ConversationStarted)
async def start_conversation(request: Request, body: NewConversationIn) -> ConversationStarted:
    """Write to the practice: a new conversation with your therapist (409 when the practice
    has nobody who may receive it)"""
    conversation = await messaging.do_client_starts_conversation(
        require_client(request),
        subject=body.subject,
        first_message=body.body,
        client_uid=body.client_uid,
    )
    return ConversationStarted(id=conversation.id)
