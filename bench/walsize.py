"""What an SQLite commit costs with a WAL that is cut back after each checkpoint, and with
one that keeps its size (``journal_size_limit``, server/db.py's ``WAL_SIZE_LIMIT``).

A commit in WAL mode with ``synchronous=FULL`` appends its pages to the WAL and syncs it
(Cabinet commits with ``NORMAL`` and then syncs the WAL itself, server/sqlite.py: the same
writes and the same sync). When the WAL was truncated at the last checkpoint, the append
grows the file, and the sync must also record the new size in the file system's journal;
when it kept its size, the commit overwrites blocks that exist. This times commits of three
small rows (a message's share of pages, roughly) with a short pause between them,
alternating the two settings::

    .venv/bin/python bench/walsize.py                 # in a temporary folder
    .venv/bin/python bench/walsize.py --dir /var/lib/cabinet --rounds 6

Run it on the disk the database lives on: the difference is the file system's.
"""

from __future__ import annotations

import argparse
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path

TRUNCATED = 16384  # Tortoise's default
KEPT = 8 * 1024 * 1024  # server/db.py's WAL_SIZE_LIMIT


def commits(folder: Path, limit: int, count: int, pause: float) -> tuple[list[float], int]:
    """Commit times in seconds (the first sixth left out: the WAL's first growth), and the
    WAL's largest size in KiB."""
    path = folder / f"walsize-{limit}.sqlite3"
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute(f"PRAGMA journal_size_limit={limit}")
        conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, body TEXT, k INTEGER)")
        conn.execute("CREATE INDEX t_k ON t (k)")
        times: list[float] = []
        largest = 0
        for i in range(count):
            conn.execute("BEGIN")
            for _ in range(3):
                conn.execute("INSERT INTO t (body, k) VALUES (?, ?)", ("x" * 300, i * 7 % 1000))
            start = time.perf_counter()
            conn.execute("COMMIT")
            times.append(time.perf_counter() - start)
            largest = max(largest, Path(f"{path}-wal").stat().st_size // 1024)
            time.sleep(pause)
        return times[count // 6 :], largest
    finally:
        conn.close()
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--dir", type=Path, default=None, help="where to write (default: a temp dir)")
    p.add_argument("--commits", type=int, default=3000, help="commits per run (3000)")
    p.add_argument("--rounds", type=int, default=4, help="runs of each setting, alternating")
    p.add_argument("--pause", type=float, default=0.002, help="seconds between commits")
    args = p.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir) as folder:
        print(f"{'journal_size_limit':>20}  {'p50 ms':>7}  {'mean ms':>7}  {'p90 ms':>7}  WAL max")
        for _ in range(args.rounds):
            for limit in (TRUNCATED, KEPT):
                times, largest = commits(Path(folder), limit, args.commits, args.pause)
                times.sort()
                print(
                    f"{limit:>20}  {statistics.median(times) * 1e3:7.3f}  "
                    f"{statistics.mean(times) * 1e3:7.3f}  "
                    f"{times[int(len(times) * 0.9)] * 1e3:7.3f}  {largest} KiB"
                )


if __name__ == "__main__":
    main()
