"""Messaging endpoints common to the staff API (/api) and the portal API (/portal/api)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field
from starlette.requests import Request

from server.access import (
    access_conversation,
    access_conversation_with_participants,
    access_message,
)
from server.actions import messaging
from server.api import Api, Ok
from server.errors import ValidationFailed
from server.i18n import gettext as _
from server.queries.messaging import conversation_list, thread, unread_counts
from server.web import id_or_none, path_id, require_caller


class MessageIn(BaseModel):
    body: str = Field(min_length=1, max_length=10_000)
    client_uid: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")


class MessageOut(BaseModel):
    id: int
    conversation_id: int
    body: str
    client_uid: str
    created_at: str
    created: bool


class ReadIn(BaseModel):
    up_to: int | None = None


class ReadOut(BaseModel):
    message_ids: list[int]


class ConversationListOut(BaseModel):
    conversations: list[dict[str, Any]]
    unread_total: int


class UnreadOut(BaseModel):
    total: int


class ThreadOut(BaseModel):
    conversation: dict[str, Any]
    me: dict[str, Any]
    participants: list[dict[str, Any]]
    counts: dict[str, int]
    messages: list[dict[str, Any]]
    has_more: bool


def add_messaging_endpoints(api: Api) -> None:
    @api.route("GET", "/conversations", response=ConversationListOut)
    async def list_conversations(request: Request) -> ConversationListOut:
        """My conversations by last activity, with unread counts (filters: q, waiting=1)"""
        caller = require_caller(request)
        data = await conversation_list(
            caller,
            q=request.query_params.get("q", "")[:200],
            waiting=request.query_params.get("waiting") == "1",
        )
        return ConversationListOut(**data)

    @api.route("GET", "/unread", response=UnreadOut)
    async def unread(request: Request) -> UnreadOut:
        """How many messages wait unread for me, in all my conversations (the nav badge)"""
        counts = await unread_counts(require_caller(request))
        return UnreadOut(total=sum(counts.values()))

    @api.route("GET", "/conversations/{conversation_id}", response=ThreadOut)
    async def get_thread(request: Request) -> ThreadOut:
        """A conversation's participants and its newest 50 messages, with read receipts
        (?before=<message id>: the 50 before that one; has_more: older ones remain)"""
        caller = require_caller(request)
        conversation, me = await access_conversation(caller, path_id(request, "conversation_id"))
        before = None
        if "before" in request.query_params:
            before = id_or_none(request.query_params["before"])
            if before is None:
                raise ValidationFailed(
                    _("Some fields are not valid."), {"before": _("Enter a whole number.")}
                )
        return ThreadOut(**await thread(caller, conversation, me, before=before))

    @api.route(
        "POST",
        "/conversations/{conversation_id}/messages",
        body=MessageIn,
        response=MessageOut,
        busiest=True,  # every message sent: matched first, not after eight other routes
    )
    async def send_message(request: Request, body: MessageIn) -> MessageOut:
        """Send a message (idempotent on client_uid)"""
        caller = require_caller(request)
        conversation, me, everyone = await access_conversation_with_participants(
            caller, path_id(request, "conversation_id")
        )
        message, created = await messaging.do_send_message(
            caller, conversation, me, body.body, body.client_uid, participants=everyone
        )
        return MessageOut(
            id=message.id,
            conversation_id=conversation.id,
            body=message.body,
            client_uid=message.client_uid,
            created_at=message.created_at.isoformat(),
            created=created,
        )

    @api.route("POST", "/conversations/{conversation_id}/read", body=ReadIn, response=ReadOut)
    async def mark_read(request: Request, body: ReadIn) -> ReadOut:
        """Mark the conversation read (up to a message id, or all)"""
        caller = require_caller(request)
        conversation, me = await access_conversation(caller, path_id(request, "conversation_id"))
        return ReadOut(
            message_ids=await messaging.do_mark_read(caller, conversation, me, body.up_to)
        )

    @api.route("POST", "/conversations/{conversation_id}/typing", response=Ok)
    async def typing(request: Request) -> Ok:
        """Tell the other participants that I am typing"""
        caller = require_caller(request)
        conversation, me = await access_conversation(caller, path_id(request, "conversation_id"))
        await messaging.notify_typing(caller, conversation, me)
        return Ok()

    @api.route("DELETE", "/messages/{message_id}", response=Ok, statuses=(401, 404, 409))
    async def delete_message(request: Request) -> Ok:
        """Delete my message while nobody else has read it (409 once read)"""
        caller = require_caller(request)
        message, _conversation, me = await access_message(caller, path_id(request, "message_id"))
        await messaging.do_delete_message(caller, message, me)
        return Ok()
