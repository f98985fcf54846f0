"""Clients: the people the practice serves. The client-file issue grows this module."""

from __future__ import annotations

from enum import StrEnum

from tortoise import fields

from models.accounts import Practice, StaffUser
from models.base import Timestamped


class ClientStatus(StrEnum):
    LEAD = "lead"
    ACTIVE = "active"
    ARCHIVED = "archived"


class Client(Timestamped):
    id = fields.IntField(primary_key=True)
    practice: fields.ForeignKeyRelation[Practice] = fields.ForeignKeyField(
        "models.Practice", related_name="clients", on_delete=fields.RESTRICT
    )
    first_name = fields.CharField(max_length=100)
    last_name = fields.CharField(max_length=100)
    email = fields.CharField(max_length=254, null=True)
    phone = fields.CharField(max_length=40, null=True)
    date_of_birth = fields.DateField(null=True)
    status = fields.CharEnumField(ClientStatus, max_length=12, default=ClientStatus.ACTIVE)
    therapist: fields.ForeignKeyNullableRelation[StaffUser] = fields.ForeignKeyField(
        "models.StaffUser", related_name="caseload", null=True, on_delete=fields.SET_NULL
    )
    locale = fields.CharField(max_length=8, null=True)
    # Clinical records are never hard-deleted.
    deleted_at = fields.DatetimeField(null=True)

    class Meta:
        table = "client"

    @property
    def full_name(self) -> str:
        return f"{self.first_name} {self.last_name}"


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
