"""bench/worker.py measures reminders sent, not jobs that failed.

Until this test it imported the reminders module but not its job handlers
(server/actions/reminder_jobs.py), so every job it timed failed with "no handler" and it
printed a rate of failures. Run small, it must now send one email or SMS per job, and it
stops with the reason when a job fails.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_the_worker_bench_sends_a_reminder_for_every_job_it_times(tmp_path: Path) -> None:
    url = f"sqlite://{tmp_path / 'bench.sqlite3'}"
    run = subprocess.run(
        [
            sys.executable,
            "bench/worker.py",
            "--database-url",
            url,
            "--appointments",
            "200",
            "--scheduled",
            "20",
            "--jobs",
            "60",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    done = re.search(r"worker x1: (\d+) jobs in .* \((\d+) emails and SMS queued\)", run.stdout)
    assert done is not None, run.stdout
    assert done.group(1) == done.group(2) == "60"
