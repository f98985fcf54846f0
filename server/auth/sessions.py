"""Server-side sessions behind an HttpOnly cookie, one cookie per realm.

The cookie holds a random token; the database holds only its SHA-256, so a leaked backup
does not hand out live sessions. A session ends when it is revoked (sign-out, password
change, deactivation), when it has been idle too long, or at its absolute lifetime.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from models.accounts import AuthSession, PortalAccount, Realm, StaffRole, StaffUser
from models.clients import Client
from server.db import connection, from_row, placeholders, select_columns
from server.settings import Settings, get_settings

COOKIE_NAMES = {Realm.STAFF: "cabinet_staff", Realm.PORTAL: "cabinet_portal"}
# Writing last_seen_at on every request would turn every read into a write; a minute of
# slack on a 30-minute idle timeout is harmless.
TOUCH_EVERY = timedelta(seconds=60)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    return secrets.token_urlsafe(32)


def idle_seconds(realm: Realm, settings: Settings | None = None) -> int:
    s = settings or get_settings()
    minutes = s.staff_idle_minutes if realm is Realm.STAFF else s.portal_idle_minutes
    return minutes * 60


@dataclass
class Caller:
    """Who is calling: a signed-in staff user or portal client, with their session."""

    realm: Realm
    session: AuthSession
    staff: StaffUser | None = None
    account: PortalAccount | None = None
    client: Client | None = None
    # The practice's time zone (Practice.time_zone), read with the session: every date and
    # time this caller sees is in it, as the portal's slots and the reminders are.
    time_zone: str = ""

    @classmethod
    def acting_as(cls, who: StaffUser | tuple[PortalAccount, Client]) -> Caller:
        """A caller for scripts (the demo practice): the person, with a session that is
        never saved, so actions record them as the author without anyone signing in."""
        if isinstance(who, StaffUser):
            session = AuthSession(id="", realm=Realm.STAFF, staff_user_id=who.id)
            return cls(realm=Realm.STAFF, session=session, staff=who)
        account, client = who
        session = AuthSession(id="", realm=Realm.PORTAL, portal_account_id=account.id)
        return cls(realm=Realm.PORTAL, session=session, account=account, client=client)

    @property
    def is_staff(self) -> bool:
        return self.staff is not None

    @property
    def role(self) -> StaffRole | None:
        return self.staff.role if self.staff else None

    @property
    def practice_id(self) -> int:
        if self.staff is not None:
            return self.staff.practice_id  # type: ignore[attr-defined, no-any-return]
        assert self.client is not None
        return self.client.practice_id  # type: ignore[attr-defined, no-any-return]

    @property
    def recipient(self) -> str:
        if self.staff is not None:
            return f"s:{self.staff.id}"
        assert self.account is not None
        return f"c:{self.account.id}"

    @property
    def label(self) -> str:
        if self.staff is not None:
            return self.staff.full_name
        assert self.client is not None
        return self.client.full_name

    @property
    def locale(self) -> str | None:
        if self.staff is not None:
            return self.staff.locale
        return self.account.locale if self.account else None


def session_is_live(session: AuthSession, now: datetime) -> bool:
    if session.revoked_at is not None or session.expires_at <= now:
        return False
    return session.last_seen_at + timedelta(seconds=session.idle_seconds) > now


async def load_caller(realm: Realm, token: str | None, *, touch: bool = True) -> Caller | None:
    """The caller behind a cookie token, or None when the session is missing or over.

    ``touch``: the request counts as the person's activity and pushes the idle timeout back.
    A socket's handshake does not: a tab reconnects on its own (a network blip, a laptop
    waking, a server restart), and an unattended screen must still sign itself out.
    """
    if not token:
        return None
    # One statement for the session and the person: every request runs this.
    p = placeholders(2)
    if realm is Realm.STAFF:
        sql = (
            f"SELECT {select_columns(AuthSession, 's')}, {select_columns(StaffUser, 'u')}, "
            "pr.time_zone AS practice_time_zone "
            "FROM auth_session s JOIN staff_user u ON u.id = s.staff_user_id "
            "JOIN practice pr ON pr.id = u.practice_id "
            f"WHERE s.id = {p[0]} AND s.realm = {p[1]}"
        )
    else:
        sql = (
            f"SELECT {select_columns(AuthSession, 's')}, {select_columns(PortalAccount, 'a')}, "
            f"{select_columns(Client, 'k')}, pr.time_zone AS practice_time_zone "
            "FROM auth_session s JOIN portal_account a ON a.id = s.portal_account_id "
            "JOIN client k ON k.id = a.client_id JOIN practice pr ON pr.id = k.practice_id "
            f"WHERE s.id = {p[0]} AND s.realm = {p[1]}"
        )
    rows = await connection().execute_query_dict(sql, [hash_token(token), realm.value])
    now = datetime.now(UTC)
    if not rows:
        return None
    session = from_row(AuthSession, rows[0], "s")
    if not session_is_live(session, now):
        return None
    caller = Caller(realm=realm, session=session, time_zone=str(rows[0]["practice_time_zone"]))
    if realm is Realm.STAFF:
        staff = from_row(StaffUser, rows[0], "u")
        if not staff.is_active:
            return None
        caller.staff = staff
    else:
        account = from_row(PortalAccount, rows[0], "a")
        client = from_row(Client, rows[0], "k")
        if not account.is_active or client.deleted_at is not None:
            return None
        account.client = client
        caller.account = account
        caller.client = client
    if touch and now - session.last_seen_at > TOUCH_EVERY:
        session.last_seen_at = now
        await AuthSession.filter(id=session.id).update(last_seen_at=now)
    return caller
