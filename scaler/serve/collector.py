"""Where a refresh's collect and decisions run: a worker thread, or a child process.

A refresh of 2,000 ScaledObjects is a collect (Prometheus' JSON, the reductions) and 2,000 ``decide``
calls: 0.2-0.3 s of Python every 2 s on ``make bench``'s world (an ad-hoc timing, not a repo command). In
a worker thread of the serving process it holds the GIL the RPCs need, and they wait for it (``make
bench``'s profile: 31 % of the GIL samples, the RPC code 3.7 %). ``ProcessCollector`` runs the same
function in a child process that keeps its sources (and their history cache) from one refresh to the
next.

What crosses between the processes is kept small, because pickling holds the GIL for the whole of one
call: the targets of a Prometheus server go to the child once and again only when they change (a list of
2,000 took 17 ms to pickle, every refresh), and the decisions come back pickled in chunks of
``DECISIONS_PER_CHUNK``, unpickled one chunk at a time in a worker thread, so an RPC waits at most one
chunk's unpickling (about 1.5 ms) instead of the whole (31 ms for 2,000, one call: the serving process'
p99 was twice the empty server's). Only decisions that changed cross: a decision equal in every field
but its time to the one last sent for its ScaledObject crosses as its position in the list, and this
side restamps the one it holds. A Deployment idle at zero, or holding on missing data, decides the same
every refresh; 2,000 decisions were 3.6 MB of pickles every 2 s on make bench's world, whose fake pods
report steady load. Timings and sizes from ad-hoc runs on make bench's world, not a repo command.

Both return a ``Collected``: the decisions (or the source's message for a target it cannot answer for),
the time they were made at, and the queries the collect sent. Both run ``collect_and_decide``, so a
decision is the same wherever it was made (tested field by field); the child's clock is one it was
given (``time.time`` when serving). The server uses the child for its own Prometheus sources; an injected
source or clock (tests, the simulator's closed loop) stays in the thread.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import multiprocessing
import operator
import os
import pickle
import time
from array import array
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from typing import Protocol

from scaler.core.decision import Decision, decide
from scaler.core.state import Observation
from scaler.core.target import Target
from scaler.serve.targets import MAX_TARGETS
from scaler.sources.prometheus import QueryObserver
from scaler.sources.source import Key, Source

log = logging.getLogger("scaler.serve.collector")

# (query kind, seconds, error message or None) of each query a child's collect sent: replayed into the
# serving process' own metrics (``Telemetry.observe_query``).
QueryEvent = tuple[str, float, str | None]
# Builds the source for one Prometheus URL in the child, reporting each query to the observer. Must be
# picklable (a module-level function, or a functools.partial of one): the child is spawned, not forked.
SourceFactory = Callable[[str, QueryObserver], Source]
# Decisions per pickled chunk the child sends back: ~1.5 ms to unpickle 100 (31 ms for 2,000), so an RPC
# that needs the GIL meanwhile waits one chunk, not the whole refresh.
DECISIONS_PER_CHUNK = 100


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


# Every field of a Decision but the time it was made at: two decisions equal in these are the same answer
# for the same reasons (NaN is unequal to itself, so a decision holding one always crosses: safe side).
_ANSWER_FIELDS = operator.attrgetter(*(f.name for f in dataclasses.fields(Decision) if f.name != "now_s"))


def same_answer(last: Decision | str | None, new: Decision | str) -> bool:
    """Whether ``new`` says what ``last`` said (a source's message, or every Decision field but now_s)."""
    if isinstance(last, Decision) and isinstance(new, Decision):
        return last is new or _ANSWER_FIELDS(last) == _ANSWER_FIELDS(new)
    return isinstance(last, str) and last == new


def restamped(decision: Decision, now_s: float) -> Decision:
    """``dataclasses.replace(decision, now_s=now_s)``: the same fields, made at ``now_s``. A copy of the
    frozen dataclass' attributes (0.8 us against replace's 6.6: replace re-runs __init__ over 19 fields,
    and this runs for every unchanged decision of every refresh; tested equal to replace)."""
    if decision.now_s == now_s:
        return decision
    copy = object.__new__(Decision)
    copy.__dict__.update(decision.__dict__)
    copy.__dict__["now_s"] = now_s
    return copy


# Per key, the Observation a decision was made from, the target it was made for, and the decision.
Decided = dict[Key, tuple[Observation, Target, Decision]]


def collect_and_decide(
    source: Source, targets: Sequence[Target], clock: Callable[[], float], held: Decided | None = None
) -> Collected:
    """One collect, then the pure core for each target. The same code in a thread and in the child.

    ``held``: the last collect's decisions, replaced by this one's. A target whose source returned the very
    Observation object it decided from last time (the source's promise: nothing in it ages) for the same
    Target gets that decision restamped, not decided again: 1,950 of make bench's 2,000 ScaledObjects
    read nothing at all, and deciding them took 66 ms of every 2 s refresh (ad-hoc timing)."""
    observations = source.collect(targets)
    now_s = clock()
    decided: dict[Key, Decision | str] = {}
    last = dict(held) if held is not None else {}
    if held is not None:
        held.clear()  # only this collect's targets: a key of a ScaledObject gone does not stay
    for t in targets:
        key = key_of(t)
        obs = observations.get(key)
        if obs is not None and obs.error is not None:
            decided[key] = obs.error
        elif obs is not None:
            before = last.get(key)
            if before is not None and before[0] is obs and before[1] is t:
                decision = restamped(before[2], now_s)
            else:
                decision = decide(obs.signals, obs.state, t.config, now_s)
            decided[key] = decision
            if held is not None:
                held[key] = (obs, t, decision)
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
        self._decided: dict[str, Decided] = {}

    def source(self, url: str) -> Source:
        if url not in self._sources:
            self._sources[url] = self._source_for(url)
        return self._sources[url]

    async def collect(self, url: str, targets: Sequence[Target]) -> Collected:
        # Off the event loop: for 2,000 ScaledObjects the decisions take tens of milliseconds.
        held = self._decided.setdefault(url, {})
        return await asyncio.to_thread(collect_and_decide, self.source(url), targets, self._clock, held)

    def close(self) -> None:
        pass


class RefreshWorkerError(RuntimeError):
    """The child process could not collect: its source's message, or that the child died."""


class ProcessCollector:
    """Collects in one child process (spawned at ``start`` or on first use; respawned if it dies)."""

    def __init__(self, factory: SourceFactory, clock: Callable[[], float] = time.time, nice: int = 0) -> None:
        """``factory`` and ``clock`` must pickle (module-level functions): the child is spawned. ``nice``:
        added to the child's niceness (it can only lower its own priority)."""
        self._factory = factory
        self._clock = clock
        self._nice = nice
        self._pool: ProcessPoolExecutor | None = None
        self._observe: QueryObserver | None = None
        # Per Prometheus URL, what the child holds, mirrored: every target sent (by key) and the list of
        # the last collect. One collect at a time talks to the child (it has one worker anyway), so both
        # sides apply the same changes in the same order.
        self._held: dict[str, dict[Key, Target]] = {}
        self._last: dict[str, list[Target]] = {}
        # Per URL, the last decision the child sent for each key, mirrored the same way. A URL not here
        # (never collected, or this side lost step with the child) asks the child for every decision.
        self._decided: dict[str, dict[Key, Decision | str]] = {}
        self.last_crossed = 0  # decisions the last collect pickled across (the rest were unchanged)
        self._lock = asyncio.Lock()

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
                initargs=(self._factory, self._clock, logging.getLogger().level, self._nice),
            )
        return self._pool

    async def start(self) -> int:
        """Spawn the child now, so the first fetch does not wait for its imports; its process id."""
        return await asyncio.get_running_loop().run_in_executor(self._executor(), os.getpid)

    async def collect(self, url: str, targets: Sequence[Target]) -> Collected:
        async with self._lock:
            out = await self._collect_in_child(url, targets)
            # Under the lock: this side applies the child's changes to the decisions it holds in the
            # order the child made them.
            collected = (
                None if out.error is not None else await asyncio.to_thread(self._unpack, url, targets, out)
            )
        if self._observe is not None:
            for kind, seconds, error in out.queries_observed:
                self._observe(kind, seconds, None if error is None else RefreshWorkerError(error))
        if collected is None:
            raise RefreshWorkerError(out.error or "the refresh process sent nothing")
        return collected

    def _unpack(self, url: str, targets: Sequence[Target], out: _Shipped) -> Collected:
        """The Collected: the changed decisions one chunk at a time (the GIL can change hands between
        chunks), the unchanged ones restamped from those this side holds."""
        held = self._decided.setdefault(url, {})
        if out.decisions_reset:
            held.clear()
        decided: dict[Key, Decision | str] = {}
        for chunk in out.chunks:
            decided.update(pickle.loads(chunk))
        held.update(decided)
        self.last_crossed = len(decided)
        for i in array("I", out.unchanged):
            key = key_of(targets[i])
            last = held.get(key)
            if last is None:  # out of step: the next collect asks for every decision
                self._decided.pop(url, None)
                raise RefreshWorkerError(
                    f"the refresh process said the decision for {key} is unchanged, but none is held here; "
                    "the next refresh sends every decision"
                )
            decided[key] = last if isinstance(last, str) else restamped(last, out.now_s)
        return Collected(decided, out.now_s, out.queries, out.queries_observed)

    async def _collect_in_child(self, url: str, targets: Sequence[Target]) -> _Shipped:
        pool = self._executor()
        change = self._change(url, targets)
        if url not in self._decided:
            change = dataclasses.replace(change, resend_decisions=True)
        try:
            out = await asyncio.get_running_loop().run_in_executor(pool, _child_collect, url, change)
        except BrokenProcessPool as exc:
            if self._pool is pool:
                self._pool = None  # the next refresh spawns a new child, which holds no targets
                self._held.clear()
                self._last.clear()
                self._decided.clear()
                pool.shutdown(wait=False, cancel_futures=True)
            raise RefreshWorkerError(f"the refresh process died ({exc}); starting a new one") from exc
        if out.targets_lost:  # a change the child could not apply (out of step): both start url afresh
            self._held.pop(url, None)
            self._last.pop(url, None)
        else:
            held = self._held.setdefault(url, {})
            if change.reset:
                held.clear()
            held.update((key_of(t), t) for t in change.fresh)
            self._last[url] = list(targets)
        return out

    def _change(self, url: str, targets: Sequence[Target]) -> _TargetChange:
        """What the child needs to know this collect's targets: nothing if they are the very objects of
        its last collect for ``url`` (every refresh but those after a ScaledObject came, went or changed),
        else every key in order and the targets it does not hold (a Target is replaced, never mutated:
        changed metadata is a new object). What it holds is cleared past ``MAX_TARGETS``, so a client
        inventing names cannot grow it without bound."""
        last = self._last.get(url)
        if last is not None and len(last) == len(targets) and all(map(operator.is_, last, targets)):
            return _TargetChange(None, [])
        held = self._held.get(url, {})
        keys = [key_of(t) for t in targets]
        fresh = [t for k, t in zip(keys, targets, strict=True) if held.get(k) is not t]
        if len(held) + len(fresh) > MAX_TARGETS:
            return _TargetChange(keys, list(targets), reset=True)
        return _TargetChange(keys, fresh)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None


# -- the child ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _TargetChange:
    """The targets of one collect, as a change to what the child holds for its URL: ``keys`` None for
    the same list as its last collect; else the keys in order, with ``fresh`` the targets it does not
    hold yet (``reset``: forget the others first)."""

    keys: list[Key] | None
    fresh: list[Target]
    reset: bool = False
    resend_decisions: bool = False  # forget the decisions sent for the URL: send every one this time


@dataclass(frozen=True)
class _Shipped:
    """What the child sends back: the decisions that changed in pickled chunks (``DECISIONS_PER_CHUNK``
    each), ``unchanged`` the positions in the collect's target list (``array("I")`` bytes) whose decision
    says what the one last sent for its key said; or ``error`` (the source's message: the child's
    exception types need not pickle); ``targets_lost`` if the child could not apply the targets' change
    and dropped what it held for the URL; ``decisions_reset`` if it forgot the decisions it had sent
    for the URL before this collect (so this one sends every decision)."""

    chunks: tuple[bytes, ...]
    now_s: float
    queries: int
    queries_observed: tuple[QueryEvent, ...]
    error: str | None = None
    targets_lost: bool = False
    unchanged: bytes = b""
    decisions_reset: bool = False


@dataclass
class _ChildState:
    """The child's state for its life: the factory, a Source per URL (each keeps its history read), per
    URL the targets sent (by key) and the last collect's list, and the query events of the collect in
    progress."""

    factory: SourceFactory | None = None
    clock: Callable[[], float] = time.time
    sources: dict[str, Source] = field(default_factory=dict)
    held: dict[str, dict[Key, Target]] = field(default_factory=dict)
    last: dict[str, list[Target]] = field(default_factory=dict)
    sent: dict[str, dict[Key, Decision | str]] = field(default_factory=dict)
    decided: dict[str, Decided] = field(default_factory=dict)
    events: list[QueryEvent] = field(default_factory=list)


_child = _ChildState()


def _child_init(factory: SourceFactory, clock: Callable[[], float], log_level: int, nice: int) -> None:
    logging.basicConfig(level=log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if nice:
        os.nice(nice)
    _child.factory, _child.clock = factory, clock


def _child_observe(kind: str, seconds: float, error: Exception | None) -> None:
    _child.events.append((kind, seconds, None if error is None else str(error) or type(error).__name__))


def _child_targets(url: str, change: _TargetChange) -> list[Target]:
    if change.keys is None:
        return _child.last[url]
    held = _child.held.setdefault(url, {})
    if change.reset:
        held.clear()
    held.update((key_of(t), t) for t in change.fresh)
    _child.last[url] = [held[k] for k in change.keys]
    return _child.last[url]


def _child_collect(url: str, change: _TargetChange) -> _Shipped:
    _child.events.clear()
    try:
        targets = _child_targets(url, change)
    except KeyError as exc:  # out of step with the serving process: both sides start this URL afresh
        _child.held.pop(url, None)
        _child.last.pop(url, None)
        return _Shipped(
            (), 0.0, 0, (), error=f"the refresh process lost its targets ({exc})", targets_lost=True
        )
    try:
        source = _child.sources.get(url)
        if source is None:
            assert _child.factory is not None, "the child was started without a source factory"
            source = _child.sources[url] = _child.factory(url, _child_observe)
        out = collect_and_decide(source, targets, _child.clock, _child.decided.setdefault(url, {}))
    except Exception as exc:  # shipped back as a value: the child's exception types need not pickle
        return _Shipped((), 0.0, 0, tuple(_child.events), error=str(exc) or type(exc).__name__)
    sent = _child.sent.setdefault(url, {})
    # Past the bound (keys of ScaledObjects long gone pile up here) forget them all and send everything.
    reset = change.resend_decisions or len(sent) > MAX_TARGETS
    if reset:
        sent.clear()
    changed: list[tuple[Key, Decision | str]] = []
    unchanged = array("I")
    for i, t in enumerate(targets):
        key = key_of(t)
        decision = out.decided.get(key)
        if decision is None:
            continue
        if same_answer(sent.get(key), decision):
            unchanged.append(i)
        else:
            changed.append((key, decision))
            sent[key] = decision
    chunks = tuple(
        pickle.dumps(dict(changed[i : i + DECISIONS_PER_CHUNK]), protocol=pickle.HIGHEST_PROTOCOL)
        for i in range(0, len(changed), DECISIONS_PER_CHUNK)
    )
    return _Shipped(
        chunks,
        out.now_s,
        out.queries,
        tuple(_child.events),
        unchanged=unchanged.tobytes(),
        decisions_reset=reset,
    )
