"""Tortoise models, one module per domain, re-exported here for Tortoise's app loader."""

from models.accounts import (
    AccountToken,
    AuthSession,
    LoginAttempt,
    PortalAccount,
    Practice,
    Realm,
    StaffRole,
    StaffUser,
    TokenPurpose,
)
from models.audit import AuditEntry
from models.clients import (
    AlternateContact,
    Client,
    ClientStatus,
    Contact,
    ContactKind,
    Document,
    EmailAddress,
    LinkedAccount,
    PaymentMethod,
    PaymentMethodKind,
    PaymentTerms,
    PhoneNumber,
    Relationship,
    Tag,
)
from models.messaging import (
    Conversation,
    ConversationKind,
    Message,
    MessageRead,
    Participant,
    ParticipantRole,
)
from models.notifications import OutboxMessage, OutboxStatus
from models.realtime import RealtimeCursor, RealtimeEvent
from models.tasks import Task

__all__ = [
    "AlternateContact",
    "Contact",
    "ContactKind",
    "Document",
    "EmailAddress",
    "PaymentMethod",
    "PaymentMethodKind",
    "PaymentTerms",
    "PhoneNumber",
    "Tag",
    "AccountToken",
    "AuditEntry",
    "AuthSession",
    "Client",
    "ClientStatus",
    "Conversation",
    "ConversationKind",
    "Message",
    "MessageRead",
    "Participant",
    "ParticipantRole",
    "LinkedAccount",
    "LoginAttempt",
    "OutboxMessage",
    "OutboxStatus",
    "PortalAccount",
    "Practice",
    "Realm",
    "Relationship",
    "RealtimeCursor",
    "RealtimeEvent",
    "StaffRole",
    "StaffUser",
    "Task",
    "TokenPurpose",
]
