"""The refresher: reads every known ScaledObject's signals in bounded batches and keeps the decisions.

RPCs never query Prometheus themselves: they answer from the latest snapshot, so KEDA's double polling
(operator + HPA) costs Prometheus nothing extra. A trigger seen for the first time (or with changed
metadata) is fetched at once, so its first answer is real; first fetches arriving together share one
collect (KEDA restarting with 2,000 ScaledObjects sends 2,000 GetMetricSpec at once). The wall clock is
read here, and for the time a decision is made at, by the collector (``collector``: a worker thread on
this refresher's clock, or the child process on the one it was given).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from scaler.core.config import ConfigError
from scaler.core.decision import Decision
from scaler.core.target import Target
from scaler.serve.collector import Collected, Collector, ThreadCollector, key_of
from scaler.serve.telemetry import Telemetry
from scaler.sources.source import Key, Source

log = logging.getLogger("scaler.serve.refresher")


# Entries the refresh updates on the event loop between two chances for the RPCs to run: the 2,000 of
# make bench's world in one go held the loop for 3-7 ms per refresh (ad-hoc timing with a 0-sleep ticker),
# which every RPC in flight waited out.
ENTRIES_PER_YIELD = 250


class Unavailable(RuntimeError):
    """The scaler does not know (no data, stale data, source down): KEDA should apply its fallback."""


@dataclass
class Entry:
    target: Target
    url: str
    last_used_s: float
    decision: Decision | None = None
    refreshed_at_s: float | None = None
    error: str | None = None
    subscribers: set[asyncio.Queue[Decision]] = field(default_factory=set)
    # The service's GetMetrics response for (decision, metric name): built once per refresh, not per call.
    response_memo: tuple[Decision, str, object] | None = None


@dataclass
class _FirstFetch:
    """New entries waiting for one shared collect on one Prometheus server."""

    entries: list[Entry]
    done: asyncio.Future[None]


class Refresher:
    """Owns the snapshot of decisions. All methods run on one asyncio loop."""

    def __init__(
        self,
        *,
        default_url: str | None,
        source_for: Callable[[str], Source],
        telemetry: Telemetry,
        period_s: float = 2.0,
        staleness_s: float = 60.0,
        expire_s: float = 900.0,
        clock: Callable[[], float] = time.time,
        collector: Collector | None = None,
    ) -> None:
        """``collector``: where collects and decisions run (``scaler.serve.collector``); by default a
        worker thread reading the sources ``source_for`` makes, on ``clock``."""
        self._default_url = default_url
        self.collector: Collector = collector or ThreadCollector(source_for, clock)
        self._queries: dict[str, int] = {}  # queries the last collect on each server sent
        self.telemetry = telemetry
        self.period_s = period_s
        self.staleness_s = staleness_s
        self.expire_s = expire_s
        self._clock = clock
        self._entries: dict[Key, Entry] = {}
        self._pending: dict[Key, asyncio.Future[None]] = {}
        self._first_fetch: dict[str, _FirstFetch] = {}  # the batch still open for joiners, per server
        self._first_fetch_lock: dict[str, asyncio.Lock] = defaultdict(asyncio.Lock)
        self._tasks: set[asyncio.Task[None]] = set()
        self.refreshes = 0

    # -- lookups ---------------------------------------------------------------------------------------
    def url_for(self, target: Target) -> str:
        url = target.config.server_address or self._default_url
        if url is None:
            raise ConfigError(
                "serverAddress", "is required because the scaler was started without --prometheus-url"
            )
        return url

    @property
    def entries(self) -> Mapping[Key, Entry]:
        return self._entries

    # -- the RPC side --------------------------------------------------------------------------------
    async def ensure(self, target: Target) -> Entry:
        """The entry for ``target``, fetched at once if it is new or its metadata changed."""
        key = _key(target)
        url = self.url_for(target)
        entry = self._entries.get(key)
        now = self._clock()
        # ``is`` first: the service's TargetCache hands back the same Target for the same map, so the
        # field-by-field comparison of two pydantic models runs only when the metadata changed.
        if entry is not None and (entry.target is target or entry.target == target) and entry.url == url:
            entry.last_used_s = now
            return entry
        pending = self._pending.get(key)
        if pending is None:
            if entry is None:
                entry = Entry(target=target, url=url, last_used_s=now)
                self._entries[key] = entry
            else:
                entry.target, entry.url, entry.decision, entry.refreshed_at_s = target, url, None, None
            self.telemetry.scaledobjects.set(len(self._entries))
            pending = self._join_first_fetch(url, entry)
            self._pending[key] = pending
            pending.add_done_callback(lambda _f: self._pending.pop(key, None))
        await asyncio.shield(pending)
        return self._entries[key]

    def _join_first_fetch(self, url: str, entry: Entry) -> asyncio.Future[None]:
        """Add ``entry`` to the open batch for ``url`` (opening one if none); the future is set when the
        batch's collect is done. One collect per server at a time: entries that arrive while it runs
        form the next batch, so 2,000 registrations cost a handful of collects, not 2,000."""
        batch = self._first_fetch.get(url)
        if batch is None:
            batch = _FirstFetch(entries=[], done=asyncio.get_running_loop().create_future())
            self._first_fetch[url] = batch
            task = asyncio.create_task(self._run_first_fetch(url, batch), name=f"first-fetch {url}")
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        batch.entries.append(entry)
        return batch.done

    async def _run_first_fetch(self, url: str, batch: _FirstFetch) -> None:
        try:
            async with self._first_fetch_lock[url]:
                if self._first_fetch.get(url) is batch:
                    del self._first_fetch[url]  # closed: later arrivals open the next batch
                await self._refresh_group(url, batch.entries)
        finally:
            if not batch.done.done():  # also on cancellation at shutdown: waiters then see "no data yet"
                batch.done.set_result(None)

    async def aclose(self) -> None:
        """Cancel the first fetches still running and wait for them (their waiters then see "no data
        yet"). Left pending, a stop during a first fetch (a SIGTERM while ScaledObjects register) closed
        the loop over it: "Task was destroyed but it is pending!", seen when a test's server stopped so."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def answer(self, entry: Entry) -> Decision:
        """The current decision; Unavailable if it is missing, invalid or older than the staleness bound."""
        now = self._clock()
        if entry.decision is None or entry.refreshed_at_s is None:
            raise Unavailable(f"no data yet for {_name(entry)}: {entry.error or 'first read pending'}")
        age = now - entry.refreshed_at_s
        if age > self.staleness_s:
            raise Unavailable(
                f"data for {_name(entry)} is {age:.0f} s old (staleness bound {self.staleness_s:g} s); "
                f"last error: {entry.error or 'none'}"
            )
        if not entry.decision.valid:
            raise Unavailable(f"{_name(entry)}: {entry.decision.reason.value}: {entry.decision.reason_note}")
        return entry.decision

    def subscribe(self, entry: Entry) -> asyncio.Queue[Decision]:
        queue: asyncio.Queue[Decision] = asyncio.Queue(maxsize=1)
        entry.subscribers.add(queue)
        self.telemetry.streams.inc()
        return queue

    def unsubscribe(self, entry: Entry, queue: asyncio.Queue[Decision]) -> None:
        if queue in entry.subscribers:
            entry.subscribers.discard(queue)
            self.telemetry.streams.dec()

    # -- the refresh loop ----------------------------------------------------------------------------
    async def run(self) -> None:
        """Refresh forever, every ``period_s``; cancellation stops it."""
        while True:
            started = time.monotonic()
            try:
                await self.refresh_all()
            except Exception:  # one bad refresh must not stop the loop; entries keep their last data
                log.exception("refresh failed")
            await asyncio.sleep(max(0.0, self.period_s - (time.monotonic() - started)))

    async def refresh_all(self) -> None:
        self._expire()
        groups: dict[str, list[Entry]] = defaultdict(list)
        for key, entry in self._entries.items():
            if key not in self._pending:
                groups[entry.url].append(entry)
        await asyncio.gather(*(self._refresh_group(url, entries) for url, entries in groups.items()))
        self.refreshes += 1
        # Queries one refresh sent, all Prometheus servers together: bounded by the number of signal
        # kinds and servers, not by the number of ScaledObjects (tested, and measured in make bench).
        self.telemetry.queries_per_refresh.set(sum(self._queries.get(url, 0) for url in groups))

    async def _refresh_group(self, url: str, entries: list[Entry]) -> None:
        targets = [e.target for e in entries]
        started = time.perf_counter()
        try:
            # Collect and decide off the event loop (a thread or another process), then publish the
            # decisions' metrics off it too: for 2,000 ScaledObjects either takes milliseconds that on
            # the loop would stall every RPC behind them.
            collected = await self.collector.collect(url, targets)
            await asyncio.to_thread(self._record, collected)
        except Exception as exc:  # the source names the server and query; keep last good data
            message = str(exc) or type(exc).__name__
            log.warning("refresh of %d ScaledObject(s) on %s failed: %s", len(entries), url, message)
            for e in entries:
                e.error = message
            return
        finally:
            self.telemetry.refresh_duration.observe(time.perf_counter() - started)
        self._queries[url] = collected.queries
        decided, now = collected.decided, collected.now_s
        for i, (e, target) in enumerate(zip(entries, targets, strict=True)):
            if i and not i % ENTRIES_PER_YIELD:
                await asyncio.sleep(0)  # let the RPCs waiting meanwhile run
            if e.target is not target:
                continue  # its metadata changed meanwhile: its own first fetch answers for the new one
            decision = decided.get(_key(target))
            if isinstance(decision, str):  # cannot be answered at all: no earlier answer stands either
                e.error, e.decision, e.refreshed_at_s = decision, None, None
                continue
            if decision is None:
                e.error = "source returned no signals for this ScaledObject"
                continue
            previous = e.decision
            e.decision, e.refreshed_at_s, e.error = decision, now, None
            if previous is None or previous.active != decision.active or previous.valid != decision.valid:
                log.info(
                    "%s: desired=%d active=%s reason=%s",
                    _name(e),
                    decision.desired_replicas,
                    decision.active,
                    decision.reason.value,
                )
                # A stream pushes only a change of a valid decision's activity, so only such a change
                # wakes its handler (200 open streams woke on every refresh, 100 times a second).
                self._notify(e, decision)

    def _record(self, collected: Collected) -> None:
        """Publish the decisions' metrics (prometheus_client metrics are thread-safe)."""
        for key, decision in collected.decided.items():
            if not isinstance(decision, str):
                self.telemetry.record(key, decision, collected.now_s)

    def _notify(self, entry: Entry, decision: Decision) -> None:
        for queue in list(entry.subscribers):
            with contextlib.suppress(asyncio.QueueEmpty):
                queue.get_nowait()  # keep only the newest
            queue.put_nowait(decision)

    def _expire(self) -> None:
        now = self._clock()
        for key, entry in list(self._entries.items()):
            if not entry.subscribers and now - entry.last_used_s > self.expire_s and key not in self._pending:
                del self._entries[key]
                self.telemetry.forget(key)
                log.info("forgot %s: not polled for %.0f s", _name(entry), now - entry.last_used_s)
        self.telemetry.scaledobjects.set(len(self._entries))


_key = key_of


def _name(entry: Entry) -> str:
    t = entry.target
    return f"{t.namespace}/{t.name} ({t.config.deployment})"
