"""The realtime benchmark (``make bench``): Cabinet's messaging under load, against a floor.

For each set-up it seeds a practice (therapists, clients with portal accounts, one-to-one
conversations and office groups), starts the server as the Procfile does, signs everyone in
through the HTTP API, opens their sockets (/staff/ws, /portal/ws, session cookie and Origin
header) and then, from this process:

1. steady load: ``--rate`` messages a second for ``--duration`` seconds, each posted by one
   participant (POST .../conversations/{id}/messages with a client_uid) and timed until
   every participant's socket has it;
2. saturation: ``--saturate-concurrency`` senders posting back to back for
   ``--saturate-seconds``: the most messages a second persisted and delivered;
3. reconnect storm: every tab closes, ``--storm-backlog`` messages are sent meanwhile, and
   every tab reconnects at once with ``?after=<last seq>``: handshakes a second, and
   whether the backlog arrived;
4. idle memory (``--idle-connections``, on a fresh process): RSS per idle signed-in socket
   and the CPU an idle process spends on them.

Set-ups: ``floor`` (bench/floor_app.py: a bare relay, no auth, no storage, same uvicorn
settings), ``sqlite`` (one process, the embedded default: SQLite file, memory://, worker
inside) and ``pg`` (two web processes and ``cabinet worker`` on PostgreSQL + Redis, each tab
on one of them at random, seeded). Results: a table, JSON (``--json``), and a PNG next to the JSON
when matplotlib is importable. docs/performance.md has the figures and how to read them.
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import contextlib
import gc
import json
import os
import random
import resource
import shutil
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from load import (
    PASSWORD,
    CabinetTarget,
    FloorTarget,
    LocalSwarm,
    Swarm,
    Tab,
    Target,
    Tracker,
    bounded,
    percentiles,
)
from procs import (
    BENCH,
    PYTHON,
    ROOT,
    Child,
    CpuMeter,
    free_port,
    machine_busy,
    machine_info,
    pg_admin,
    pg_backend_pids,
    port_open,
    rss_kib,
    run_checked,
    start_redis,
    stop_all,
    uvicorn_argv,
    wait_http,
    with_database,
)
from seed import Plan, Population, floor_population
from websockets.protocol import State

LABELS = {
    "floor": "floor: bare relay, 1 process",
    "sqlite": "SQLite + memory://, 1 process",
    "pg": "PostgreSQL + Redis, 2 processes + worker",
    "pg1": "PostgreSQL + memory://, 1 process",
}
# The hash parameters the benchmark's servers use (ARGON2_*): sign-in is not what is measured.
ARGON2_TIME_COST = 1
ARGON2_MEMORY_KIB = 1024


def log(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", flush=True)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="bench/realtime.py",
        description="Cabinet's realtime benchmark: delivery latency, throughput, memory, "
        "reconnect storms; against a bare websocket relay (the floor).",
    )
    p.add_argument("--clients", type=int, default=200, help="people with a socket (default 200)")
    p.add_argument("--rate", type=float, default=50, help="messages a second (default 50)")
    p.add_argument("--duration", type=float, default=20, help="seconds of steady load (20)")
    p.add_argument("--warmup", type=float, default=3, help="seconds of load first, not counted")
    p.add_argument("--saturate-seconds", type=float, default=10, help="0 skips saturation")
    p.add_argument("--saturate-concurrency", type=int, default=32)
    p.add_argument("--storm-backlog", type=int, default=100, help="messages sent while away")
    p.add_argument(
        "--idle-connections",
        type=int,
        default=1000,
        help="idle signed-in sockets for the memory test on a fresh process (0 skips)",
    )
    p.add_argument("--idle-seconds", type=float, default=10, help="idle CPU measured this long")
    p.add_argument("--idle-setups", default="floor,sqlite", help="where the idle test runs")
    p.add_argument(
        "--setups",
        default="floor,sqlite,pg",
        help="floor, sqlite, pg; also pg1 (PostgreSQL with memory://, one process: the "
        "database's share of pg's latency without the route across processes)",
    )
    p.add_argument("--office-share", type=float, default=0.15, help="messages in office groups")
    p.add_argument("--staff-share", type=float, default=0.1, help="therapists among people")
    p.add_argument("--group-size", type=int, default=6, help="therapists per office group")
    p.add_argument(
        "--ws",
        default="websockets-sansio",
        help="uvicorn --ws, as in the Procfile (websockets-sansio); also websockets, wsproto",
    )
    p.add_argument("--pool", type=int, default=64, help="HTTP connections per web process")
    p.add_argument(
        "--load-procs",
        type=int,
        default=1,
        help="load generator processes: tabs and senders split between them, deliveries "
        "timed on the machine's one monotonic clock and merged here (1: this process)",
    )
    p.add_argument("--signin-concurrency", type=int, default=16)
    p.add_argument("--connect-concurrency", type=int, default=200)
    p.add_argument("--pg-url", default="postgres://postgres@127.0.0.1:5432")
    p.add_argument("--pg-database", default="cabinet_bench", help="created and dropped")
    p.add_argument("--pg-maxsize", type=int, default=0, help="?maxsize= on DATABASE_URL (0: 5)")
    p.add_argument("--drain", type=float, default=15, help="seconds to wait for late deliveries")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--json", type=Path, default=BENCH / "results" / "realtime.json")
    p.add_argument("--keep", action="store_true", help="keep the databases and the work dir")
    p.add_argument(
        "--memprobe",
        action="store_true",
        help="serve the idle test under tracemalloc (bench/memprobe.py): Python bytes per idle "
        "socket by the line that allocated them (RSS figures of such a run are inflated)",
    )
    p.add_argument(
        "--wait-quiet",
        type=float,
        default=0,
        help="before each set-up, wait up to this many seconds for the machine to be idle "
        "(under 15%% busy over 3 s): other jobs on a 2-core machine distort every figure",
    )
    p.add_argument(
        "--profile",
        default="",
        help="py-spy the first web process during this phase (steady, saturate, storm, idle): "
        "collapsed stacks next to the JSON, and the top functions in the report",
    )
    return p.parse_args(argv)


def raise_open_files() -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else 1_048_576
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


# --- deployments -----------------------------------------------------------------------------


@dataclass
class Deployment:
    name: str
    bases: list[str]
    web: list[Child]
    others: dict[str, Child] = field(default_factory=dict)

    @property
    def web_pids(self) -> list[int]:
        return [c.pid for c in self.web]

    def stop(self) -> None:
        for child in [*self.web, *self.others.values()]:
            child.stop()


@dataclass
class Bench:
    args: argparse.Namespace
    work: Path
    password_hash: str = ""
    loadgen_pids: list[int] = field(default_factory=list)

    def cabinet_env(self, database_url: str, broadcast_url: str, public_url: str) -> dict[str, str]:
        env = {
            k: v
            for k, v in os.environ.items()
            if k not in {"DATABASE_URL", "BROADCAST_URL", "CI"} and not k.startswith("CABINET_")
        }
        env.update(
            CABINET_ENV="production",
            SECRET_KEY="bench-secret-key-not-for-production-0123456789",
            CABINET_DATA_DIR=str(self.work / "data"),
            DATABASE_URL=database_url,
            BROADCAST_URL=broadcast_url,
            PUBLIC_URL=public_url,
            ARGON2_TIME_COST=str(ARGON2_TIME_COST),
            ARGON2_MEMORY_KIB=str(ARGON2_MEMORY_KIB),
        )
        return env

    def cabinet_cmd(self, *args: str) -> list[str]:
        script = Path(PYTHON).parent / "cabinet"
        return [str(script), *args] if script.exists() else [PYTHON, "-m", "server.cli", *args]

    def start_web(
        self, name: str, port: int, env: dict[str, str], app: list[str], probe: bool = False
    ) -> Child:
        argv = uvicorn_argv(app, port, self.args.ws)
        if probe:
            kind = "floor" if name.startswith("floor") else "cabinet"
            argv = [PYTHON, str(BENCH / "memprobe.py"), kind, "--port", str(port)]
            argv += ["--ws", self.args.ws]
        child = Child(name, argv, env, self.work)
        wait_http(f"http://127.0.0.1:{port}/healthz", child)
        return child

    async def prepare_cabinet(self, setup: str, plan: Plan) -> tuple[str, str, Population]:
        """A migrated, seeded database: (DATABASE_URL, BROADCAST_URL, population)."""
        if setup == "sqlite":
            folder = self.work / "sqlite"
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir(parents=True)
            database_url = f"sqlite://{folder / 'cabinet.sqlite3'}"
        else:
            name = self.args.pg_database
            await pg_admin(
                self.args.pg_url,
                f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)',
                f'CREATE DATABASE "{name}"',
            )
            database_url = with_database(self.args.pg_url, name)
            if self.args.pg_maxsize:
                database_url += f"?maxsize={self.args.pg_maxsize}"
        env = self.cabinet_env(database_url, "memory://", "http://127.0.0.1:8000")
        run_checked(self.cabinet_cmd("migrate"), env)
        out = self.work / f"population-{setup}.json"
        run_checked(
            [
                PYTHON,
                str(BENCH / "seed.py"),
                "--database-url",
                database_url,
                "--plan",
                json.dumps(plan.__dict__),
                "--password-hash",
                self.password_hash,
                "--out",
                str(out),
            ],
            env,
        )
        return database_url, "memory://", Population.from_json(out.read_text())

    def deploy(
        self,
        setup: str,
        database_url: str,
        processes: int,
        role: str = "web",
        probe: bool = False,
    ) -> Deployment:
        if setup == "floor":
            port = free_port()
            env = dict(os.environ, PYTHONPATH=str(BENCH))
            app = ["floor_app:app", "--app-dir", str(BENCH)]
            relay = self.start_web(f"floor-{role}", port, env, app, probe)
            return Deployment(setup, [f"http://127.0.0.1:{port}"], [relay])
        others: dict[str, Child] = {}
        broadcast = "memory://"
        if setup == "pg":
            redis_port = free_port()
            others["redis"] = start_redis(redis_port, self.work)
            broadcast = f"redis://127.0.0.1:{redis_port}"
        ports = [free_port() for _ in range(processes)]
        env = self.cabinet_env(database_url, broadcast, f"http://127.0.0.1:{ports[0]}")
        if setup == "pg":
            env["CABINET_EMBEDDED_WORKER"] = "false"
            others["worker"] = Child("worker", self.cabinet_cmd("worker"), env, self.work)
        web: list[Child] = []
        try:
            for i, port in enumerate(ports):
                app = ["server.app:create_app", "--factory"]
                web.append(self.start_web(f"{setup}-{role}{i}", port, env, app, probe))
        except BaseException:
            Deployment(setup, [], web, others).stop()
            raise
        return Deployment(setup, [f"http://127.0.0.1:{p}" for p in ports], web, others)

    # --- profiling --------------------------------------------------------------------------

    def profiler(self, phase: str, deployment: Deployment) -> tuple[Child, Path] | None:
        """py-spy on the first web process while ``phase`` runs, when asked to."""
        if self.args.profile != phase:
            return None
        spy = shutil.which("py-spy") or str(Path(PYTHON).parent / "py-spy")
        if not Path(spy).exists():
            log("  --profile: py-spy not found (.venv/bin/pip install -e '.[bench]')")
            return None
        out = self.args.json.parent / f"profile-{deployment.name}-{phase}.txt"
        argv = [spy, "record", "--pid", str(deployment.web[0].pid), "--rate", "200", "--gil"]
        argv += ["--format", "raw", "--nonblocking", "-o", str(out)]
        return Child(f"py-spy-{deployment.name}-{phase}", argv, dict(os.environ), self.work), out

    async def profile_done(self, spy: tuple[Child, Path] | None) -> dict[str, Any] | None:
        if spy is None:
            return None
        child, out = spy
        child.proc.send_signal(signal.SIGINT)
        for _ in range(100):
            if not child.alive():
                break
            await asyncio.sleep(0.1)
        child.stop()
        return summarize_profile(out) if out.exists() else None

    # --- phases -----------------------------------------------------------------------------

    async def meter(self, deployment: Deployment) -> CpuMeter:
        groups: dict[str, list[int]] = {
            "web": deployment.web_pids,
            "loadgen": [os.getpid(), *self.loadgen_pids],
        }
        for name, child in deployment.others.items():
            groups[name] = [child.pid]
        meter = CpuMeter(groups)
        if deployment.name.startswith("pg"):
            meter.add("postgres", await pg_backend_pids(self.args.pg_url, self.args.pg_database))
        return meter

    async def meter_stop(self, deployment: Deployment, meter: CpuMeter) -> dict[str, float]:
        if deployment.name.startswith("pg"):
            meter.add("postgres", await pg_backend_pids(self.args.pg_url, self.args.pg_database))
        return meter.stop()

    async def idle_test(
        self, setup: str, population: Population, database_url: str
    ) -> dict[str, Any]:
        args = self.args
        probe = bool(args.memprobe)
        deployment = self.deploy(setup, database_url, 1, "idle", probe)
        target: Target = (FloorTarget if setup == "floor" else CabinetTarget)(
            deployment.bases, args.pool
        )
        pid = deployment.web[0].pid
        tracker = Tracker()
        tabs = [Tab(p, 0, deployment.bases[0]) for p in population.idle]
        try:
            t0 = time.perf_counter()
            failed = [r for r in await bounded(tabs, args.signin_concurrency, target.sign_in) if r]
            signin_s = time.perf_counter() - t0
            if failed:
                raise RuntimeError(f"{len(failed)} idle sign-ins failed: {failed[0]!r}")
            await asyncio.sleep(2)
            rss0 = rss_kib(pid)
            if probe:
                await target.http[0].get(f"{deployment.bases[0]}/__memprobe/snapshot/before")
            t0 = time.perf_counter()
            results = await bounded(
                tabs, args.connect_concurrency, lambda t: t.connect(target, tracker, None)
            )
            connect_s = time.perf_counter() - t0
            opened = sum(1 for r in results if isinstance(r, float))
            errors = [r for r in results if isinstance(r, BaseException)]
            await asyncio.sleep(5)
            rss1 = rss_kib(pid)
            memprobe = None
            if probe:
                base = deployment.bases[0]
                await target.http[0].get(f"{base}/__memprobe/snapshot/after")
                answer = await target.http[0].get(
                    f"{base}/__memprobe/diff/before/after", timeout=900
                )
                diff = answer.json()
                per = max(opened, 1)
                memprobe = {
                    "python_bytes_per_socket": round(diff["total_bytes"] / per),
                    "sites": [
                        {
                            "site": d["site"],
                            "bytes_per_socket": round(d["bytes"] / per, 1),
                            "blocks_per_socket": round(d["blocks"] / per, 2),
                        }
                        for d in diff["sites"]
                    ],
                }
            meter = await self.meter(deployment)
            meter.start()
            spy = self.profiler("idle", deployment)
            await asyncio.sleep(args.idle_seconds)
            cpu = await self.meter_stop(deployment, meter)
            profile = await self.profile_done(spy)
            held = sum(1 for t in tabs if t.ws is not None and t.ws.state is State.OPEN)
            rss2 = rss_kib(pid)
            log(
                f"  idle: {held} sockets held, {(rss1 - rss0) / max(opened, 1):.1f} KiB each, "
                f"web CPU {cpu['web']}% while idle"
            )
            return {
                "connections": len(tabs),
                "opened": opened,
                "held_after_idle": held,
                "open_errors": [repr(e) for e in errors[:5]],
                "signins_per_s": round(len(tabs) / signin_s, 1) if setup != "floor" else None,
                "handshakes_per_s": round(opened / connect_s, 1),
                "rss_before_kib": rss0,
                "rss_after_kib": rss1,
                "rss_after_idle_kib": rss2,
                "kib_per_connection": round((rss1 - rss0) / max(opened, 1), 2),
                "idle_cpu_percent": cpu,
                "permessage_deflate": tabs[0].extensions or "not negotiated",
                "drops": tracker.drops,
                "profile": profile,
                "memprobe": memprobe,
            }
        finally:
            await asyncio.gather(*(t.close() for t in tabs))
            await target.aclose()
            deployment.stop()

    async def active_run(self, deployment: Deployment, population: Population) -> dict[str, Any]:
        args = self.args
        target: Target = (FloorTarget if deployment.name == "floor" else CabinetTarget)(
            deployment.bases, args.pool
        )
        bases = deployment.bases
        # Each tab lands on a web process at random, as behind a load balancer that knows
        # nothing of conversations. (Alternating by position put both sides of every
        # conversation on the same process, given the seed's layout: no delivery crossed
        # Redis before the thirteenth round, docs/performance.md.)
        where = random.Random(args.seed)
        servers = [where.randrange(len(bases)) for _ in population.people]
        tabs = [Tab(p, s, bases[s]) for p, s in zip(population.people, servers, strict=True)]
        out: dict[str, Any] = {
            "clients": len(tabs),
            "web_processes": len(bases),
            "load_processes": args.load_procs,
        }
        swarm: Swarm | LocalSwarm | None = None
        try:
            t0 = time.perf_counter()
            failed = [r for r in await bounded(tabs, args.signin_concurrency, target.sign_in) if r]
            if failed:
                raise RuntimeError(f"{len(failed)} sign-ins failed: {failed[0]!r}")
            if target.stores:
                out["signins_per_s"] = round(len(tabs) / (time.perf_counter() - t0), 1)
            if args.load_procs > 1:
                swarm = Swarm(
                    args.load_procs, target, tabs, population.chats, args.office_share, args.seed
                )
            else:
                swarm = LocalSwarm(target, tabs, population.chats, args.office_share, args.seed)
            tracker = swarm.tracker
            self.loadgen_pids = swarm.pids
            await asyncio.sleep(1)
            rss0 = sum(rss_kib(p) for p in deployment.web_pids)
            opened = await swarm.connect(args.connect_concurrency, resume=False)
            if opened["failures"]:
                failures = opened["failures"]
                raise RuntimeError(f"{len(failures)} sockets did not open: {failures[0]}")
            out["connects_per_s"] = round(len(tabs) / opened["seconds"], 1)
            out["permessage_deflate"] = opened["extensions"] or "not negotiated"
            # Thousands of long-lived objects here: keep the collector from walking them
            # during the measurement (its pauses would show as delivery latency).
            gc.collect()
            gc.freeze()
            await asyncio.sleep(2)
            rss1 = sum(rss_kib(p) for p in deployment.web_pids)
            out["rss_before_sockets_kib"] = rss0
            out["rss_with_sockets_kib"] = rss1
            out["kib_per_active_connection"] = round((rss1 - rss0) / len(tabs), 2)
            log(f"  {len(tabs)} signed in and connected ({out['connects_per_s']} sockets/s)")

            if args.warmup > 0:
                await swarm.send("warmup", "rate", args.rate, args.warmup)
                await swarm.drain("warmup", args.drain)

            # 1. steady load
            await swarm.collect(lag=True)
            meter = await self.meter(deployment)
            meter.start()
            spy = self.profiler("steady", deployment)
            t_start = time.perf_counter()
            t_sent = await swarm.send("steady", "rate", args.rate, args.duration)
            t_start = swarm.started
            await swarm.drain("steady", args.drain)
            out["profile"] = await self.profile_done(spy) or out.get("profile")
            steady = tracker.phase_stats("steady", t_start, t_sent)
            steady["cpu_percent"] = await self.meter_stop(deployment, meter)
            collected = await swarm.collect(lag=True)
            steady["loadgen_lag_ms"] = collected["lag"]
            out["steady"] = steady
            out["connections_held"] = collected["held"]
            out["rss_after_load_kib"] = sum(rss_kib(p) for p in deployment.web_pids)
            lat = steady["latency_ms"]
            log(
                f"  steady {args.rate:g} msg/s: p50 {lat['p50']} p99 {lat['p99']} max "
                f"{lat['max']} ms, ratio {steady['delivery_ratio']}, web CPU "
                f"{steady['cpu_percent']['web']}%"
            )

            # 2. saturation
            if args.saturate_seconds > 0:
                meter = await self.meter(deployment)
                meter.start()
                spy = self.profiler("saturate", deployment)
                t_start = time.perf_counter()
                t_sent = await swarm.send(
                    "saturate", "closed", args.saturate_concurrency, args.saturate_seconds
                )
                t_start = swarm.started
                await swarm.drain("saturate", args.drain)
                out["profile"] = await self.profile_done(spy) or out.get("profile")
                sat = tracker.phase_stats("saturate", t_start, t_sent)
                sat["cpu_percent"] = await self.meter_stop(deployment, meter)
                sat["loadgen_lag_ms"] = (await swarm.collect(lag=True))["lag"]
                sat["concurrency"] = args.saturate_concurrency
                # Each load process is one Python process: past ~85% of a core each, the
                # limit measured may be theirs.
                sat["loadgen_bound"] = sat["cpu_percent"].get("loadgen", 0) >= 85 * max(
                    1, args.load_procs
                )
                out["saturate"] = sat
                log(
                    f"  saturation: {sat['delivered_msgs_per_s']} msg/s delivered "
                    f"({sat['offered_msgs_per_s']} offered), p50 {sat['latency_ms']['p50']} "
                    f"p99 {sat['latency_ms']['p99']} ms, ratio {sat['delivery_ratio']}, "
                    f"load generator CPU {sat['cpu_percent'].get('loadgen')}%"
                    + (" (load generator at its limit)" if sat["loadgen_bound"] else "")
                )

            # 3. reconnect storm
            out["storm"] = await self.storm(deployment, target, swarm)
            storm = out["storm"]
            log(
                f"  reconnect storm: {storm['handshakes_per_s']} handshakes/s, all ready in "
                f"{storm['seconds']} s, backlog ratio {storm['backlog']['delivery_ratio']}"
            )
            await swarm.collect()
            # Deliveries that came after a phase's drain (late, not lost): the storm's resume
            # with ?after= also replays anything still missing then.
            for phase in ("steady", "saturate"):
                if phase in out:
                    late = tracker.received(phase) - out[phase]["deliveries_received"]
                    out[phase]["deliveries_received_late"] = late
            out["send_retries"] = target.retries
            out["duplicates"] = tracker.duplicates
            out["seq_gaps"] = tracker.gaps
            out["unexpected_closes"] = tracker.drops
            out["unexpected_close_codes"] = tracker.drop_codes
            out["unknown_messages"] = tracker.unknown
            out["errors"] = tracker.errors
            return out
        finally:
            if swarm is not None:
                await swarm.stop()
            self.loadgen_pids = []
            await target.aclose()

    async def storm(
        self, deployment: Deployment, target: Target, swarm: Swarm | LocalSwarm
    ) -> dict[str, Any]:
        await swarm.close()
        await asyncio.sleep(1.0)
        backlog = self.args.storm_backlog if target.stores else 0
        t_start = time.perf_counter()
        if backlog:
            await swarm.send("resume", "count", backlog, 0)
        t_sent = time.perf_counter()
        meter = await self.meter(deployment)
        meter.start()
        spy = self.profiler("storm", deployment)
        reconnected = await swarm.connect(0, resume=True)
        seconds = reconnected["seconds"]
        cpu = await self.meter_stop(deployment, meter)
        times = [t * 1000 for t in reconnected["times"]]
        failures = reconnected["failures"]
        await swarm.drain("resume", self.args.drain)
        resumed = swarm.tracker.phase_stats("resume", t_start, t_sent)
        profile = await self.profile_done(spy)
        return {
            "profile": profile,
            "reconnects": len(swarm.tabs),
            "failed": len(failures),
            "failures": failures[:5],
            "seconds": round(seconds, 2),
            "handshakes_per_s": round(len(times) / seconds, 1),
            "time_to_ready_ms": percentiles(times),
            "cpu_percent": cpu,
            "backlog": {
                "messages": backlog,
                "deliveries_expected": resumed["deliveries_expected"],
                "deliveries_received": resumed["deliveries_received"],
                "delivery_ratio": resumed["delivery_ratio"],
            },
        }

    async def run_setup(self, setup: str) -> dict[str, Any]:
        args = self.args
        idle = args.idle_connections if setup in args.idle_setups.split(",") else 0
        plan = Plan(
            clients=args.clients,
            idle=idle,
            staff_share=args.staff_share,
            group_size=args.group_size,
        )
        result: dict[str, Any] = {"setup": setup, "label": LABELS[setup]}
        log(f"{setup}: {LABELS[setup]}")
        if args.wait_quiet > 0:
            result["waited_for_quiet_s"] = await wait_quiet(args.wait_quiet)
        database_url = ""
        try:
            if setup == "floor":
                population = floor_population(plan)
            else:
                t0 = time.perf_counter()
                database_url, _, population = await self.prepare_cabinet(setup, plan)
                log(f"  database migrated and seeded in {time.perf_counter() - t0:.1f} s")
            result["people"] = {
                "staff": sum(1 for p in population.people if p.realm == "staff"),
                "portal": sum(1 for p in population.people if p.realm == "portal"),
                "client_conversations": sum(1 for c in population.chats if c.kind == "client"),
                "office_groups": sum(1 for c in population.chats if c.kind == "office"),
            }
            if idle:
                log(f"  idle test: {idle} signed-in sockets on a fresh process")
                result["idle"] = await self.idle_test(setup, population, database_url)
            processes = 2 if setup == "pg" else 1
            deployment = self.deploy(setup, database_url, processes)
            try:
                result.update(await self.active_run(deployment, population))
                result["rss_final_kib"] = {c.name: rss_kib(c.pid) for c in deployment.web}
            finally:
                deployment.stop()
        finally:
            if setup.startswith("pg") and not args.keep:
                with contextlib.suppress(Exception):
                    await pg_admin(
                        args.pg_url, f'DROP DATABASE IF EXISTS "{args.pg_database}" WITH (FORCE)'
                    )
        return result


async def wait_quiet(limit: float, busy_under: float = 0.15) -> float:
    """Wait until the machine was under ``busy_under`` busy for 3 s; returns seconds waited."""
    t0 = time.monotonic()
    while True:
        b0, total0 = machine_busy()
        await asyncio.sleep(3)
        b1, total1 = machine_busy()
        busy = (b1 - b0) / max(total1 - total0, 1e-9)
        waited = time.monotonic() - t0
        if busy < busy_under or waited >= limit:
            if waited > 3.5:
                log(f"  waited {waited:.0f} s for a quiet machine (now {100 * busy:.0f}% busy)")
            return round(waited, 1)


# --- the report ---------------------------------------------------------------------------


def summarize_profile(path: Path, top: int = 25) -> dict[str, Any]:
    """From py-spy's collapsed stacks: where the process was, by own time and by total time,
    for the functions of this repository and the libraries they call."""
    own: dict[str, int] = {}
    total: dict[str, int] = {}
    samples = 0
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        samples += count
        frames = stack.split(";")
        seen: set[str] = set()
        for frame in frames:
            name = _frame_name(frame)
            if name not in seen:
                seen.add(name)
                total[name] = total.get(name, 0) + count
        leaf = _frame_name(frames[-1])
        own[leaf] = own.get(leaf, 0) + count

    def ranked(d: dict[str, int]) -> list[tuple[str, float]]:
        items = sorted(d.items(), key=lambda kv: -kv[1])[:top]
        return [(name, round(100 * n / max(samples, 1), 1)) for name, n in items]

    return {
        "file": str(path),
        "samples": samples,
        "own_percent": ranked(own),
        "total_percent": ranked(total),
    }


def _frame_name(frame: str) -> str:
    # py-spy frames look like "function (path/to/file.py:123)"; keep function and file.
    name, _, where = frame.partition(" (")
    where = where.rstrip(")")
    file = where.rsplit(":", 1)[0]
    for marker in ("site-packages/", f"{ROOT}/", "lib/python3.11/"):
        if marker in file:
            file = file.split(marker, 1)[1]
            break
    return f"{name} ({file})" if file else name


def _get(d: Any, *path: str) -> Any:
    for key in path:
        if not isinstance(d, dict) or key not in d:
            return None
        d = d[key]
    return d


ROWS: list[tuple[str, tuple[str, ...], str, bool]] = [
    # (label, path in the result, format, show a ratio to the floor)
    ("web processes", ("web_processes",), "{}", False),
    ("connections held", ("connections_held",), "{}", False),
    ("sign-ins/s (setup)", ("signins_per_s",), "{}", False),
    ("steady: offered msg/s", ("steady", "offered_msgs_per_s"), "{}", False),
    ("steady: delivered msg/s", ("steady", "delivered_msgs_per_s"), "{}", False),
    ("steady: delivery ratio", ("steady", "delivery_ratio"), "{}", False),
    ("steady: deliveries arriving later", ("steady", "deliveries_received_late"), "{}", False),
    ("steady: latency p50 ms", ("steady", "latency_ms", "p50"), "{}", True),
    ("steady: latency p95 ms", ("steady", "latency_ms", "p95"), "{}", True),
    ("steady: latency p99 ms", ("steady", "latency_ms", "p99"), "{}", True),
    ("steady: latency max ms", ("steady", "latency_ms", "max"), "{}", True),
    ("steady: HTTP send p50 ms", ("steady", "http_ms", "p50"), "{}", True),
    # One delivery (not a whole message) by route: the sender's own tab, another tab on its
    # process, a tab on the other process (through Redis and a read of the stored event).
    (
        "steady: delivery p50 ms, own tab",
        ("steady", "delivery_ms_by_route", "own_tab", "p50"),
        "{}",
        True,
    ),
    (
        "steady: delivery p50 ms, same process",
        ("steady", "delivery_ms_by_route", "same_process", "p50"),
        "{}",
        True,
    ),
    (
        "steady: delivery p50 ms, other process",
        ("steady", "delivery_ms_by_route", "other_process", "p50"),
        "{}",
        False,
    ),
    ("steady: web CPU % (1 core=100)", ("steady", "cpu_percent", "web"), "{}", True),
    ("steady: worker CPU %", ("steady", "cpu_percent", "worker"), "{}", False),
    ("steady: redis CPU %", ("steady", "cpu_percent", "redis"), "{}", False),
    ("steady: postgres CPU %", ("steady", "cpu_percent", "postgres"), "{}", False),
    ("steady: loadgen CPU %", ("steady", "cpu_percent", "loadgen"), "{}", False),
    ("steady: machine CPU % (all)", ("steady", "cpu_percent", "machine_all_cores"), "{}", False),
    ("steady: other jobs' CPU %", ("steady", "cpu_percent", "other_processes"), "{}", False),
    ("steady: loadgen loop lag p99 ms", ("steady", "loadgen_lag_ms", "p99"), "{}", False),
    ("saturation: delivered msg/s", ("saturate", "delivered_msgs_per_s"), "{}", True),
    ("saturation: delivery ratio", ("saturate", "delivery_ratio"), "{}", False),
    ("saturation: latency p50 ms", ("saturate", "latency_ms", "p50"), "{}", True),
    ("saturation: latency p99 ms", ("saturate", "latency_ms", "p99"), "{}", True),
    ("saturation: web CPU %", ("saturate", "cpu_percent", "web"), "{}", False),
    ("saturation: postgres CPU %", ("saturate", "cpu_percent", "postgres"), "{}", False),
    ("saturation: loadgen CPU %", ("saturate", "cpu_percent", "loadgen"), "{}", False),
    ("saturation: other jobs' CPU %", ("saturate", "cpu_percent", "other_processes"), "{}", False),
    ("storm: handshakes/s", ("storm", "handshakes_per_s"), "{}", True),
    ("storm: time to ready p99 ms", ("storm", "time_to_ready_ms", "p99"), "{}", True),
    ("storm: failed reconnects", ("storm", "failed"), "{}", False),
    ("storm: backlog delivery ratio", ("storm", "backlog", "delivery_ratio"), "{}", False),
    ("RSS with sockets, MiB (all web)", ("rss_with_sockets_kib",), "mib", False),
    ("RSS per active socket, KiB", ("kib_per_active_connection",), "{}", True),
    ("idle: sockets held", ("idle", "held_after_idle"), "{}", False),
    ("idle: RSS per socket, KiB", ("idle", "kib_per_connection"), "{}", True),
    ("idle: RSS, MiB", ("idle", "rss_after_kib"), "mib", False),
    ("idle: web CPU % while idle", ("idle", "idle_cpu_percent", "web"), "{}", False),
    ("duplicates / seq gaps", ("duplicates",), "{}", False),
    ("unexpected closes", ("unexpected_closes",), "{}", False),
    ("sends failed (steady / saturation)", ("send_errors",), "{}", False),
    ("sends retried on a broken connection", ("send_retries",), "{}", False),
]


def _fmt(value: Any, fmt: str) -> str:
    if value is None:
        return "-"
    if fmt == "mib":
        return f"{value / 1024:.0f}"
    return fmt.format(value)


def table(results: list[dict[str, Any]]) -> str:
    floor = next((r for r in results if r["setup"] == "floor"), None)
    headers = ["metric"]
    for r in results:
        headers.append(r["setup"])
        if floor is not None and r is not floor:
            headers.append("× floor")
    lines = []
    for label, path, fmt, ratio in ROWS:
        row = [label]
        for r in results:
            value = _get(r, *path)
            if path == ("duplicates",):
                row.append(f"{r.get('duplicates', '-')} / {r.get('seq_gaps', '-')}")
            elif path == ("send_errors",):
                steady = _get(r, "steady", "send_errors")
                sat = _get(r, "saturate", "send_errors")
                row.append(f"{_fmt(steady, '{}')} / {_fmt(sat, '{}')}")
            else:
                row.append(_fmt(value, fmt))
            if floor is not None and r is not floor:
                base = _get(floor, *path)
                if (
                    ratio
                    and isinstance(value, int | float)
                    and isinstance(base, int | float)
                    and base
                ):
                    row.append(f"{value / base:.1f}×")
                else:
                    row.append("")
        if any(cell not in {"-", ""} for cell in row[1:]):
            lines.append(row)
    widths = [max(len(str(x)) for x in col) for col in zip(headers, *lines, strict=False)]
    out = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=False))]
    out.append("  ".join("-" * w for w in widths))
    for row in lines:
        out.append(
            "  ".join(
                (c.ljust(w) if i == 0 else c.rjust(w))
                for i, (c, w) in enumerate(zip(row, widths, strict=False))
            )
        )
    return "\n".join(out)


def targets(results: list[dict[str, Any]], args: argparse.Namespace) -> list[dict[str, Any]]:
    """The targets of issue 9, checked against what this run measured."""
    by = {r["setup"]: r for r in results}
    at_scale = args.clients >= 2000 and args.rate >= 200 and args.duration >= 60
    checks: list[dict[str, Any]] = []

    def check(name: str, setup: str, value: Any, ok: bool | None, full_scale: bool) -> None:
        checks.append(
            {
                "target": name,
                "setup": setup,
                "measured": value,
                "met": ok,
                "at_target_scale": full_scale,
            }
        )

    if "sqlite" in by and _get(by["sqlite"], "idle", "kib_per_connection") is not None:
        kib = by["sqlite"]["idle"]["kib_per_connection"]
        n = by["sqlite"]["idle"]["held_after_idle"]
        check(
            "10,000 idle signed-in sockets, ≤ 30 KiB each",
            "sqlite",
            f"{kib} KiB × {n}",
            kib <= 30 and n >= 10_000 if n >= 10_000 else kib <= 30,
            n >= 10_000,
        )
    if "pg" in by and "steady" in by["pg"]:
        p99 = by["pg"]["steady"]["latency_ms"]["p99"]
        ratio = by["pg"]["steady"]["delivery_ratio"]
        check(
            "PG + Redis, 2 processes: p99 ≤ 50 ms",
            "pg",
            p99,
            p99 is not None and p99 <= 50,
            at_scale,
        )
        check("PG + Redis, 2 processes: delivery ratio 1.0", "pg", ratio, ratio == 1.0, at_scale)
    if "sqlite" in by and "steady" in by["sqlite"]:
        p99 = by["sqlite"]["steady"]["latency_ms"]["p99"]
        ratio = by["sqlite"]["steady"]["delivery_ratio"]
        check(
            "SQLite, 1 process: p99 ≤ 25 ms", "sqlite", p99, p99 is not None and p99 <= 25, at_scale
        )
        check("SQLite, 1 process: delivery ratio 1.0", "sqlite", ratio, ratio == 1.0, at_scale)
    for setup in ("sqlite", "pg"):
        rate = _get(by.get(setup), "saturate", "delivered_msgs_per_s")
        if rate is not None:
            per_process = rate / by[setup]["web_processes"]
            bound = (
                " (load generator at its limit)" if by[setup]["saturate"]["loadgen_bound"] else ""
            )
            check(
                "≥ 1,000 msg/s persisted and delivered by one process",
                setup,
                f"{rate} msg/s ({per_process:.0f} per process){bound}",
                per_process >= 1000,
                True,
            )
    for setup in ("sqlite", "pg"):
        storm = _get(by.get(setup), "storm")
        if storm is not None:
            backlog = storm["backlog"]["delivery_ratio"]
            check(
                "reconnect storm: every client resumed, nothing missed, within 10 s",
                setup,
                f"{storm['reconnects'] - storm['failed']}/{storm['reconnects']} ready in "
                f"{storm['seconds']} s, backlog ratio {backlog}",
                storm["failed"] == 0 and backlog in (None, 1.0) and storm["seconds"] <= 10,
                storm["reconnects"] >= 2000,
            )
    floor_p50 = _get(by.get("floor"), "steady", "latency_ms", "p50")
    for setup in ("sqlite", "pg"):
        p50 = _get(by.get(setup), "steady", "latency_ms", "p50")
        if p50 is not None and floor_p50:
            check(
                "median within 3× the floor's",
                setup,
                f"{p50} ms vs {floor_p50} ms ({p50 / floor_p50:.1f}×)",
                p50 <= 3 * floor_p50,
                at_scale,
            )
    return checks


def chart(results: list[dict[str, Any]], latencies: dict[str, list[float]], path: Path) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    fig, (cdf, bars) = plt.subplots(1, 2, figsize=(12, 4.5))
    for setup, values in latencies.items():
        if values:
            ordered = sorted(values)
            cdf.plot(ordered, [(i + 1) / len(ordered) for i in range(len(ordered))], label=setup)
    cdf.set_xscale("log")
    cdf.set_xlabel("delivery latency to every recipient (ms)")
    cdf.set_ylabel("fraction of messages")
    cdf.set_title("steady load")
    cdf.legend()
    names = [r["setup"] for r in results]
    bars.bar(names, [_get(r, "saturate", "delivered_msgs_per_s") or 0 for r in results])
    bars.set_ylabel("msg/s persisted and delivered")
    bars.set_title("saturation")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return True


# --- main ----------------------------------------------------------------------------------


async def main(args: argparse.Namespace) -> int:
    # Ctrl-C or a kill ends the run through the finally blocks that stop the servers and drop
    # the database (also when started in the background, where SIGINT is ignored).
    task = asyncio.current_task()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        if task is not None:
            loop.add_signal_handler(sig, task.cancel)
    try:
        return await _main(args)
    except asyncio.CancelledError:
        log("interrupted")
        return 130


async def _main(args: argparse.Namespace) -> int:
    from argon2 import PasswordHasher

    started = time.monotonic()
    nofile = raise_open_files()
    work = args.json.parent / "work"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    bench = Bench(args, work)
    bench.password_hash = PasswordHasher(
        time_cost=ARGON2_TIME_COST, memory_cost=ARGON2_MEMORY_KIB, parallelism=1
    ).hash(PASSWORD)

    setups = [s for s in args.setups.split(",") if s]
    unknown = [s for s in setups if s not in LABELS]
    if unknown:
        print(f"unknown set-up(s): {', '.join(unknown)}", file=sys.stderr)
        return 2
    skipped: dict[str, str] = {}
    on_postgres = [s for s in ("pg", "pg1") if s in setups]
    if on_postgres:
        pg_up = port_open(int(args.pg_url.rsplit(":", 1)[1].split("/")[0]))
    for setup in on_postgres:
        if not pg_up:
            skipped[setup] = f"no PostgreSQL at {args.pg_url}"
        elif setup == "pg" and shutil.which("redis-server") is None:
            skipped[setup] = "no redis-server on PATH"
    for setup, why in skipped.items():
        log(f"skipping {setup}: {why}")
        setups.remove(setup)

    info = machine_info()
    log(
        f"machine: {info['cores']} × {info['cpu']}, load average {info['loadavg_at_start']}; "
        f"open files {nofile}; {args.clients} clients, {args.rate:g} msg/s for "
        f"{args.duration:g} s; uvicorn --ws {args.ws} --ws-per-message-deflate false"
    )
    results = []
    for setup in setups:
        results.append(await bench.run_setup(setup))

    latencies = {r["setup"]: r.get("steady", {}).pop("latencies_ms", []) for r in results}
    for r in results:
        for phase in ("saturate",):
            if phase in r:
                r[phase].pop("latencies_ms", None)
    checks = targets(results, args)
    report = {
        "machine": info,
        "settings": {
            **{k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
            "uvicorn": uvicorn_argv(["<app>"], 0, args.ws)[3:],
            "argon2": {"time_cost": ARGON2_TIME_COST, "memory_kib": ARGON2_MEMORY_KIB},
            "open_files_limit": nofile,
        },
        "skipped": skipped,
        "results": results,
        "targets": checks,
        "seconds": round(time.monotonic() - started, 1),
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2, default=str))

    print()
    print(table(results))
    print()
    for c in checks:
        mark = "met" if c["met"] else "MISSED"
        scale = "" if c["at_target_scale"] else "  (not at target scale: indicative)"
        print(f"  {mark:6}  {c['target']} [{c['setup']}]: {c['measured']}{scale}")
    print()
    png = args.json.with_suffix(".png")
    if chart(results, latencies, png):
        print(f"chart: {png.relative_to(ROOT) if png.is_relative_to(ROOT) else png}")
    else:
        print("chart: skipped (matplotlib is not importable)")
    print(f"json: {args.json}")
    print(f"took {report['seconds']} s")
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    bad = any(
        _get(r, phase, "delivery_ratio") not in (None, 1.0)
        for r in results
        for phase in ("steady", "saturate")
    )
    return 1 if bad else 0


def run() -> None:
    args = parse_args()
    atexit.register(stop_all)
    try:
        import uvloop
    except ImportError:
        code = asyncio.run(main(args))
    else:
        code = uvloop.run(main(args))
    sys.exit(code)


if __name__ == "__main__":
    run()
