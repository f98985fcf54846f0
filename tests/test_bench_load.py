"""The benchmark's own bookkeeping (bench/load.py): what it reports must mean what it says.

bench/ is not a package and its realtime.py would shadow ours, so its modules are loaded by
path under names of their own.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

BENCH = Path(__file__).resolve().parent.parent / "bench"


def _load(name: str, alias: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(alias, BENCH / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[alias] = module
    spec.loader.exec_module(module)
    return module


def _bench_load() -> ModuleType:
    # load.py does ``from seed import ...``: give it bench/seed.py under that name.
    if "seed" not in sys.modules:
        _load("seed", "seed")
    return _load("load", "bench_load")


def test_each_delivery_is_counted_under_the_route_it_took() -> None:
    load = _bench_load()
    tracker = load.Tracker(servers={"s:1": 0, "c:1": 0, "c:2": 1, "s:2": 1})
    sent = tracker.expect("m1", ["s:1", "c:1", "c:2"], "steady", "s:1")
    t0 = sent.t0
    tracker.delivered("m1", "s:1", t0 + 0.001)  # the sender's own tab
    tracker.delivered("m1", "c:1", t0 + 0.002)  # another tab on the sender's process
    tracker.delivered("m1", "c:2", t0 + 0.005)  # a tab on the other process
    stats = tracker.phase_stats("steady", t0, t0)
    routes = stats["delivery_ms_by_route"]
    assert {route: r["count"] for route, r in routes.items()} == {
        "own_tab": 1,
        "same_process": 1,
        "other_process": 1,
    }
    assert round(routes["own_tab"]["p50"]) == 1
    assert round(routes["same_process"]["p50"]) == 2
    assert round(routes["other_process"]["p50"]) == 5
    # The message itself waited for its slowest recipient.
    assert round(stats["latency_ms"]["p50"]) == 5


def test_a_duplicate_delivery_is_not_counted_as_a_route() -> None:
    load = _bench_load()
    tracker = load.Tracker(servers={"s:1": 0, "c:1": 1})
    sent = tracker.expect("m1", ["s:1", "c:1"], "steady", "s:1")
    tracker.delivered("m1", "c:1", sent.t0 + 0.003)
    tracker.delivered("m1", "c:1", sent.t0 + 0.004)
    assert tracker.duplicates == 1
    assert tracker.phase_stats("steady", sent.t0, sent.t0)["delivery_ms_by_route"] == {
        "other_process": {"p50": 3.0, "count": 1}
    }


def test_without_a_process_map_there_is_no_split() -> None:
    load = _bench_load()
    tracker = load.Tracker()
    sent = tracker.expect("m1", ["s:1", "c:1"], "steady", "s:1")
    tracker.delivered("m1", "s:1", sent.t0 + 0.001)
    tracker.delivered("m1", "c:1", sent.t0 + 0.002)
    assert tracker.phase_stats("steady", sent.t0, sent.t0)["delivery_ms_by_route"] == {}


def _bench_realtime() -> ModuleType:
    # realtime.py imports its siblings by their own names.
    for name in ("seed", "procs", "load"):
        if name not in sys.modules:
            _load(name, name)
    return _load("realtime", "bench_realtime")


def test_the_chart_draws_each_set_up(tmp_path: Path) -> None:
    realtime = _bench_realtime()
    results = [
        {"setup": "floor", "saturate": {"delivered_msgs_per_s": 4000.0}},
        {"setup": "sqlite", "saturate": {"delivered_msgs_per_s": 1100.0}},
        {"setup": "pg"},  # no saturation phase: a bar of zero, not a crash
    ]
    latencies = {"floor": [0.9, 1.1, 2.0], "sqlite": [2.5, 3.0, 9.0], "pg": []}
    png = tmp_path / "realtime.png"
    assert realtime.chart(results, latencies, png)
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    # IHDR: 12 × 4.5 inches at 110 dpi, the two panels side by side.
    assert int.from_bytes(data[16:20], "big") == 1320
    assert int.from_bytes(data[20:24], "big") == 495
