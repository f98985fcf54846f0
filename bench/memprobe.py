"""Where an idle socket's memory goes: the app served under tracemalloc.

``bench/realtime.py --memprobe`` serves the idle test's process with this module instead of
the uvicorn command line (same uvicorn settings). It adds three endpoints the benchmark
calls: ``/__memprobe/snapshot/<name>`` takes a tracemalloc snapshot, and
``/__memprobe/diff/<a>/<b>`` answers what was allocated between two of them, by the line of
this repository (or, failing that, of the library) that asked for it. tracemalloc slows
the process and inflates its RSS: use its RSS figures from a run without ``--memprobe``.
"""

from __future__ import annotations

import argparse
import json
import sys
import tracemalloc
from pathlib import Path
from typing import Any

import uvicorn
from starlette.types import ASGIApp, Receive, Scope, Send

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
FRAMES = 48


def _short(frame: tracemalloc.Frame) -> str:
    name = frame.filename
    if name.startswith(str(ROOT)) and "/.venv/" not in name:
        name = str(Path(name).relative_to(ROOT))
    else:
        name = name.split("site-packages/")[-1].split("lib/python3.11/")[-1]
    return f"{name}:{frame.lineno}"


def _where(trace: tracemalloc.Traceback) -> str:
    """``innermost frame <- innermost frame of the repository's own code`` (this probe and
    uvicorn's server loop aside): what allocated, and on whose behalf."""
    frames = list(trace)[::-1]  # tracemalloc lists the oldest call first
    inner = _short(frames[0])
    for frame in frames:
        name = frame.filename
        if (
            name.startswith(str(ROOT))
            and "/.venv/" not in name
            and not name.endswith("memprobe.py")
        ):
            mine = _short(frame)
            return inner if mine == inner else f"{inner} <- {mine}"
    return inner


class Probe:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.snapshots: dict[str, tracemalloc.Snapshot] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or not path.startswith("/__memprobe/"):
            await self.app(scope, receive, send)
            return
        parts = path.strip("/").split("/")
        body: dict[str, Any]
        if parts[1] == "snapshot":
            self.snapshots[parts[2]] = tracemalloc.take_snapshot()
            body = {"ok": True, "traced": tracemalloc.get_traced_memory()[0]}
        else:
            body = self.diff(self.snapshots[parts[2]], self.snapshots[parts[3]])
        data = json.dumps(body).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": data})

    @staticmethod
    def diff(before: tracemalloc.Snapshot, after: tracemalloc.Snapshot) -> dict[str, Any]:
        stats = after.compare_to(before, "traceback")
        by_site: dict[str, list[int]] = {}
        for stat in stats:
            site = _where(stat.traceback)
            entry = by_site.setdefault(site, [0, 0])
            entry[0] += stat.size_diff
            entry[1] += stat.count_diff
        ranked = sorted(by_site.items(), key=lambda kv: -kv[1][0])
        return {
            "total_bytes": sum(s.size_diff for s in stats),
            "sites": [{"site": k, "bytes": v[0], "blocks": v[1]} for k, v in ranked[:60]],
        }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("kind", choices=["cabinet", "floor"])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--ws", default="auto")
    args = parser.parse_args()
    app: ASGIApp
    if args.kind == "floor":
        from floor_app import app
    else:
        # bench/realtime.py would shadow the realtime package: import the app from the root.
        sys.path[:] = [str(ROOT)] + [p for p in sys.path if Path(p or ".").resolve() != BENCH]
        from server.app import create_app

        app = create_app()
    # Started after the imports, which it would slow tenfold; only differences are reported.
    tracemalloc.start(FRAMES)
    uvicorn.run(
        Probe(app),
        host="127.0.0.1",
        port=args.port,
        ws=args.ws,
        ws_per_message_deflate=False,
        proxy_headers=True,
        log_level="warning",
    )


if __name__ == "__main__":
    main()
