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
from models.clients import Client, ClientStatus
from models.notifications import OutboxMessage, OutboxStatus
from models.realtime import RealtimeCursor, RealtimeEvent

__all__ = [
    "AccountToken",
    "AuditEntry",
    "AuthSession",
    "Client",
    "ClientStatus",
    "LoginAttempt",
    "OutboxMessage",
    "OutboxStatus",
    "PortalAccount",
    "Practice",
    "Realm",
    "RealtimeCursor",
    "RealtimeEvent",
    "StaffRole",
    "StaffUser",
    "TokenPurpose",
]
