"""The processes a benchmark run starts, and what /proc says about them.

Everything started here is a child of the benchmark and is stopped by it: uvicorn (the app
or the floor), ``cabinet worker``, a private redis-server on a free port, and a PostgreSQL
database of its own (``cabinet_bench``), created and dropped through asyncpg on the
``postgres`` database. Nothing here touches the ``test`` database or the Redis on 6379.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
PYTHON = sys.executable
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE_KIB = os.sysconf("SC_PAGE_SIZE") // 1024


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


# --- /proc --------------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process, in seconds (0 when it is gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return 0.0
    # After the command name: state is field 3, utime 14 and stime 15 (1-based).
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def rss_kib(pid: int) -> int:
    """VmRSS of a process, from /proc/<pid>/status."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError):
        pass
    return 0


def machine_busy() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot, from /proc/stat."""
    with open("/proc/stat") as f:
        values = [int(v) for v in f.readline().split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    total = sum(values[:8])
    return (total - idle) / CLK_TCK, total / CLK_TCK


def machine_info() -> dict[str, object]:
    model = ""
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    mem_kib = 0
    with contextlib.suppress(OSError), open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                mem_kib = int(line.split()[1])
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "memory_gib": round(mem_kib / 1024 / 1024, 1),
        "kernel": os.uname().release,
        "python": sys.version.split()[0],
        "loadavg_at_start": list(os.getloadavg()),
    }


@dataclass
class CpuMeter:
    """CPU used by groups of processes (and by the machine) between ``start`` and ``stop``.

    Groups may gain processes meanwhile (a database pool opening connections): call
    ``add`` before ``stop``; a process that appeared counts from zero, one that ended
    counts what it had used at ``start``, i.e. nothing after.
    """

    pids: dict[str, list[int]]
    _start: dict[int, float] = field(default_factory=dict)
    _machine: tuple[float, float] = (0.0, 0.0)
    _t0: float = 0.0

    def start(self) -> None:
        self._start = {p: cpu_seconds(p) for pids in self.pids.values() for p in pids}
        self._machine = machine_busy()
        self._t0 = time.monotonic()

    def add(self, group: str, pids: list[int]) -> None:
        known = self.pids.setdefault(group, [])
        known.extend(p for p in pids if p not in known)

    def stop(self) -> dict[str, float]:
        """Percent of one core per group, and ``machine_all_cores`` as percent of all cores."""
        wall = max(time.monotonic() - self._t0, 1e-9)
        busy, total = machine_busy()
        out: dict[str, float] = {}
        for name, pids in self.pids.items():
            used = 0.0
            for p in pids:
                now = cpu_seconds(p)
                before = self._start.get(p, 0.0)
                used += max(now - before, 0.0) if now else 0.0
            out[name] = round(100 * used / wall, 1)
        span = max(total - self._machine[1], 1e-9)
        machine = (busy - self._machine[0]) / span
        ours = sum(out.values())
        out["machine_all_cores"] = round(100 * machine, 1)
        # Whatever else ran meanwhile (other jobs on the machine): figures are only as clean
        # as this is small.
        cores = os.cpu_count() or 1
        out["other_processes"] = round(max(0.0, 100 * machine * cores - ours), 1)
        return out


# --- child processes -----------------------------------------------------------------------


RUNNING: set[Child] = set()


def stop_all() -> None:
    """Stop every child still running (the benchmark's last resort, at exit)."""
    for child in list(RUNNING):
        child.stop(timeout=3)


class Child:
    """A child process with its output in a log file; stopped with SIGTERM, then SIGKILL."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], log_dir: Path) -> None:
        self.name = name
        self.argv = argv
        self.log_path = log_dir / f"{name}.log"
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            argv, cwd=ROOT, env=env, stdout=self._log, stderr=subprocess.STDOUT
        )
        RUNNING.add(self)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self, timeout: float = 8.0) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._log.close()
        RUNNING.discard(self)

    def tail(self, lines: int = 30) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        return ""


def wait_http(url: str, child: Child, timeout: float = 120.0) -> None:
    """Wait until ``url`` answers 200; on failure the child is stopped and the error raised."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not child.alive():
            child.stop()
            raise RuntimeError(f"{child.name} exited:\n{child.tail()}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=1.0).status_code == 200:
                return
        time.sleep(0.1)
    child.stop()
    raise RuntimeError(f"{child.name} did not answer {url} within {timeout:.0f} s:\n{child.tail()}")


def uvicorn_argv(app: list[str], port: int, ws: str) -> list[str]:
    """The Procfile's web command (docs/deploy.md), on loopback: ``--ws websockets-sansio``
    (the default ``ws``), deflate off, proxy headers."""
    return [
        PYTHON,
        "-m",
        "uvicorn",
        *app,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--ws",
        ws,
        "--ws-per-message-deflate",
        "false",
        "--proxy-headers",
    ]


def start_redis(port: int, log_dir: Path) -> Child:
    child = Child(
        "redis",
        [
            "redis-server",
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ],
        dict(os.environ),
        log_dir,
    )
    deadline = time.monotonic() + 10
    while not port_open(port):
        if time.monotonic() > deadline or not child.alive():
            child.stop()
            raise RuntimeError(f"redis-server did not start on {port}:\n{child.tail()}")
        time.sleep(0.05)
    return child


def run_checked(argv: list[str], env: dict[str, str]) -> None:
    done = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed:\n{done.stdout}\n{done.stderr}")


# --- a PostgreSQL database of our own ------------------------------------------------------


def with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


async def pg_connect(url: str) -> Any:
    """A plain asyncpg connection to a DATABASE_URL: asyncpg wants postgresql://, where
    Tortoise (and so Cabinet's settings) say postgres://."""
    import asyncpg

    return await asyncpg.connect(url.replace("postgres://", "postgresql://", 1))


async def fresh_schema(url: str) -> None:
    """Empty the database at ``url`` (its public schema dropped) for a benchmark's own
    migrations: only ever pointed at a database a benchmark was told it may wipe."""
    conn = await pg_connect(url)
    try:
        await conn.execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public;")
    finally:
        await conn.close()


async def pg_admin(url: str, *statements: str) -> None:
    conn = await pg_connect(with_database(url, "postgres"))
    try:
        for sql in statements:
            await conn.execute(sql)
    finally:
        await conn.close()


async def pg_backend_pids(url: str, database: str) -> list[int]:
    """PostgreSQL backend processes serving ``database`` (their CPU is the database's)."""
    conn = await pg_connect(with_database(url, "postgres"))
    try:
        rows = await conn.fetch(
            "SELECT pid FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
            database,
        )
    finally:
        await conn.close()
    return [int(r["pid"]) for r in rows]
