"""Clients: the people the practice serves. The client-file issue grows this module."""

from __future__ import annotations

import unicodedata
from enum import StrEnum

from tortoise import fields

from models.accounts import Practice, StaffUser
from models.base import Timestamped


def search_key(*parts: str) -> str:
    """Lower-case and accent-free, so a search for "helene" matches "Hélène"."""
    text = unicodedata.normalize("NFKD", " ".join(p for p in parts if p))
    return " ".join("".join(c for c in text if not unicodedata.combining(c)).casefold().split())


class ClientStatus(StrEnum):
    LEAD = "lead"
    ACTIVE = "active"
    ARCHIVED = "archived"


class PaymentTerms(StrEnum):
    PER_SESSION = "per_session"
    MONTHLY = "monthly"


class Tag(Timestamped):
    # A practice's own labels for clients ("waiting list", "couple", "EMDR"...).
    id = fields.IntField(primary_key=True)
    practice: fields.ForeignKeyRelation[Practice] = fields.ForeignKeyField(
        "models.Practice", related_name="tags", on_delete=fields.RESTRICT
    )
    name = fields.CharField(max_length=60)
    color = fields.CharField(max_length=7, default="#64748b")

    class Meta:
        table = "tag"
        unique_together = (("practice", "name"),)


class Client(Timestamped):
    id = fields.IntField(primary_key=True)
    practice: fields.ForeignKeyRelation[Practice] = fields.ForeignKeyField(
        "models.Practice", related_name="clients", on_delete=fields.RESTRICT
    )
    first_name = fields.CharField(max_length=100)
    middle_name = fields.CharField(max_length=100, default="", db_default="")
    last_name = fields.CharField(max_length=100)
    preferred_name = fields.CharField(max_length=100, default="", db_default="")
    # Lower-case, accent-free "first middle last preferred": what the client search matches,
    # so "helene" finds "Hélène" on SQLite and PostgreSQL alike, through one index.
    search_name = fields.CharField(max_length=420, default="", db_default="", db_index=True)
    # The primary email, kept in step with the client's email list (invitations use it).
    email = fields.CharField(max_length=254, null=True)
    phone = fields.CharField(max_length=40, null=True)
    date_of_birth = fields.DateField(null=True)
    status = fields.CharEnumField(ClientStatus, max_length=12, default=ClientStatus.ACTIVE)
    therapist: fields.ForeignKeyNullableRelation[StaffUser] = fields.ForeignKeyField(
        "models.StaffUser", related_name="caseload", null=True, on_delete=fields.SET_NULL
    )
    locale = fields.CharField(max_length=8, null=True)
    # New columns carry a db_default too: adding a NOT NULL column to a table that already has
    # rows needs a default the database itself knows.
    tags: fields.ManyToManyRelation[Tag] = fields.ManyToManyField(
        "models.Tag", related_name="clients", through="client_tag"
    )
    # Address
    address_line1 = fields.CharField(max_length=200, default="", db_default="")
    address_line2 = fields.CharField(max_length=200, default="", db_default="")
    postal_code = fields.CharField(max_length=20, default="", db_default="")
    city = fields.CharField(max_length=100, default="", db_default="")
    country = fields.CharField(max_length=100, default="", db_default="")
    # Reminders: hours before a session, or None for off (the default for a new client).
    reminder_email_hours = fields.SmallIntField(null=True)
    reminder_sms_hours = fields.SmallIntField(null=True)
    # Clinical details: never shown to the client, never on anything sent.
    referral = fields.CharField(max_length=300, default="", db_default="")
    diagnosis_keywords: list[str] | None = fields.JSONField(null=True)  # type: ignore[assignment]
    clinical_comments = fields.TextField(default="", db_default="")
    # Account details
    payment_terms = fields.CharEnumField(
        PaymentTerms,
        max_length=12,
        default=PaymentTerms.PER_SESSION,
        db_default=PaymentTerms.PER_SESSION,
    )
    health_id = fields.CharField(max_length=60, default="", db_default="")
    insurance_company = fields.CharField(max_length=200, default="", db_default="")
    account_comments = fields.TextField(default="", db_default="")
    # Clinical records are never hard-deleted.
    deleted_at = fields.DatetimeField(null=True)

    # The new-client form's own key (server/actions/retries.py): sent twice, it finds this
    # file instead of opening a second one for the same person.
    request_key = fields.CharField(max_length=64, null=True)

    class Meta:
        table = "client"
        # The client list's order: paging through 20,000 clients walks this index.
        indexes = (("practice_id", "last_name", "first_name", "id"),)
        unique_together = (("practice", "request_key"),)

    @property
    def full_name(self) -> str:
        return f"{self.first_name} {self.last_name}"


class PhoneNumber(Timestamped):
    # A phone of a client or of an alternate contact (exactly one of the two is set).
    id = fields.IntField(primary_key=True)
    client: fields.ForeignKeyNullableRelation[Client] = fields.ForeignKeyField(
        "models.Client", related_name="phones", null=True, on_delete=fields.RESTRICT
    )
    alternate_contact: fields.ForeignKeyNullableRelation[AlternateContact] = fields.ForeignKeyField(
        "models.AlternateContact", related_name="phones", null=True, on_delete=fields.RESTRICT
    )
    number = fields.CharField(max_length=40)
    label = fields.CharField(max_length=40, default="")
    is_primary = fields.BooleanField(default=False)
    # The one number SMS reminders go to; none marked means no SMS.
    for_sms = fields.BooleanField(default=False)

    class Meta:
        table = "phone_number"


class EmailAddress(Timestamped):
    id = fields.IntField(primary_key=True)
    client: fields.ForeignKeyRelation[Client] = fields.ForeignKeyField(
        "models.Client", related_name="emails", on_delete=fields.RESTRICT
    )
    address = fields.CharField(max_length=254)
    label = fields.CharField(max_length=40, default="")
    is_primary = fields.BooleanField(default=False)

    class Meta:
        table = "email_address"


class ContactKind(StrEnum):
    PARENT = "parent"
    GUARDIAN = "guardian"
    TEACHER = "teacher"
    LAWYER = "lawyer"
    SOCIAL_WORKER = "social_worker"
    DOCTOR = "doctor"
    REFERRER = "referrer"
    OTHER = "other"


class Contact(Timestamped):
    # Someone around clients who is not a client: no file, no tags, no status.
    id = fields.IntField(primary_key=True)
    practice: fields.ForeignKeyRelation[Practice] = fields.ForeignKeyField(
        "models.Practice", related_name="contacts", on_delete=fields.RESTRICT
    )
    kind = fields.CharEnumField(ContactKind, max_length=16, default=ContactKind.OTHER)
    first_name = fields.CharField(max_length=100)
    last_name = fields.CharField(max_length=100)
    search_name = fields.CharField(max_length=220, default="", db_index=True)
    organisation = fields.CharField(max_length=200, default="")
    email = fields.CharField(max_length=254, default="")
    phone = fields.CharField(max_length=40, default="")
    address = fields.TextField(default="")
    notes = fields.TextField(default="")
    deleted_at = fields.DatetimeField(null=True)

    class Meta:
        table = "contact"

    @property
    def full_name(self) -> str:
        return f"{self.first_name} {self.last_name}"


class AlternateContact(Timestamped):
    # A person in a client's circle of care who is not a client of the practice.
    id = fields.IntField(primary_key=True)
    client: fields.ForeignKeyRelation[Client] = fields.ForeignKeyField(
        "models.Client", related_name="alternate_contacts", on_delete=fields.RESTRICT
    )
    # When the person already has a contact record (a family doctor known to the practice).
    contact: fields.ForeignKeyNullableRelation[Contact] = fields.ForeignKeyField(
        "models.Contact", related_name="circles", null=True, on_delete=fields.SET_NULL
    )
    first_name = fields.CharField(max_length=100)
    middle_name = fields.CharField(max_length=100, default="")
    last_name = fields.CharField(max_length=100)
    relationship = fields.CharField(max_length=60, default="")
    date_of_birth = fields.DateField(null=True)
    email = fields.CharField(max_length=254, default="")
    reminder_email_hours = fields.SmallIntField(null=True)
    reminder_sms_hours = fields.SmallIntField(null=True)
    is_emergency = fields.BooleanField(default=False)
    address_line1 = fields.CharField(max_length=200, default="")
    address_line2 = fields.CharField(max_length=200, default="")
    postal_code = fields.CharField(max_length=20, default="")
    city = fields.CharField(max_length=100, default="")
    country = fields.CharField(max_length=100, default="")
    deleted_at = fields.DatetimeField(null=True)
    # The add form's own key: sent twice (a double click, a retry), it adds the person once.
    request_key = fields.CharField(max_length=64, null=True)

    class Meta:
        table = "alternate_contact"
        unique_together = (("client", "request_key"),)

    @property
    def full_name(self) -> str:
        return " ".join(p for p in (self.first_name, self.middle_name, self.last_name) if p)


class PaymentMethodKind(StrEnum):
    CARD = "card"
    TRANSFER = "transfer"
    DIRECT_DEBIT = "direct_debit"
    CHEQUE = "cheque"
    CASH = "cash"
    INSURANCE = "insurance"
    OTHER = "other"


class PaymentMethod(Timestamped):
    # A description of how the client pays ("Visa, expires 04/28"): never a card number.
    id = fields.IntField(primary_key=True)
    client: fields.ForeignKeyRelation[Client] = fields.ForeignKeyField(
        "models.Client", related_name="payment_methods", on_delete=fields.RESTRICT
    )
    kind = fields.CharEnumField(PaymentMethodKind, max_length=16)
    description = fields.CharField(max_length=200)
    deleted_at = fields.DatetimeField(null=True)

    class Meta:
        table = "payment_method"


class Document(Timestamped):
    # A file on the client's record. The bytes live in the data directory under storage_key.
    id = fields.IntField(primary_key=True)
    client: fields.ForeignKeyRelation[Client] = fields.ForeignKeyField(
        "models.Client", related_name="documents", on_delete=fields.RESTRICT
    )
    name = fields.CharField(max_length=255)
    # Detected from the content when uploaded, never taken from the file name.
    content_type = fields.CharField(max_length=100)
    size = fields.IntField()
    sha256 = fields.CharField(max_length=64)
    storage_key = fields.CharField(max_length=200, unique=True)
    shared_with_client = fields.BooleanField(default=False)
    # Clinical content (a submitted intake form, a report): shown only to those who may read
    # clinical details (server/access.py can_see_clinical), like the clinical tab.
    clinical = fields.BooleanField(default=False)
    uploaded_by: fields.ForeignKeyNullableRelation[StaffUser] = fields.ForeignKeyField(
        "models.StaffUser", related_name="documents", null=True, on_delete=fields.SET_NULL
    )
    deleted_at = fields.DatetimeField(null=True)
    # The upload form's own key (server/actions/retries.py): sent again after an answer
    # that never came, it finds this document instead of filing the same one twice.
    request_key = fields.CharField(max_length=64, null=True)

    class Meta:
        table = "document"
        unique_together = (("client", "request_key"),)


class Relationship(StrEnum):
    PARENT = "parent"
    CHILD = "child"
    SPOUSE = "spouse"
    SIBLING = "sibling"
    GUARDIAN = "guardian"
    WARD = "ward"
    OTHER = "other"


INVERSE_RELATIONSHIP = {
    Relationship.PARENT: Relationship.CHILD,
    Relationship.CHILD: Relationship.PARENT,
    Relationship.SPOUSE: Relationship.SPOUSE,
    Relationship.SIBLING: Relationship.SIBLING,
    Relationship.GUARDIAN: Relationship.WARD,
    Relationship.WARD: Relationship.GUARDIAN,
    Relationship.OTHER: Relationship.OTHER,
}


class LinkedAccount(Timestamped):
    # A link from a client to another client of the practice ("linked account" in the circle
    # of care). Links are stored both ways, each side with its own relationship.
    id = fields.IntField(primary_key=True)
    client: fields.ForeignKeyRelation[Client] = fields.ForeignKeyField(
        "models.Client", related_name="links", on_delete=fields.RESTRICT
    )
    linked_client: fields.ForeignKeyRelation[Client] = fields.ForeignKeyField(
        "models.Client", related_name="linked_from", on_delete=fields.RESTRICT
    )
    relationship = fields.CharEnumField(Relationship, max_length=10)
    deleted_at = fields.DatetimeField(null=True)

    class Meta:
        table = "linked_account"
        unique_together = (("client", "linked_client"),)
