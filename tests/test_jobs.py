"""The durable job queue: scheduled in the caller's transaction, run once, retried, shared."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from models.jobs import Job, JobStatus
from models.notifications import OutboxMessage, OutboxStatus
from server import jobs
from server.db import atomic
from server.quiet_hours import next_allowed
from tests.conftest import Factory

NOW = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)

# Test handlers write a real row (an outbox message) so the tests can count effects.
_flaky_failures: dict[int, int] = {}
_gate: dict[str, asyncio.Event] = {}


@jobs.handler("test.write")
async def write(job: Job) -> None:
    await OutboxMessage.create(to=job.payload.get("to", "x@example.org"), body_text=str(job.id))


@jobs.handler("test.flaky")
async def flaky(job: Job) -> None:
    await OutboxMessage.create(to="flaky@example.org", body_text=str(job.id))
    if _flaky_failures.get(job.id, 0) > 0:
        _flaky_failures[job.id] -= 1
        raise RuntimeError("provider unavailable")


@jobs.handler("test.quiet")
async def quiet(job: Job) -> None:
    until = datetime.fromisoformat(job.payload["until"])
    if datetime.now(UTC) < until and not job.payload.get("go"):
        raise jobs.Defer(until)
    await OutboxMessage.create(to="quiet@example.org", body_text=str(job.id))


@jobs.handler("test.slow")
async def slow(job: Job) -> None:
    await OutboxMessage.create(to="slow@example.org", body_text=str(job.id))
    await _gate["slow"].wait()


async def effects(to: str | None = None) -> int:
    qs = OutboxMessage.all() if to is None else OutboxMessage.filter(to=to)
    return await qs.count()


async def test_a_job_exists_only_if_the_change_commits(db: None) -> None:
    with pytest.raises(RuntimeError, match="outside atomic"):
        await jobs.schedule("test.write", NOW)
    with pytest.raises(ZeroDivisionError):
        async with atomic():
            await jobs.schedule("test.write", NOW, key="rolled-back")
            1 / 0  # noqa: B018 - the caller's change fails after scheduling
    assert await Job.all().count() == 0
    async with atomic():
        await jobs.schedule("test.write", NOW, key="kept")
    assert await Job.filter(key="kept", status=JobStatus.PENDING).count() == 1


async def test_due_jobs_run_once_and_not_before_their_time(db: None) -> None:
    async with atomic():
        await jobs.schedule("test.write", NOW, {"to": "now@example.org"})
        await jobs.schedule("test.write", NOW + timedelta(hours=1), {"to": "later@example.org"})
    assert await jobs.run_due("w1", now=NOW) == 1
    assert await jobs.run_due("w1", now=NOW) == 0
    assert await effects("now@example.org") == 1
    assert await effects("later@example.org") == 0
    assert await Job.filter(status=JobStatus.DONE).count() == 1
    assert await jobs.run_due("w1", now=NOW + timedelta(hours=1)) == 1
    assert await effects("later@example.org") == 1
    assert await jobs.run_due("w1", now=NOW + timedelta(days=1)) == 0


async def test_the_same_key_moves_one_job_and_done_work_is_not_redone(db: None) -> None:
    async with atomic():
        await jobs.schedule("test.write", NOW + timedelta(hours=2), {"to": "a@x.org"}, key="k")
    async with atomic():  # the appointment moved: the reminder moves with it
        await jobs.schedule("test.write", NOW + timedelta(hours=1), {"to": "b@x.org"}, key="k")
    assert await Job.all().count() == 1
    assert await jobs.run_due("w", now=NOW + timedelta(hours=1)) == 1
    assert await effects("b@x.org") == 1 and await effects("a@x.org") == 0
    async with atomic():  # scheduled again after it ran: not sent twice
        again = await jobs.schedule("test.write", NOW + timedelta(hours=3), key="k")
    assert again.status == JobStatus.DONE
    assert await jobs.run_due("w", now=NOW + timedelta(hours=4)) == 0
    async with atomic():
        await jobs.schedule("test.write", NOW + timedelta(hours=5), key="k", again_if_done=True)
    assert await jobs.run_due("w", now=NOW + timedelta(hours=5)) == 1
    assert await effects() == 2


async def test_cancelled_jobs_never_run_and_can_be_revived(db: None) -> None:
    async with atomic():
        await jobs.schedule("test.write", NOW, key="reminder:12:c:1:email")
        await jobs.schedule("test.write", NOW, key="reminder:12:c:1:sms")
        await jobs.schedule("test.write", NOW, key="reminder:13:c:1:email")
    async with atomic():
        assert await jobs.cancel_prefix("reminder:12:") == 2
    assert await jobs.run_due("w", now=NOW) == 1
    assert await effects() == 1
    async with atomic():
        assert await jobs.cancel("reminder:13:c:1:email") == 0  # already done
        await jobs.schedule("test.write", NOW, key="reminder:12:c:1:sms")  # booked again
    assert await jobs.run_due("w", now=NOW) == 1
    assert await effects() == 2


async def test_scheduling_unless_waiting_adds_new_keys_revives_cancelled_and_leaves_the_rest(
    db: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(jobs, "SCHEDULE_ROWS", 2)  # several statements, as for many keys
    later = NOW + timedelta(hours=1)
    async with atomic():
        await jobs.schedule("test.write", NOW, {"to": "waiting@x.org"}, key="waiting")
        await jobs.schedule("test.write", NOW, {"to": "cancelled@x.org"}, key="cancelled")
        await jobs.schedule("test.write", NOW, {"to": "done@x.org"}, key="done")
        await jobs.cancel("cancelled")
    await Job.filter(key="done").update(status=JobStatus.DONE, attempts=1)
    with pytest.raises(RuntimeError, match="outside atomic"):
        await jobs.schedule_unless_waiting("test.write", [jobs.KeyedJob("new", later, {})])
    async with atomic():
        await jobs.schedule_unless_waiting(
            "test.write",
            [
                jobs.KeyedJob(key, later, {"to": f"{key}-again@x.org", "n": None}, practice_id=7)
                for key in ("new", "waiting", "cancelled", "done")
            ]
            # The same key twice: the first counts.
            + [jobs.KeyedJob("new", NOW, {"to": "second@x.org"})],
        )
    by_key = {job.key: job for job in await Job.all()}
    assert len(by_key) == 4
    # New and revived: the given time, payload and practice, pending, as schedule() leaves them.
    for key in ("new", "cancelled"):
        job = by_key[key]
        assert (job.status, job.run_at, job.practice_id, job.attempts) == (
            JobStatus.PENDING,
            later,
            7,
            0,
        )
        assert job.payload == {"to": f"{key}-again@x.org", "n": None}
        assert job.run_at.tzinfo is not None and job.kind == "test.write"
    # Waiting and done: untouched.
    assert (by_key["waiting"].status, by_key["waiting"].run_at) == (JobStatus.PENDING, NOW)
    assert by_key["waiting"].payload == {"to": "waiting@x.org"}
    assert (by_key["done"].status, by_key["done"].attempts) == (JobStatus.DONE, 1)
    # And the worker runs them like any other job.
    assert await jobs.run_due("w", now=later) == 3
    assert sorted(m.to for m in await OutboxMessage.all()) == [
        "cancelled-again@x.org",
        "new-again@x.org",
        "waiting@x.org",
    ]
    # Nothing scheduled in a rolled-back transaction.
    with pytest.raises(ZeroDivisionError):
        async with atomic():
            await jobs.schedule_unless_waiting("test.write", [jobs.KeyedJob("gone", later, {})])
            1 / 0  # noqa: B018
    assert not await Job.filter(key="gone").exists()


async def test_failures_retry_with_backoff_then_fail_visibly(
    db: None, caplog: pytest.LogCaptureFixture
) -> None:
    async with atomic():
        job = await jobs.schedule("test.flaky", NOW, max_attempts=3)
    _flaky_failures[job.id] = 5
    caplog.set_level(logging.WARNING, logger="cabinet.jobs")
    assert await jobs.run_due("w", now=NOW) == 1
    job = await Job.get(id=job.id)
    # The failed attempt's writes were rolled back with it.
    assert await effects() == 0
    assert job.status == JobStatus.PENDING and job.attempts == 1
    assert job.run_at == NOW + timedelta(seconds=30)
    assert "provider unavailable" in job.last_error
    assert await jobs.run_due("w", now=NOW + timedelta(seconds=29)) == 0
    assert await jobs.run_due("w", now=NOW + timedelta(seconds=30)) == 1
    job = await Job.get(id=job.id)
    assert job.run_at == NOW + timedelta(seconds=30) + timedelta(minutes=1)
    assert await jobs.run_due("w", now=job.run_at) == 1
    job = await Job.get(id=job.id)
    assert job.status == JobStatus.FAILED and job.attempts == 3
    assert await jobs.run_due("w", now=NOW + timedelta(days=1)) == 0
    assert await effects() == 0
    assert any("failed for good" in r.message for r in caplog.records)
    assert any("retrying in 30s" in r.message for r in caplog.records)


async def test_a_retry_that_succeeds_writes_once(db: None) -> None:
    async with atomic():
        job = await jobs.schedule("test.flaky", NOW)
    _flaky_failures[job.id] = 1
    await jobs.run_due("w", now=NOW)
    await jobs.run_due("w", now=NOW + timedelta(minutes=5))
    assert (await Job.get(id=job.id)).status == JobStatus.DONE
    assert await effects() == 1


async def test_a_deferred_job_waits_without_using_an_attempt(db: None) -> None:
    until = datetime.now(UTC) + timedelta(hours=9)
    async with atomic():
        job = await jobs.schedule("test.quiet", NOW, {"until": until.isoformat()}, max_attempts=1)
    await jobs.run_due("w", now=NOW)
    job = await Job.get(id=job.id)
    assert job.status == JobStatus.PENDING and job.attempts == 0 and job.run_at == until
    assert await effects() == 0
    job.payload = {**job.payload, "go": True}
    await job.save()
    await jobs.run_due("w", now=until)
    assert (await Job.get(id=job.id)).status == JobStatus.DONE
    assert await effects() == 1


async def test_a_dead_workers_job_is_taken_over_after_its_lease_and_done_once(db: None) -> None:
    async with atomic():
        job = await jobs.schedule("test.write", NOW)
    # Worker A claims the job and dies before running it (its process was killed).
    assert await jobs.claim("A", NOW, 10) == [job.id]
    assert await jobs.run_due("B", now=NOW + timedelta(seconds=10)) == 0  # A's lease holds
    later = NOW + jobs.LEASE + timedelta(seconds=1)
    assert await jobs.run_due("B", now=later) == 1
    assert await effects() == 1
    # A comes back (it was only paused): the job is no longer its own, nothing happens.
    await jobs._run_one(job.id, "A", later)
    assert await effects() == 1
    assert (await Job.get(id=job.id)).status == JobStatus.DONE


async def test_a_job_killed_mid_run_leaves_nothing_and_runs_again(db: None) -> None:
    async with atomic():
        job = await jobs.schedule("test.slow", NOW)
    _gate["slow"] = asyncio.Event()
    claimed = await jobs.claim("A", NOW, 10)
    task = asyncio.create_task(jobs._run_one(claimed[0], "A", NOW))
    await asyncio.sleep(0.2)  # the handler has written its row and waits
    task.cancel()  # the worker dies mid-job: its transaction never commits
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await effects() == 0
    _gate["slow"].set()
    assert await jobs.run_due("B", now=NOW + jobs.LEASE + timedelta(seconds=1)) == 1
    assert await effects() == 1
    assert (await Job.get(id=job.id)).attempts == 2


async def test_a_job_moved_while_it_runs_runs_again_with_the_new_details(db: None) -> None:
    async with atomic():
        job = await jobs.schedule("test.write", NOW, {"to": "old@x.org"}, key="m")
    await jobs.claim("A", NOW, 10)
    # The appointment is moved while worker A holds the job (before A locks it).
    async with atomic():
        await jobs.schedule("test.write", NOW, {"to": "new@x.org"}, key="m")
    await jobs._run_one(job.id, "A", NOW)  # A's claim no longer matches
    assert await effects() == 0
    assert await jobs.run_due("B", now=NOW) == 1
    assert await effects("new@x.org") == 1 and await effects("old@x.org") == 0


async def test_concurrent_workers_share_the_queue_without_doing_anything_twice(db: None) -> None:
    count = 120
    async with atomic():
        for i in range(count):
            await jobs.schedule("test.write", NOW, {"to": f"{i}@x.org"}, key=f"c:{i}")

    async def worker(name: str) -> int:
        done = 0
        while n := await jobs.run_due(name, now=NOW, limit=7):
            done += n
        return done

    results = await asyncio.gather(*(worker(f"w{i}") for i in range(3)))
    assert sum(results) == count
    assert await Job.filter(status=JobStatus.DONE).count() == count
    assert await effects() == count
    rows = await OutboxMessage.all().values_list("to", flat=True)
    assert len(set(rows)) == count


async def test_an_unknown_kind_fails_at_once(db: None) -> None:
    async with atomic():
        job = await jobs.schedule("nobody.handles.this", NOW)
    await jobs.run_due("w", now=NOW)
    job = await Job.get(id=job.id)
    assert job.status == JobStatus.FAILED and "no handler" in job.last_error


PARIS = ZoneInfo("Europe/Paris")


@pytest.mark.parametrize(
    ("local", "expected"),
    [
        (datetime(2026, 12, 1, 20, 59), datetime(2026, 12, 1, 20, 59)),  # before: now
        (datetime(2026, 12, 1, 21, 0), datetime(2026, 12, 2, 8, 0)),  # evening: tomorrow 8:00
        (datetime(2026, 12, 1, 23, 30), datetime(2026, 12, 2, 8, 0)),
        (datetime(2026, 12, 2, 3, 0), datetime(2026, 12, 2, 8, 0)),  # night: this morning
        (datetime(2026, 12, 2, 8, 0), datetime(2026, 12, 2, 8, 0)),  # the end is allowed
        (datetime(2027, 3, 27, 22, 0), datetime(2027, 3, 28, 8, 0)),  # over the DST change
    ],
)
def test_quiet_hours_hold_texts_until_the_morning(local: datetime, expected: datetime) -> None:
    at = local.replace(tzinfo=PARIS).astimezone(UTC)
    assert next_allowed(at, PARIS).astimezone(PARIS).replace(tzinfo=None) == expected


def test_quiet_hours_within_a_day_and_none() -> None:
    lunch = datetime(2026, 12, 1, 12, 30, tzinfo=PARIS)
    assert next_allowed(lunch, PARIS, time(12), time(14)) == datetime(
        2026, 12, 1, 14, 0, tzinfo=PARIS
    )
    assert next_allowed(lunch, PARIS, time(9), time(9)) == lunch


@pytest.mark.parametrize(
    ("at", "expected"),
    [
        # 25 October 2026: 03:00 summer time is 02:00 again. Quiet until 02:30.
        (datetime(2026, 10, 24, 23, 50, tzinfo=UTC), datetime(2026, 10, 25, 0, 30, tzinfo=UTC)),
        # 02:15 of the second pass (winter time) waits for the second 02:30, not the first,
        # which had passed: the text went out at once, inside quiet hours.
        (datetime(2026, 10, 25, 1, 15, tzinfo=UTC), datetime(2026, 10, 25, 1, 30, tzinfo=UTC)),
        (datetime(2026, 10, 25, 1, 40, tzinfo=UTC), datetime(2026, 10, 25, 1, 40, tzinfo=UTC)),
    ],
)
def test_quiet_hours_that_end_in_the_hour_that_repeats(at: datetime, expected: datetime) -> None:
    allowed = next_allowed(at, PARIS, time(22), time(2, 30))
    assert allowed == expected and allowed >= at


async def test_one_failing_worker_stage_does_not_stop_the_others(
    make: Factory, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A measure schedule whose sending raised on every tick used to skip the SMS and forms
    stages that come after it in the tick: no text went out at all."""
    from server import worker

    practice = await make.practice()
    async with atomic():
        text = await OutboxMessage.create(
            channel="sms",
            to="+33611111111",
            body_text="hello",
            practice_id=practice.id,
            next_attempt_at=datetime.now(UTC) - timedelta(seconds=1),
        )
    stop = asyncio.Event()
    forms_ran = asyncio.Event()

    async def poisoned_measures(now: datetime | None = None) -> int:
        raise RuntimeError("a bad measure schedule")

    async def forms(now: datetime | None = None) -> int:
        forms_ran.set()
        stop.set()
        return 0

    monkeypatch.setattr(worker, "send_due_measures", poisoned_measures)
    monkeypatch.setattr(worker, "send_due_forms", forms)
    with caplog.at_level(logging.ERROR, logger="cabinet.worker"):
        await asyncio.wait_for(worker.run_worker(stop, interval=0.01), timeout=10)
    assert forms_ran.is_set()
    assert (await OutboxMessage.get(id=text.id)).status is OutboxStatus.SENT
    assert "worker stage measures failed" in caplog.text
