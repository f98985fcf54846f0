"""Short garbage-collector pauses for a web process that holds thousands of sockets.

Why: each open socket keeps a few dozen long-lived objects (its task's suspended coroutines,
its heartbeat timer, its parser). CPython's full (generation 2) collection walks all of them
and finds almost nothing to free: with 2,000 sockets it walked 300,000 objects in 200 to
280 ms, every 10 to 15 s under load, and every message waiting behind it was late by as
much (docs/performance.md, fifth round). After each full collection we therefore freeze
what survived (``gc.freeze``: a generation the collector never walks), so the next full
collection walks only what arrived since.

What it costs: an object that survived a full collection and later becomes cyclic garbage
(a closed socket's frames, mostly) stays in memory while frozen. A *complete* collection
(unfreeze everything, collect, freeze the survivors again) reclaims it: every
``interval`` seconds, or sooner once the frozen objects have grown by ``growth`` (half)
over what the last complete collection kept, so frozen garbage never exceeds half of the
live set. One pause of the old kind every few minutes instead of every few seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

log = logging.getLogger("cabinet.collector")


class FreezingCollector:
    def __init__(
        self,
        interval: float,
        *,
        growth: float = 0.5,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.interval = interval
        self.growth = growth
        self._clock = clock
        self._installed = False
        # Objects we froze since the last complete collection, and how many that one kept.
        self.frozen = 0
        self.kept = 0
        self.last_complete = clock()
        self.complete_collections = 0

    def install(self) -> None:
        if not self._installed:
            gc.callbacks.append(self._after_collection)
            self._installed = True

    def uninstall(self) -> None:
        """Stop freezing and give every frozen object back to the collector."""
        if self._installed:
            gc.callbacks.remove(self._after_collection)
            self._installed = False
        gc.unfreeze()
        self.frozen = 0

    def _after_collection(self, phase: str, info: dict[str, Any]) -> None:
        if phase != "stop" or info["generation"] != 2:
            return
        # Only what this collection walked is in generation 2 now: the survivors.
        survivors = len(gc.get_objects(generation=2))
        if self.frozen == 0:  # nothing was frozen: this collection walked everything
            self.kept = survivors
            self.last_complete = self._clock()
        self.frozen += survivors
        gc.freeze()

    def due(self) -> bool:
        grown = self.frozen - self.kept > self.growth * max(self.kept, 1)
        return grown or self._clock() - self.last_complete >= self.interval

    def collect_completely(self) -> int:
        """Collect over every object, frozen ones included; the survivors are frozen again
        by the callback. Returns the number of objects freed."""
        started = time.perf_counter()
        gc.unfreeze()
        self.frozen = 0
        freed = gc.collect()
        self.complete_collections += 1
        log.info(
            "complete collection: %d objects freed, %d kept, %.0f ms",
            freed,
            self.kept,
            (time.perf_counter() - started) * 1000,
        )
        return freed

    async def run(self, stop: asyncio.Event, tick: float = 5.0) -> None:
        """Run complete collections when due, until ``stop`` is set."""
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=tick)
            if not stop.is_set() and self.due():
                self.collect_completely()


@contextlib.asynccontextmanager
async def freezing_collector(minutes: float) -> AsyncIterator[FreezingCollector | None]:
    """The web process's collector policy for the length of its lifespan; 0 minutes leaves
    CPython's collector as it is."""
    if minutes <= 0:
        yield None
        return
    collector = FreezingCollector(minutes * 60)
    collector.install()
    stop = asyncio.Event()
    task = asyncio.create_task(collector.run(stop), name="complete-collections")
    try:
        yield collector
    finally:
        stop.set()
        await task
        collector.uninstall()
