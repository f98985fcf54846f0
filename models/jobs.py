"""Scheduled background work, stored in the database.

A job is written in the same transaction as the change that causes it (an appointment
booked, a message sent), so a committed change never loses its job and a rolled-back one
never runs anything. Workers claim due jobs with a lease (``locked_until``); a worker that
dies mid-job leaves the lease to run out, and the job is claimed again.
"""

from __future__ import annotations

from enum import StrEnum

from tortoise import fields

from models.base import Timestamped


class JobStatus(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"


class Job(Timestamped):
    id = fields.BigIntField(primary_key=True)
    # The handler's name, e.g. "reminder.send"; see server/jobs.py for the registry.
    kind = fields.CharField(max_length=60)
    # Identifies the work itself ("reminder:appointment:12:client:7:sms"), so scheduling
    # the same work twice updates one job instead of running it twice.
    key = fields.CharField(max_length=200, null=True, unique=True)
    payload = fields.JSONField(default=dict)
    practice_id = fields.IntField(null=True)
    run_at = fields.DatetimeField()
    status = fields.CharEnumField(JobStatus, max_length=10, default=JobStatus.PENDING)
    attempts = fields.IntField(default=0)
    max_attempts = fields.IntField(default=6)
    locked_until = fields.DatetimeField(null=True)
    locked_by = fields.CharField(max_length=80, default="")
    finished_at = fields.DatetimeField(null=True)
    last_error = fields.TextField(default="")

    class Meta:
        table = "job"
        indexes = (("status", "run_at"),)
