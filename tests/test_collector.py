"""The web process's garbage-collector policy: survivors of a full collection are frozen,
and a complete collection now and then reclaims frozen cyclic garbage."""

from __future__ import annotations

import asyncio
import gc
import weakref
from collections.abc import Iterator

import pytest

from server.collector import FreezingCollector, freezing_collector


class Node:
    """An object in a reference cycle: only the cyclic collector can free it."""

    def __init__(self) -> None:
        self.me = self


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def collector(clock: Clock) -> Iterator[FreezingCollector]:
    c = FreezingCollector(600, clock=clock)
    c.install()
    try:
        yield c
    finally:
        c.uninstall()
    assert gc.get_freeze_count() == 0


def test_a_full_collection_freezes_its_survivors(collector: FreezingCollector) -> None:
    kept = Node()
    gc.collect()
    assert collector.frozen > 0 and gc.get_freeze_count() >= collector.frozen
    assert collector.kept == collector.frozen  # nothing was frozen before: a complete one
    # A frozen object is not walked again: the next full collection sees only newcomers.
    before = collector.frozen
    gc.collect()
    assert collector.frozen - before < before / 10
    del kept


def test_frozen_cyclic_garbage_waits_for_the_complete_collection(
    collector: FreezingCollector,
) -> None:
    node = Node()
    gone = weakref.ref(node)
    gc.collect()  # node survives (still referenced) and is frozen
    del node  # now it is cyclic garbage, but frozen
    gc.collect()
    assert gone() is not None
    assert collector.collect_completely() > 0
    assert gone() is None
    assert collector.complete_collections == 1
    assert gc.get_freeze_count() > 0  # the survivors of the complete one are frozen again


def test_a_complete_collection_is_due_on_time_or_on_growth(
    collector: FreezingCollector, clock: Clock
) -> None:
    gc.collect()
    assert not collector.due()
    clock.now += 599
    assert not collector.due()
    clock.now += 1
    assert collector.due()

    collector.collect_completely()
    assert collector.last_complete == clock.now and not collector.due()
    # New survivors frozen since: more than half of what the complete collection kept.
    grown = [Node() for _ in range(collector.kept // 2 + 100)]
    gc.collect()
    assert collector.due()
    del grown


async def test_the_lifespan_policy_installs_and_leaves_nothing_frozen() -> None:
    callbacks = list(gc.callbacks)
    async with freezing_collector(0) as none:
        assert none is None and gc.callbacks == callbacks
    async with freezing_collector(10) as active:
        assert active is not None and len(gc.callbacks) == len(callbacks) + 1
        gc.collect()
        assert gc.get_freeze_count() > 0
        await asyncio.sleep(0)
    assert gc.callbacks == callbacks and gc.get_freeze_count() == 0
