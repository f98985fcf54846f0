"""Accounts and sign-in: staff users, portal accounts, sessions, passwords."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

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
from models.clients import Client
from models.jobs import Job
from realtime.hub import hub
from server import jobs
from server.access import can_see_clinical
from server.actions import audit
from server.auth.passwords import (
    check_password_policy,
    hash_password,
    needs_rehash,
    verify_password,
)
from server.auth.sessions import Caller, hash_token, idle_seconds, load_caller, new_token
from server.auth.throttle import check_throttle, throttle_address
from server.db import atomic, on_commit
from server.errors import Conflict, NotFound, TooManyRequests, Unauthenticated, ValidationFailed
from server.i18n import current_locale, writing_in
from server.i18n import gettext as _
from server.mail import queue_email
from server.settings import get_settings


@dataclass
class SignIn:
    token: str
    caller: Caller


def normalize_email(email: str) -> str:
    return email.strip().lower()


async def _find_account(realm: Realm, email: str) -> StaffUser | PortalAccount | None:
    if realm is Realm.STAFF:
        return await StaffUser.get_or_none(email=email)
    return await PortalAccount.get_or_none(email=email).prefetch_related("client")


def _can_sign_in(account: StaffUser | PortalAccount | None) -> bool:
    if account is None or not account.is_active or not account.password_hash:
        return False
    if isinstance(account, PortalAccount):
        return account.client.deleted_at is None
    return True


async def do_login(
    realm: Realm,
    email: str,
    password: str,
    *,
    address: str,
    user_agent: str = "",
    known_device: bool = False,
    previous_token: str | None = None,
) -> SignIn:
    """Check the password and open a new session (a fresh id: no session fixation).

    The answer for a wrong password, an unknown email and a disabled account is the same,
    and an unknown email still costs one argon2 verification, so neither the words nor the
    timing say whether an account exists.
    """
    email = normalize_email(email)
    attempt = await _counted_attempt(realm, email, address, known_device)
    account = await _find_account(realm, email)
    usable = _can_sign_in(account)
    ok = await verify_password(account.password_hash if usable and account else None, password)
    if not ok or account is None:
        raise Unauthenticated(_("The email or password is incorrect."))

    new_hash = await hash_password(password) if needs_rehash(account.password_hash or "") else None
    token = new_token()
    now = datetime.now(UTC)
    settings = get_settings()
    async with atomic():
        if new_hash:
            account.password_hash = new_hash
            await account.save(update_fields=["password_hash"])
        if previous_token:
            # The browser's earlier session ends with its sockets, not a sweep later.
            await _revoke({"id": hash_token(previous_token), "realm": realm})
        await AuthSession.create(
            id=hash_token(token),
            realm=realm,
            staff_user=account if isinstance(account, StaffUser) else None,
            portal_account=account if isinstance(account, PortalAccount) else None,
            csrf_token=secrets.token_urlsafe(24),
            last_seen_at=now,
            expires_at=now + timedelta(hours=settings.session_max_hours),
            idle_seconds=idle_seconds(realm, settings),
            ip=address[:64],
            user_agent=user_agent[:300],
        )
        await LoginAttempt.filter(id=attempt.id).update(succeeded=True)
        caller = await load_caller(realm, token)
        assert caller is not None
        await audit.record(caller, "auth.login", object_type="session", ip=address)
    return SignIn(token=token, caller=caller)


async def _counted_attempt(
    realm: Realm, email: str, address: str, known_device: bool
) -> LoginAttempt:
    """A password check about to be made for ``email``, or TooManyRequests when the
    throttle refuses it. Recorded as a failure before the check, and until the password
    proves right (see check_throttle); an attempt refused by the throttle is not counted."""
    address = throttle_address(address)
    attempt = await LoginAttempt.create(realm=realm, email=email, address=address, succeeded=False)
    try:
        await check_throttle(realm, email, address, known_device, attempt=attempt.id)
    except TooManyRequests:
        await LoginAttempt.filter(id=attempt.id).delete()
        raise
    return attempt


async def _revoke(sessions_filter: dict[str, object], *, keep: str | None = None) -> list[str]:
    """Revoke matching live sessions; close their sockets once committed."""
    query = AuthSession.filter(revoked_at=None, **sessions_filter)
    if keep:
        query = query.exclude(id=keep)
    ids = list(await query.values_list("id", flat=True))
    if ids:
        await AuthSession.filter(id__in=ids).update(revoked_at=datetime.now(UTC))

        async def close() -> None:
            await hub.close_sessions(ids)

        on_commit(close)
    return [str(i) for i in ids]


async def do_logout(caller: Caller, *, everywhere: bool = False) -> None:
    async with atomic():
        if everywhere:
            await _revoke(_owner_filter(caller))
        else:
            await _revoke({"id": caller.session.id})
        await audit.record(
            caller, "auth.logout_everywhere" if everywhere else "auth.logout", object_type="session"
        )


def _owner_of(account: StaffUser | PortalAccount) -> dict[str, int]:
    """The filter on an account's sessions or tokens."""
    if isinstance(account, StaffUser):
        return {"staff_user_id": account.id}
    return {"portal_account_id": account.id}


def _owner_filter(caller: Caller) -> dict[str, int]:
    account = caller.staff or caller.account
    assert account is not None
    return _owner_of(account)


async def do_change_password(caller: Caller, current: str, new: str, *, address: str) -> None:
    """Change the caller's password, given the current one.

    A wrong current password counts as a failed sign-in to the account from ``address``
    (TooManyRequests past the throttle's limits): whoever finds a session open, on a screen
    left unlocked, may not guess the password here at argon2's pace. The account-wide
    limit is left out, as for a known device: the caller signed in.
    """
    account: StaffUser | PortalAccount | None = caller.staff or caller.account
    assert account is not None
    attempt = await _counted_attempt(caller.realm, account.email, address, known_device=True)
    if not await verify_password(account.password_hash, current):
        raise ValidationFailed(
            _("The current password is incorrect."),
            {"current_password": _("The current password is incorrect.")},
        )
    await LoginAttempt.filter(id=attempt.id).update(succeeded=True)
    check_password_policy(new, account.email)
    new_hash = await hash_password(new)
    async with atomic():
        account.password_hash = new_hash
        account.password_changed_at = datetime.now(UTC)
        await account.save(update_fields=["password_hash", "password_changed_at"])
        # Every other session ends: whoever knew the old password is out, and so is whoever
        # reads the inbox, the other reason to change it.
        await _revoke(_owner_filter(caller), keep=caller.session.id)
        await _cancel_links(account)
        await audit.record(caller, "auth.password_changed", object_type="account")


# --- password reset and invitations -----------------------------------------------------


def _link(realm: Realm, purpose: TokenPurpose, token: str) -> str:
    base = get_settings().public_url
    prefix = "/staff" if realm is Realm.STAFF else "/portal"
    path = "password/reset" if purpose is TokenPurpose.RESET else "invite"
    return f"{base}{prefix}/{path}/{token}"


async def _cancel_links(account: StaffUser | PortalAccount) -> None:
    """Every one-time link of the account still unused (reset, invitation) stops working.
    Call inside ``atomic()``."""
    await AccountToken.filter(used_at=None, **_owner_of(account)).update(used_at=datetime.now(UTC))


async def _issue_token(
    realm: Realm, purpose: TokenPurpose, account: StaffUser | PortalAccount, lifetime: timedelta
) -> str:
    token = secrets.token_urlsafe(32)
    # One live link at a time: a new one supersedes the old.
    await AccountToken.filter(purpose=purpose, used_at=None, **_owner_of(account)).update(
        used_at=datetime.now(UTC)
    )
    await AccountToken.create(
        token_hash=hash_token(token),
        purpose=purpose,
        realm=realm,
        staff_user=account if isinstance(account, StaffUser) else None,
        portal_account=account if isinstance(account, PortalAccount) else None,
        expires_at=datetime.now(UTC) + lifetime,
    )
    return token


# Reset emails one account gets within a link's lifetime, however often the form is sent.
RESETS_PER_LINK_LIFETIME = 3


# The job that answers a reset request (server/worker.py runs it within a second).
RESET_REQUESTED = "auth.reset_requested"
# Reset requests one network address may make within the sign-in throttle's window. Each
# writes a job and costs the worker a lookup; beyond this it is a flood, not a person.
RESET_REQUESTS_PER_ADDRESS = 20


async def do_request_password_reset(realm: Realm, email: str, *, address: str = "") -> None:
    """Hand the request to the worker, which emails a single-use link if the account exists.

    The request itself does the same work whatever the address: one job written. Looking the
    account up here would answer an unknown address faster than a real one, and on the
    portal a real address is a practice's client: that someone sees a therapist is health
    data, not to be read off a response time. So is the limit: per network address, whatever
    email is typed (TooManyRequests beyond ``RESET_REQUESTS_PER_ADDRESS`` in the window).
    """
    settings = get_settings()
    now = datetime.now(UTC)
    # The job's key names the address, keyed with the site's secret: a plain hash of an IPv4
    # address is undone by trying them all, and the key stays on the row for weeks.
    tag = hmac.new(
        settings.secret_key.encode(),
        f"reset:{realm.value}:{throttle_address(address)}".encode(),
        hashlib.sha256,
    ).hexdigest()[:16]
    prefix = f"{RESET_REQUESTED}:{tag}:"
    window = timedelta(minutes=settings.throttle_window_minutes)
    recent = await Job.filter(
        kind=RESET_REQUESTED, key__startswith=prefix, created_at__gte=now - window
    ).count()
    if recent >= RESET_REQUESTS_PER_ADDRESS:
        raise TooManyRequests(
            _("Too many requests. Please wait %(minutes)d minutes and try again.")
            % {"minutes": settings.throttle_window_minutes},
            int(window.total_seconds()),
        )
    async with atomic():
        await jobs.schedule(
            RESET_REQUESTED,
            now,
            {
                "realm": realm.value,
                # Both only until the job has run (``private`` below): the email to look the
                # account up, the address for its audit entry.
                "email": normalize_email(email),
                "address": address,
                # The email is written in the language of the page it was asked from.
                "locale": current_locale(),
            },
            key=prefix + secrets.token_urlsafe(12),
            max_attempts=3,
        )


@jobs.handler(RESET_REQUESTED, private=("email", "address"))
async def send_reset_link(job: Job) -> None:
    """Runs in the job's transaction: a worker killed halfway sends nothing, and the job
    runs again, once."""
    realm = Realm(job.payload["realm"])
    account = await _find_account(realm, job.payload["email"])
    if account is None or not account.is_active:
        return
    settings = get_settings()
    lifetime = timedelta(minutes=settings.reset_token_minutes)
    recent = await AccountToken.filter(
        purpose=TokenPurpose.RESET,
        created_at__gte=datetime.now(UTC) - lifetime,
        **_owner_of(account),
    ).count()
    if recent >= RESETS_PER_LINK_LIFETIME:
        # Enough links are on their way: anyone can type this address, and each new link
        # would flood the inbox and cancel the one before. Nothing more is sent.
        return
    token = await _issue_token(realm, TokenPurpose.RESET, account, lifetime)
    link = _link(realm, TokenPurpose.RESET, token)
    with writing_in(job.payload.get("locale")):
        await queue_email(
            account.email,
            _("Reset your Cabinet password"),
            _(
                "Someone asked to reset the password of your Cabinet account.\n\n"
                "To choose a new password, open this link within %(minutes)d minutes:\n%(link)s\n\n"
                "If it was not you, ignore this email: your password stays the same."
            )
            % {"minutes": settings.reset_token_minutes, "link": link},
            purpose="password_reset",
            client_id=account.client.id if isinstance(account, PortalAccount) else None,
        )
    await audit.record(
        None,
        "auth.reset_requested",
        object_type="account",
        object_id=account.id,
        practice_id=_practice_id(account),
        ip=job.payload.get("address", ""),
    )


def _practice_id(account: StaffUser | PortalAccount) -> int:
    if isinstance(account, StaffUser):
        return account.practice_id  # type: ignore[attr-defined, no-any-return]
    return account.client.practice_id  # type: ignore[no-any-return]


async def find_token(realm: Realm, purpose: TokenPurpose, token: str) -> AccountToken:
    """A usable token, or NotFound (used, expired, superseded or never issued)."""
    row = await AccountToken.get_or_none(
        token_hash=hash_token(token), purpose=purpose, realm=realm
    ).prefetch_related("staff_user", "portal_account", "portal_account__client")
    if row is None or row.used_at is not None or row.expires_at <= datetime.now(UTC):
        raise NotFound(_("This link has expired or was already used."))
    return row


async def do_set_password_with_token(
    realm: Realm, purpose: TokenPurpose, token: str, password: str
) -> None:
    """Use a reset or invitation link once: set the password and end every session."""
    row = await find_token(realm, purpose, token)
    account: StaffUser | PortalAccount | None = row.staff_user or row.portal_account
    assert account is not None
    check_password_policy(password, account.email)
    new_hash = await hash_password(password)
    now = datetime.now(UTC)
    async with atomic():
        claimed = await AccountToken.filter(id=row.id, used_at=None).update(used_at=now)
        if not claimed:
            raise NotFound(_("This link has expired or was already used."))
        account.password_hash = new_hash
        account.password_changed_at = now
        fields = ["password_hash", "password_changed_at"]
        if isinstance(account, PortalAccount) and account.activated_at is None:
            account.activated_at = now
            fields.append("activated_at")
        await account.save(update_fields=fields)
        await _revoke(_owner_of(account))
        # An invitation or an earlier reset link would set another password over this one.
        await _cancel_links(account)
        await audit.record(
            None,
            "auth.password_set" if purpose is TokenPurpose.RESET else "portal.invitation_accepted",
            object_type="account",
            object_id=account.id,
            practice_id=_practice_id(account),
            client_id=account.client.id if isinstance(account, PortalAccount) else None,
        )


# --- staff users ---------------------------------------------------------------------------


async def do_create_staff_user(
    actor: Caller | None,
    practice: Practice,
    *,
    email: str,
    first_name: str,
    last_name: str,
    role: StaffRole,
    password: str | None = None,
    supervisor: StaffUser | None = None,
    portal_enabled: bool = True,
) -> StaffUser:
    """Create a staff user. Without a password, an invitation to set one is emailed."""
    email = normalize_email(email)
    if await StaffUser.exists(email=email):
        raise ValidationFailed(
            _("This email is already used."), {"email": _("This email is already used.")}
        )
    if supervisor is not None and supervisor.role is StaffRole.OFFICE_ADMIN:
        raise ValidationFailed(
            _("A supervisor must be a clinician."),
            {"supervisor_id": _("A supervisor must be a clinician.")},
        )
    if password is not None:
        check_password_policy(password, email)
    password_hash = await hash_password(password or secrets.token_urlsafe(32))
    async with atomic():
        user = await StaffUser.create(
            practice=practice,
            email=email,
            password_hash=password_hash,
            first_name=first_name.strip(),
            last_name=last_name.strip(),
            role=role,
            supervisor=supervisor,
            portal_enabled=portal_enabled,
        )
        if password is None:
            token = await _issue_token(Realm.STAFF, TokenPurpose.RESET, user, timedelta(days=7))
            await queue_email(
                email,
                _("Your Cabinet account"),
                _("An account was created for you. Choose your password here:\n%(link)s")
                % {"link": _link(Realm.STAFF, TokenPurpose.RESET, token)},
                purpose="staff_invitation",
                practice_id=practice.id,
            )
        await audit.record(
            actor,
            "staff.created",
            object_type="staff_user",
            object_id=user.id,
            practice_id=practice.id,
            detail={"role": role.value},
        )
    return user


async def _end_access(account: StaffUser | PortalAccount) -> None:
    """An account switched off: its sessions end (and their sockets), its one-time links
    and its calendar feed's address with them. An invitation or reset link already in
    someone's inbox would otherwise set a password and sign in the day the account is
    switched back on, and a calendar someone subscribed to the feed would show the sessions
    again; the reason to switch it off may be who reads that inbox or that calendar. The
    owner of the account makes a new feed address from My account. Call inside
    ``atomic()``."""
    await _revoke(_owner_of(account))
    await _cancel_links(account)
    if account.calendar_token is not None:
        account.calendar_token = None
        await type(account).filter(id=account.id).update(calendar_token=None)


async def do_set_staff_active(actor: Caller, user: StaffUser, active: bool) -> StaffUser:
    """Deactivate (or reactivate) a staff user; deactivation ends every session at once."""
    if actor.staff is not None and actor.staff.id == user.id and not active:
        raise Conflict(_("You cannot deactivate your own account."))
    async with atomic():
        user.is_active = active
        await user.save(update_fields=["is_active"])
        if not active:
            await _end_access(user)
            # What they were answering for goes to someone still here (not at import: the
            # messaging actions reach the accounts' in turn).
            from server.actions import messaging, tasks

            await tasks.hand_over_tasks(actor, user)
            await messaging.hand_over_conversations(actor, user)
        await audit.record(
            actor,
            "staff.activated" if active else "staff.deactivated",
            object_type="staff_user",
            object_id=user.id,
        )
    return user


async def do_update_staff_user(
    actor: Caller,
    user: StaffUser,
    *,
    role: StaffRole,
    supervisor: StaffUser | None,
    portal_enabled: bool,
) -> StaffUser:
    """Change a team member's role, supervisor, or whether they may message clients.

    Access follows at once: every check reads the role and the supervisor afresh, so a
    supervisor replaced stops seeing the supervisee's caseload at the next request, and the
    new one countersigns the notes waiting for it. What would leave someone without a
    clinician is refused rather than done halfway: a clinician who is still a client's
    therapist, or supervises colleagues, does not become front desk until those are handed
    over."""
    clinician = role is not StaffRole.OFFICE_ADMIN
    if actor.staff is not None and actor.staff.id == user.id and role is not user.role:
        # Another owner does it: an owner demoting themselves by mistake could leave the
        # practice with no one to undo it.
        raise Conflict(_("You cannot change your own role."))
    if supervisor is not None:
        if supervisor.id == user.id:
            raise _field("supervisor_id", _("Nobody supervises themselves."))
        if supervisor.role is StaffRole.OFFICE_ADMIN or not supervisor.is_active:
            raise _field("supervisor_id", _("A supervisor must be an active clinician."))
        if supervisor.supervisor_id == user.id:  # type: ignore[attr-defined]
            raise _field(
                "supervisor_id",
                _("%(name)s is supervised by this person.") % {"name": supervisor.full_name},
            )
    async with atomic():
        locked = await StaffUser.filter(id=user.id).select_for_update().first()
        assert locked is not None
        if not clinician and locked.role is not StaffRole.OFFICE_ADMIN:
            clients = await Client.filter(therapist_id=user.id, deleted_at=None).count()
            if clients:
                raise Conflict(
                    _(
                        "%(name)s is still the therapist of %(count)d clients: hand them "
                        "over to another therapist first (Contact tab of each file)."
                    )
                    % {"name": user.full_name, "count": clients}
                )
            if await StaffUser.filter(supervisor_id=user.id, is_active=True).exists():
                raise Conflict(
                    _("%(name)s supervises colleagues: give them another supervisor first.")
                    % {"name": user.full_name}
                )
        before = {
            "role": locked.role.value,
            "supervisor_id": locked.supervisor_id,  # type: ignore[attr-defined]
            "portal_enabled": locked.portal_enabled,
        }
        after = {
            "role": role.value,
            "supervisor_id": supervisor.id if supervisor else None,
            "portal_enabled": portal_enabled,
        }
        changed = [k for k in before if before[k] != after[k]]
        if not changed:
            return locked
        locked.role = role
        locked.supervisor = supervisor  # type: ignore[assignment]
        locked.portal_enabled = portal_enabled
        await locked.save(update_fields=["role", "supervisor_id", "portal_enabled"])
        # Both may have lost files from sight (a narrower role, a supervisee moved away):
        # their open tasks there would be in no one's list (not at import: see above).
        from server.actions import tasks

        await tasks.hand_over_unseen_tasks(actor, [user.id, before["supervisor_id"]])
        await audit.record(
            actor,
            "staff.updated",
            object_type="staff_user",
            object_id=user.id,
            detail={
                "fields": changed,
                "before": {k: before[k] for k in changed},
                "after": {k: after[k] for k in changed},
            },
        )
    return locked


def _field(name: str, message: str) -> ValidationFailed:
    return ValidationFailed(message, {name: message})


async def do_set_locale(caller: Caller, locale: str) -> None:
    account: StaffUser | PortalAccount | None = caller.staff or caller.account
    assert account is not None
    async with atomic():
        account.locale = locale
        await account.save(update_fields=["locale"])
        await audit.record(caller, "account.locale_changed", detail={"locale": locale})


# --- portal accounts ------------------------------------------------------------------------


async def do_invite_to_portal(
    actor: Caller, client: Client, email: str | None = None
) -> str | None:
    """Create (or reuse) the client's portal account and email an invitation link.

    Returns the link too, so staff can hand it over another way (in person, by phone), but
    only for an account never used: the link sets the account's password, and once a client
    has used the portal, whoever followed it would read their messages with their clinician,
    the documents shared with them and their invoices, whatever their own role may see. For
    an account already used (a resend, access back on, a new address), the link goes by
    email only, and None is returned. Nor is it returned to someone who may not read
    clinical details (the front desk, where the practice keeps them from it): an account
    never used already opens the messages the client's clinicians wrote to them and the
    documents shared with them, and whoever followed the link would read them.
    """
    existing = await PortalAccount.get_or_none(client_id=client.id)
    # No address given: the account's own (a resend), else the file's. An account moves to
    # another address only when one is typed for it, never because the file's changed.
    address = normalize_email(email or (existing.email if existing else "") or client.email or "")
    if not address or "@" not in address:
        raise ValidationFailed(
            _("The client needs an email address for a portal account."),
            {"email": _("Enter a valid email address.")},
        )
    moved_from = (
        existing.email
        if existing is not None and existing.activated_at is not None and existing.email != address
        else None
    )
    if moved_from is not None and actor.role is not StaffRole.OWNER:
        # The invitation sets the password of an account the client has used: sent to
        # another address, whoever reads that inbox (the colleague who typed their own)
        # signs in as the client and reads their messages with their clinician, the
        # documents shared with them and their invoices. Moving it is the owner's call.
        raise ValidationFailed(
            _(
                "This client already uses the portal as %(email)s. Only an owner of the "
                "practice can move the account to another address."
            )
            % {"email": moved_from},
            {"email": _("Only an owner can change the address of an account in use.")},
        )
    clash = await PortalAccount.get_or_none(email=address)
    if clash is not None and (existing is None or clash.id != existing.id):
        raise ValidationFailed(
            _("This email is already used by another portal account."),
            {"email": _("This email is already used by another portal account.")},
        )
    now = datetime.now(UTC)
    async with atomic():
        if existing is None:
            account = await PortalAccount.create(client=client, email=address, invited_at=now)
        else:
            account = existing
            # Back after portal access was switched off, or to another address: a fresh
            # start. Whoever knew the old password, held a reset link or the calendar feed's
            # address (the ex-partner the practice switched the access off for) gets nothing
            # back; the client sets a new password through this invitation. A resend to the
            # same address of a live account changes nothing else.
            restart = not account.is_active or account.email != address
            account.email = address
            account.invited_at = now
            account.is_active = True
            fields = ["email", "invited_at", "is_active"]
            if restart:
                account.password_hash = None
                account.calendar_token = None
                fields += ["password_hash", "calendar_token"]
                await _end_access(account)
            await account.save(update_fields=fields)
        account.client = client
        token = await _issue_token(
            Realm.PORTAL,
            TokenPurpose.INVITE,
            account,
            timedelta(days=get_settings().invite_token_days),
        )
        link = _link(Realm.PORTAL, TokenPurpose.INVITE, token)
        await queue_email(
            address,
            _("Your secure client portal"),
            _(
                "Hello %(name)s,\n\nYour practice invites you to its secure client portal, "
                "where you can message your clinician and see your appointments.\n\n"
                "Create your password here:\n%(link)s"
            )
            % {"name": client.first_name, "link": link},
            purpose="portal_invitation",
            client_id=client.id,
            practice_id=actor.practice_id,
        )
        if moved_from is not None:
            # The client hears of it at the address they used: if they did not ask for it,
            # they can call the practice before anyone follows the link.
            await queue_email(
                moved_from,
                _("Your secure client portal has a new address"),
                _(
                    "Hello %(name)s,\n\nYour practice moved your client portal account to "
                    "another email address, where an invitation to choose a new password "
                    "was sent. Your old password no longer works.\n\nIf you did not ask "
                    "for this, contact your practice now."
                )
                % {"name": client.first_name},
                purpose="portal_moved",
                client_id=client.id,
                practice_id=actor.practice_id,
            )
        await audit.record(
            actor,
            "portal.invited",
            object_type="portal_account",
            object_id=account.id,
            client_id=client.id,
            detail={"from": moved_from, "to": address} if moved_from else None,
        )
    if account.activated_at is not None:
        return None
    practice = await Practice.get(id=client.practice_id)  # type: ignore[attr-defined]
    return link if can_see_clinical(actor, practice) else None


async def do_set_portal_active(actor: Caller, client: Client, active: bool) -> PortalAccount:
    """Switch a client's portal access off (every session, link and feed ends at once), or
    back on.

    Back on is a fresh start, as an invitation after a switch-off is: the old password does
    not come back, and an invitation to choose a new one goes to the account's address. The
    reason to switch it off may be who knew that password (an ex-partner, a parent once the
    client came of age); the practice cannot know, so it never restores it.
    """
    account = await PortalAccount.get_or_none(client_id=client.id)
    if account is None:
        raise NotFound(_("This client has no portal account."))
    if account.is_active == active:
        return account
    async with atomic():
        if active:
            await do_invite_to_portal(actor, client)
            await account.refresh_from_db()
        else:
            account.is_active = False
            await account.save(update_fields=["is_active"])
            await _end_access(account)
        await audit.record(
            actor,
            "portal.enabled" if active else "portal.disabled",
            object_type="portal_account",
            object_id=account.id,
            client_id=client.id,
        )
    return account
