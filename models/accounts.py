"""Practices, staff users, portal accounts, sessions and sign-in bookkeeping."""

from __future__ import annotations

from enum import StrEnum

from tortoise import fields

from models.base import Timestamped


class StaffRole(StrEnum):
    OWNER = "owner"
    THERAPIST = "therapist"
    OFFICE_ADMIN = "office_admin"


class Realm(StrEnum):
    """Which app a session belongs to; a session of one realm never opens the other."""

    STAFF = "staff"
    PORTAL = "portal"


class Practice(Timestamped):
    id = fields.IntField(primary_key=True)
    name = fields.CharField(max_length=200)
    time_zone = fields.CharField(max_length=64, default="Europe/Paris")
    locale = fields.CharField(max_length=8, default="en")
    currency = fields.CharField(max_length=3, default="EUR")
    # Clinical details and notes are for clinicians; the owner may open them to the front desk.
    office_admins_see_clinical = fields.BooleanField(default=False, db_default=False)
    # Clients may cancel online until this many hours before an appointment.
    cancellation_notice_hours = fields.SmallIntField(default=24, db_default=24)
    # Clients book online on the portal (the practitioners' free slots).
    online_booking = fields.BooleanField(default=True, db_default=True)
    # At most this many upcoming appointments a client booked online themselves (0: no
    # limit): one client, or one stolen session, cannot take every free hour.
    online_bookings_per_client = fields.SmallIntField(default=3, db_default=3)
    # Teleconsultation links: {room} becomes the appointment's own unguessable room name.
    video_url_template = fields.CharField(
        max_length=300,
        default="https://meet.jit.si/cabinet-{room}",
        db_default="https://meet.jit.si/cabinet-{room}",
    )
    # Clients see their own measure scores over time on the portal.
    clients_see_measure_trend = fields.BooleanField(default=False, db_default=False)
    # Shown to a client whose answers suggest they may be at risk; empty: the built-in text.
    crisis_message = fields.TextField(default="", db_default="")
    # Earlier-slot alerts (server/actions/offers.py): off until the owner turns them on; an
    # appointment may join the waiting list only if it is at least this many days away.
    earlier_slot_alerts = fields.BooleanField(default=False, db_default=False)
    earlier_slot_min_days = fields.SmallIntField(default=10, db_default=10)

    class Meta:
        table = "practice"


class StaffUser(Timestamped):
    id = fields.IntField(primary_key=True)
    practice: fields.ForeignKeyRelation[Practice] = fields.ForeignKeyField(
        "models.Practice", related_name="staff", on_delete=fields.RESTRICT
    )
    email = fields.CharField(max_length=254, unique=True)
    password_hash = fields.CharField(max_length=255)
    first_name = fields.CharField(max_length=100)
    last_name = fields.CharField(max_length=100)
    role = fields.CharEnumField(StaffRole, max_length=20)
    supervisor: fields.ForeignKeyNullableRelation[StaffUser] = fields.ForeignKeyField(
        "models.StaffUser", related_name="supervisees", null=True, on_delete=fields.SET_NULL
    )
    # Portal messaging with clients needs this: not every clinician works online.
    portal_enabled = fields.BooleanField(default=True)
    # The secret in the practitioner's calendar feed URL; a new one revokes the old URL.
    calendar_token = fields.CharField(max_length=64, null=True, unique=True)
    is_active = fields.BooleanField(default=True)
    locale = fields.CharField(max_length=8, null=True)
    password_changed_at = fields.DatetimeField(null=True)

    class Meta:
        table = "staff_user"

    @property
    def full_name(self) -> str:
        return f"{self.first_name} {self.last_name}"


class PortalAccount(Timestamped):
    # A client's sign-in to the portal; the password is unset until the invitation is used.
    # (A comment, not a docstring: Tortoise copies docstrings into SQL table comments.)

    id = fields.IntField(primary_key=True)
    client: fields.OneToOneRelation = fields.OneToOneField(
        "models.Client", related_name="portal_account", on_delete=fields.RESTRICT
    )
    email = fields.CharField(max_length=254, unique=True)
    password_hash = fields.CharField(max_length=255, null=True)
    is_active = fields.BooleanField(default=True)
    locale = fields.CharField(max_length=8, null=True)
    invited_at = fields.DatetimeField(null=True)
    activated_at = fields.DatetimeField(null=True)
    password_changed_at = fields.DatetimeField(null=True)
    # The secret in the client's own calendar feed URL.
    calendar_token = fields.CharField(max_length=64, null=True, unique=True)

    class Meta:
        table = "portal_account"


class AuthSession(Timestamped):
    # A server-side session. The cookie holds a random token, and only its hash is stored.
    # (Model docs are comments: Tortoise copies docstrings into SQL and trips on ; and '.)

    id = fields.CharField(primary_key=True, max_length=64)
    realm = fields.CharEnumField(Realm, max_length=10)
    staff_user: fields.ForeignKeyNullableRelation[StaffUser] = fields.ForeignKeyField(
        "models.StaffUser", related_name="sessions", null=True, on_delete=fields.CASCADE
    )
    portal_account: fields.ForeignKeyNullableRelation[PortalAccount] = fields.ForeignKeyField(
        "models.PortalAccount", related_name="sessions", null=True, on_delete=fields.CASCADE
    )
    csrf_token = fields.CharField(max_length=64)
    last_seen_at = fields.DatetimeField()
    expires_at = fields.DatetimeField()
    idle_seconds = fields.IntField()
    revoked_at = fields.DatetimeField(null=True)
    ip = fields.CharField(max_length=64, default="")
    user_agent = fields.CharField(max_length=300, default="")

    class Meta:
        table = "auth_session"


class LoginAttempt(Timestamped):
    # One failed or successful sign-in, kept for throttling and for the audit trail.

    id = fields.BigIntField(primary_key=True)
    realm = fields.CharEnumField(Realm, max_length=10)
    email = fields.CharField(max_length=254, db_index=True)
    address = fields.CharField(max_length=64, db_index=True)
    succeeded = fields.BooleanField()

    class Meta:
        table = "login_attempt"


class TokenPurpose(StrEnum):
    RESET = "reset"
    INVITE = "invite"


class AccountToken(Timestamped):
    # A single-use emailed link: password reset, or a portal invitation to set a password.

    id = fields.IntField(primary_key=True)
    token_hash = fields.CharField(max_length=64, unique=True)
    purpose = fields.CharEnumField(TokenPurpose, max_length=10)
    realm = fields.CharEnumField(Realm, max_length=10)
    staff_user: fields.ForeignKeyNullableRelation[StaffUser] = fields.ForeignKeyField(
        "models.StaffUser", related_name="tokens", null=True, on_delete=fields.CASCADE
    )
    portal_account: fields.ForeignKeyNullableRelation[PortalAccount] = fields.ForeignKeyField(
        "models.PortalAccount", related_name="tokens", null=True, on_delete=fields.CASCADE
    )
    expires_at = fields.DatetimeField()
    used_at = fields.DatetimeField(null=True)

    class Meta:
        table = "account_token"
