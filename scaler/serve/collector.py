"""Where a refresh's collect and decisions run: a worker thread, or a child process.

A refresh of 2,000 ScaledObjects is a collect (Prometheus' JSON, the reductions) and 2,000 ``decide``
calls: 0.2-0.3 s of Python every 2 s on ``make bench``'s world (an ad-hoc timing, not a repo command). In
a worker thread of the serving process it holds the GIL the RPCs need, and they wait for it (``make
bench``'s profile: 31 % of the GIL samples, the RPC code 3.7 %). ``ProcessCollector`` runs the same
function in a child process that keeps its sources (and their history cache) from one refresh to the
next; the serving process only pickles the targets and unpickles the decisions (about 35 ms for 2,000 in
the same ad-hoc timing, in the executor's threads, not on the event loop).

Both return a ``Collected``: the decisions (or the source's message for a target it cannot answer for),
the time they were made at, and the queries the collect sent. Both run ``collect_and_decide``, so a
decision is the same wherever it was made (tested field by field); the child's clock is one it was
given (``time.time`` when serving). The server uses the child for its own Prometheus sources; an injected
source or clock (tests, the simulator's closed loop) stays in the thread.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field, replace
from typing import Protocol

from scaler.core.decision import Decision, decide
from scaler.core.target import Target
from scaler.sources.prometheus import QueryObserver
from scaler.sources.source import Key, Source

log = logging.getLogger("scaler.serve.collector")

# (query kind, seconds, error message or None) of each query a child's collect sent: replayed into the
# serving process' own metrics (``Telemetry.observe_query``).
QueryEvent = tuple[str, float, str | None]
# Builds the source for one Prometheus URL in the child, reporting each query to the observer. Must be
# picklable (a module-level function, or a functools.partial of one): the child is spawned, not forked.
SourceFactory = Callable[[str, QueryObserver], Source]


@dataclass(frozen=True)
class Collected:
    """One collect's outcome for a batch of targets. ``decided``: a Decision per target the source
    answered, or the source's message for one it cannot answer for; targets it returned nothing for are
    absent. ``now_s``: when the decisions were made. ``queries``: queries the collect sent."""

    decided: dict[Key, Decision | str]
    now_s: float
    queries: int = 0
    queries_observed: tuple[QueryEvent, ...] = field(default=())


def key_of(target: Target) -> Key:
    return (target.namespace, target.name, target.config.deployment)


def collect_and_decide(source: Source, targets: Sequence[Target], clock: Callable[[], float]) -> Collected:
    """One collect, then the pure core for each target. The same code in a thread and in the child."""
    observations = source.collect(targets)
    now_s = clock()
    decided: dict[Key, Decision | str] = {}
    for t in targets:
        key = key_of(t)
        obs = observations.get(key)
        if obs is not None and obs.error is not None:
            decided[key] = obs.error
        elif obs is not None:
            decided[key] = decide(obs.signals, obs.state, t.config, now_s)
    return Collected(decided, now_s, getattr(source, "queries_last_collect", 0))


class Collector(Protocol):
    async def collect(self, url: str, targets: Sequence[Target]) -> Collected: ...

    def close(self) -> None: ...


class ThreadCollector:
    """Collects in a worker thread of this process, with sources from ``source_for`` (kept per URL)."""

    def __init__(self, source_for: Callable[[str], Source], clock: Callable[[], float] = time.time) -> None:
        self._source_for = source_for
        self._clock = clock
        self._sources: dict[str, Source] = {}

    def source(self, url: str) -> Source:
        if url not in self._sources:
            self._sources[url] = self._source_for(url)
        return self._sources[url]

    async def collect(self, url: str, targets: Sequence[Target]) -> Collected:
        # Off the event loop: for 2,000 ScaledObjects the decisions take tens of milliseconds.
        return await asyncio.to_thread(collect_and_decide, self.source(url), targets, self._clock)

    def close(self) -> None:
        pass


class RefreshWorkerError(RuntimeError):
    """The child process could not collect: its source's message, or that the child died."""


class ProcessCollector:
    """Collects in one child process (spawned at ``start`` or on first use; respawned if it dies)."""

    def __init__(self, factory: SourceFactory, clock: Callable[[], float] = time.time) -> None:
        """``factory`` and ``clock`` must pickle (module-level functions): the child is spawned."""
        self._factory = factory
        self._clock = clock
        self._pool: ProcessPoolExecutor | None = None
        self._observe: QueryObserver | None = None

    def observe_queries(self, observe: QueryObserver) -> None:
        """Where the child's query events are replayed (the serving process' telemetry)."""
        self._observe = observe

    def _executor(self) -> ProcessPoolExecutor:
        if self._pool is None:
            self._pool = ProcessPoolExecutor(
                max_workers=1,
                # not fork: the serving process runs gRPC's threads, which a forked child must not inherit
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_child_init,
                initargs=(self._factory, self._clock, logging.getLogger().level),
            )
        return self._pool

    async def start(self) -> int:
        """Spawn the child now, so the first fetch does not wait for its imports; its process id."""
        return await asyncio.get_running_loop().run_in_executor(self._executor(), os.getpid)

    async def collect(self, url: str, targets: Sequence[Target]) -> Collected:
        pool = self._executor()
        try:
            out = await asyncio.get_running_loop().run_in_executor(pool, _child_collect, url, list(targets))
        except BrokenProcessPool as exc:
            if self._pool is pool:
                self._pool = None  # the next refresh spawns a new child
                pool.shutdown(wait=False, cancel_futures=True)
            raise RefreshWorkerError(f"the refresh process died ({exc}); starting a new one") from exc
        if self._observe is not None:
            for kind, seconds, error in out.queries_observed:
                self._observe(kind, seconds, None if error is None else RefreshWorkerError(error))
        if isinstance(out, _Failed):
            raise RefreshWorkerError(out.message)
        return out

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None


# -- the child ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Failed(Collected):
    message: str = ""


@dataclass
class _ChildState:
    """The child's state for its life: the factory, a Source per URL (each keeps its history read), and
    the query events of the collect in progress."""

    factory: SourceFactory | None = None
    clock: Callable[[], float] = time.time
    sources: dict[str, Source] = field(default_factory=dict)
    events: list[QueryEvent] = field(default_factory=list)


_child = _ChildState()


def _child_init(factory: SourceFactory, clock: Callable[[], float], log_level: int) -> None:
    logging.basicConfig(level=log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    _child.factory, _child.clock = factory, clock


def _child_observe(kind: str, seconds: float, error: Exception | None) -> None:
    _child.events.append((kind, seconds, None if error is None else str(error) or type(error).__name__))


def _child_collect(url: str, targets: list[Target]) -> Collected:
    _child.events.clear()
    try:
        source = _child.sources.get(url)
        if source is None:
            assert _child.factory is not None, "the child was started without a source factory"
            source = _child.sources[url] = _child.factory(url, _child_observe)
        out = collect_and_decide(source, targets, _child.clock)
    except Exception as exc:  # shipped back as a value: the child's exception types need not pickle
        out = _Failed({}, 0.0, message=str(exc) or type(exc).__name__)
    return replace(out, queries_observed=tuple(_child.events))
