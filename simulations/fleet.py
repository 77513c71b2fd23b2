"""The simulated fleet: replicas (loading, Ready, draining), the gateway in front of them, and the metrics
each pod would expose.

Routing: a request goes to the Ready replica with the fewest requests outstanding (what an inference gateway
or a least-request load balancer does; a Kubernetes Service only ever routes to Ready endpoints). With no
Ready replica it waits at the gateway (Knative's activator, KEDA's HTTP add-on interceptor, an inference
gateway) and is dropped after ``gateway_timeout_s``. Requests still unfinished at the horizon count as
dropped too. Arrivals are routed in the step they arrive in and reach the engine at their own time (the
replica model does not work on a prompt before it arrives), so a 0.25 s step adds no wait of its own.

Replicas: a new one loads for its cold start (counted in GPU time) before it is Ready. Scale-down follows the
ReplicaSet controller's ranking (not-Ready pods first, then the most recently Ready): a removed Ready pod
stops receiving requests and drains what it holds (graceful termination), using its GPU until it is empty.

Metrics (``exposition``): per pod, what vLLM exports (running/waiting, KV-cache usage, token and request
counters, TTFT, e2e, prefill-time, inter-token, per-request TPOT and token-count histograms with vLLM's
buckets), as seen by the engine: time a request spent at the gateway while no replica was Ready is in the
user's TTFT (scored) but not in the pod's histograms. Histogram counts of inter-token latency are fluid
(fractions of a token per step), an artefact of integrating decode over a step.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from simulations.exposition import (
    TRITON_FIRST_RESPONSE_MS,
    TRT_LLM_TOKEN_BUCKETS,
    HistogramFamily,
    triton_rows,
    trtllm_rows,
    vllm_histograms,
    vllm_rows,
)
from simulations.profile import HardwareProfile
from simulations.replica import admit, serve
from simulations.trace import Trace

FREE, LOADING, READY, DRAINING = 0, 1, 2, 3
TTFT, E2E, PREFILL, ITL, TPOT, PROMPT_TOKENS, GENERATION_TOKENS = range(7)  # order of vllm_histograms


class HistogramBank:
    """One histogram family for every replica slot: per-bucket counts (not cumulative) and sums.

    Observations are queued and added in one go when the counts are read (a scrape every 15 s per pod),
    not on every 0.25 s step: the same sums, a tenth of the numpy calls."""

    def __init__(self, family: HistogramFamily, cap: int) -> None:
        self.bounds = np.asarray(family.bounds)
        self.width = len(family.bounds) + 1
        self._counts = np.zeros((cap, self.width))
        self._sums = np.zeros(cap)
        self._pending: list[tuple[np.ndarray, np.ndarray, np.ndarray | None]] = []

    def observe(self, slots: np.ndarray, values: np.ndarray, weights: np.ndarray | None = None) -> None:
        if len(slots):
            self._pending.append((slots, values, weights))

    def _flush(self) -> None:
        """Prometheus buckets are inclusive (``le``): 0.25 lands in le="0.25"."""
        if not self._pending:
            return
        slots = np.concatenate([p[0] for p in self._pending])
        values = np.concatenate([p[1] for p in self._pending])
        weights = np.concatenate([np.ones(len(p[0])) if p[2] is None else p[2] for p in self._pending])
        self._pending.clear()
        b = self.bounds.searchsorted(values, side="left")
        np.add.at(self._counts.reshape(-1), slots * self.width + b, weights)  # a view: counts is contiguous
        np.add.at(self._sums, slots, values * weights)

    @property
    def counts(self) -> np.ndarray:
        self._flush()
        return self._counts

    @property
    def sums(self) -> np.ndarray:
        self._flush()
        return self._sums

    def reset(self, slot: int) -> None:
        self._flush()
        self._counts[slot] = 0.0
        self._sums[slot] = 0.0


@dataclass
class FleetConfig:
    profile: HardwareProfile
    cold_start_s: float = 60.0
    cold_start_jitter: float = 0.1  # each start is cold_start_s x U(1 - j, 1 + j)
    gateway_timeout_s: float = 300.0
    max_replicas: int = 64
    seed: int = 0


@dataclass
class Fleet:
    trace: Trace
    config: FleetConfig
    initial_replicas: int = 1
    start_s: float = 0.0  # when the initial replicas were Ready (before the first step)
    cold_starts: int = 0
    gpu_seconds: float = 0.0
    cold_start_samples_s: list[float] = field(default_factory=list)
    status_version: int = 0  # bumped whenever a pod starts, becomes Ready, drains or leaves

    def __post_init__(self) -> None:
        p = self.config.profile
        tr = self.trace
        n = len(tr)
        self.arrival = tr.arrival_s.astype(np.float64)
        if p.per_item:
            self.prompt = np.ones(n)  # one item per request, no decode
            self.output = np.ones(n)
        else:
            self.prompt = tr.input_tokens.astype(np.float64)
            self.output = tr.output_tokens.astype(np.float64)
        self.kv_need = self.prompt + self.output
        self.rep = np.full(n, -1, dtype=np.int64)
        self.prefill_left = self.prompt.copy()
        self.decode_left = self.output - 1
        self.admitted = np.zeros(n, dtype=bool)
        self.ttft = np.full(n, np.nan)
        # When the engine first saw each request (arrival, or when the gateway could route it), when it was
        # first scheduled (admitted to the running batch) and when its first token came, in engine time.
        self.engine_arrival = self.arrival.copy()
        self.scheduled_at = np.full(n, np.nan)
        self.first_token_at = np.full(n, np.nan)
        self.e2e = np.full(n, np.nan)
        self.dropped = np.zeros(n, dtype=bool)
        self.next_arrival = 0
        self.gateway = np.zeros(0, dtype=np.int64)
        self.active = np.zeros(0, dtype=np.int64)  # assigned to a replica, in arrival order
        cap = 4 * self.config.max_replicas + 8
        self.cap = cap
        self.status = np.zeros(cap, dtype=np.int8)
        self.ready_at = np.zeros(cap)
        self.created_at = np.zeros(cap)
        self.pod_id = np.full(cap, -1, dtype=np.int64)
        self.gen_total = np.zeros(cap)
        self.prompt_total = np.zeros(cap)
        self.success_total = np.zeros(cap)
        self.busy = np.zeros(cap)
        # TensorRT-LLM's iteration counter, and the prompt tokens per iteration of the last step (its
        # per-iteration total_context_tokens gauge).
        self.iterations_total = np.zeros(cap)
        self.context_per_iteration = np.zeros(cap)
        self.histograms = [HistogramBank(f, cap) for f in vllm_histograms(p.max_model_len)]
        first_response = HistogramFamily(
            "nv_inference_first_response_histogram_ms", TRITON_FIRST_RESPONSE_MS, ""
        )
        self.first_response_ms = HistogramBank(first_response, cap)  # Triton's, in ms
        # TensorRT-LLM's nv_llm_input_token_len / nv_llm_output_token_len (tokens per finished request).
        self.trt_tokens = [
            HistogramBank(HistogramFamily(name, TRT_LLM_TOKEN_BUCKETS, ""), cap)
            for name in ("nv_llm_input_token_len", "nv_llm_output_token_len")
        ]
        self._next_pod = 0
        self._used, self._used_version = 1, -1
        self._holding, self._holding_version = 0, -1
        self._replicas, self._replicas_version = 0, -1
        self._slots: dict[int, int] = {}
        self._slots_version = -1
        self._pending_version, self._next_ready_s, self._draining = -1, math.inf, False
        self._rng = np.random.default_rng(self.config.seed)
        for _ in range(self.initial_replicas):
            slot = self._new_slot(self.start_s)
            self.status[slot] = READY  # the initial replicas are up before the trace starts
            self.ready_at[slot] = self.start_s

    # -- replicas ------------------------------------------------------------------------------------
    def _new_slot(self, t_s: float) -> int:
        free = np.flatnonzero(self.status == FREE)
        if not len(free):
            raise RuntimeError("fleet slot table full: raise max_replicas")
        slot = int(free[0])
        self.pod_id[slot] = self._next_pod
        self._next_pod += 1
        self.created_at[slot] = t_s
        self.gen_total[slot] = self.prompt_total[slot] = self.success_total[slot] = 0.0
        for h in (*self.histograms, self.first_response_ms, *self.trt_tokens):
            h.reset(slot)
        self.busy[slot] = 0.0
        self.iterations_total[slot] = self.context_per_iteration[slot] = 0.0
        return slot

    @property
    def replicas(self) -> int:
        """Deployment replicas as the Kubernetes API counts them: loading + Ready (terminating excluded)."""
        if self._replicas_version != self.status_version:
            self._replicas_version = self.status_version
            self._replicas = int(np.count_nonzero((self.status == LOADING) | (self.status == READY)))
        return self._replicas

    @property
    def ready(self) -> int:
        return int(np.count_nonzero(self.status == READY))

    @property
    def loading(self) -> int:
        return int(np.count_nonzero(self.status == LOADING))

    @property
    def holding(self) -> int:
        """Replicas holding GPUs: loading, Ready and draining."""
        if self._holding_version != self.status_version:
            self._holding_version = self.status_version
            self._holding = int(np.count_nonzero(self.status != FREE))
        return self._holding

    def slot_of(self, pod_id: int) -> int:
        """The slot of a pod that holds one (a scrape target's pod)."""
        if self._slots_version != self.status_version:
            self._slots_version = self.status_version
            used = np.flatnonzero(self.status != FREE)
            self._slots = dict(zip(self.pod_id[used].tolist(), used.tolist(), strict=True))
        return self._slots[pod_id]

    def scale_to(self, replicas: int, t_s: float) -> None:
        """Set the Deployment's replicas; new pods start loading, removed ones drain."""
        replicas = max(0, min(replicas, self.config.max_replicas))
        current = self.replicas
        if replicas != current:
            self.status_version += 1
        if replicas > current:
            j = self.config.cold_start_jitter
            for _ in range(replicas - current):
                slot = self._new_slot(t_s)
                self.status[slot] = LOADING
                start_s = self.config.cold_start_s * float(self._rng.uniform(1 - j, 1 + j))
                self.ready_at[slot] = t_s + start_s
                self.cold_starts += 1
        elif replicas < current:
            remove = current - replicas
            loading = np.flatnonzero(self.status == LOADING)
            loading = loading[np.argsort(-self.created_at[loading], kind="stable")]
            for slot in loading[:remove]:
                self.status[slot] = FREE
            remove -= min(remove, len(loading))
            if remove:
                ready = np.flatnonzero(self.status == READY)
                ready = ready[np.argsort(-self.ready_at[ready], kind="stable")]
                for slot in ready[:remove]:
                    self.status[slot] = DRAINING

    def _advance_replicas(self, t_s: float) -> None:
        if self._pending_version != self.status_version:  # what may change: cached until a pod changes
            self._pending_version = self.status_version
            loading = self.status == LOADING
            self._next_ready_s = float(self.ready_at[loading].min()) if loading.any() else math.inf
            self._draining = bool((self.status == DRAINING).any())
        if t_s < self._next_ready_s and not self._draining:
            return
        up = (self.status == LOADING) & (self.ready_at <= t_s)
        for slot in np.flatnonzero(up):
            self.status_version += 1
            self.status[slot] = READY
            self.cold_start_samples_s.append(float(self.ready_at[slot] - self.created_at[slot]))
        draining = np.flatnonzero(self.status == DRAINING)
        if len(draining):
            held = np.bincount(self.rep[self.active], minlength=self.cap) if len(self.active) else None
            for slot in draining:
                if held is None or held[slot] == 0:
                    self.status_version += 1
                    self.status[slot] = FREE

    # -- requests ------------------------------------------------------------------------------------
    def _route(self, t_s: float, dt_s: float) -> None:
        """Route what arrives in [t_s, t_s + dt_s) now (each reaches its engine at its own arrival time) and
        what waited at the gateway (it reaches the engine now)."""
        j = int(np.searchsorted(self.arrival, t_s + dt_s, side="left"))
        if j > self.next_arrival:
            self.gateway = np.concatenate([self.gateway, np.arange(self.next_arrival, j)])
            self.next_arrival = j
        if not len(self.gateway):
            return
        ready = np.flatnonzero(self.status == READY)
        if not len(ready):
            late = t_s - self.arrival[self.gateway] > self.config.gateway_timeout_s
            if late.any():
                self.dropped[self.gateway[late]] = True
                self.gateway = self.gateway[~late]
            return
        waited = self.gateway
        self.engine_arrival[waited] = np.maximum(self.arrival[waited], t_s)
        outstanding = np.bincount(self.rep[self.active], minlength=self.cap)[ready].tolist()
        ready_l = ready.tolist()
        for i in self.gateway.tolist():
            k = min(range(len(ready_l)), key=outstanding.__getitem__)
            self.rep[i] = ready_l[k]
            outstanding[k] += 1
        self.active = np.concatenate([self.active, self.gateway])
        self.gateway = np.zeros(0, dtype=np.int64)

    def step(self, t_s: float, dt_s: float) -> None:
        """Advance [t_s, t_s + dt_s): replicas become Ready or leave, arrivals route, replicas serve."""
        self._advance_replicas(t_s)
        self._route(t_s, dt_s)
        self.gpu_seconds += self.holding * self.config.profile.gpus_per_replica * dt_s
        self.busy[:] = 0.0
        self.context_per_iteration[:] = 0.0
        if not len(self.active):
            return
        p = self.config.profile
        a = self.active
        adm = self.admitted[a]
        if not adm.all():
            run = a[adm]
            held = np.bincount(self.rep[run], minlength=self.cap)
            kv = np.bincount(self.rep[run], weights=self.kv_need[run], minlength=self.cap)
            w = a[~adm]
            ok = admit(self.rep[w], self.kv_need[w], p.max_num_seqs - held, p.kv_cache_tokens - kv)
            newly = w[ok]
            self.admitted[newly] = True
            self.scheduled_at[newly] = np.maximum(self.engine_arrival[newly], t_s)
            adm = self.admitted[a]
        run = a[adm]
        if not len(run):
            return
        pl = self.prefill_left[run]
        dl = self.decode_left[run]
        # Only slots up to the highest one in use: bincounts over 20 slots, not the whole table.
        if self._used_version != self.status_version:
            self._used_version = self.status_version
            self._used = int(np.flatnonzero(self.status)[-1]) + 1 if self.status.any() else 1
        used = self._used
        out = serve(p, t_s, dt_s, used, self.rep[run], pl, dl, self.prompt[run], self.scheduled_at[run])
        self.prefill_left[run] = pl
        self.decode_left[run] = dl
        self.busy[:used] = out.busy_fraction
        self.gen_total[:used] += out.generated_tokens
        self.prompt_total[:used] += out.prompt_tokens
        self.iterations_total[:used] += out.iterations
        self.context_per_iteration[:used] = np.divide(
            out.prompt_tokens, out.iterations, out=np.zeros(used), where=out.iterations > 0
        )
        h = self.histograms
        tokens = np.concatenate([out.tokens_mixed, out.tokens_decode])
        has = np.flatnonzero(tokens > 0)
        if len(has):
            gaps = np.concatenate([out.itl_mixed_s, out.itl_decode_s])
            h[ITL].observe(has % used, gaps[has], tokens[has])
        first = ~np.isnan(out.prefill_done_at_s)
        if first.any():
            ids = run[first]
            at = out.prefill_done_at_s[first]
            self.first_token_at[ids] = at
            self.ttft[ids] = at - self.arrival[ids]
            h[TTFT].observe(self.rep[ids], at - self.engine_arrival[ids])
            self.first_response_ms.observe(self.rep[ids], 1000.0 * (at - self.engine_arrival[ids]))
        fin = ~np.isnan(out.finished_at_s)
        if fin.any():
            ids = run[fin]
            self._finish(ids, out.finished_at_s[fin])
            keep = np.ones(len(a), dtype=bool)
            keep[np.flatnonzero(adm)[fin]] = False
            self.active = a[keep]

    def _finish(self, ids: np.ndarray, at: np.ndarray) -> None:
        """Requests completing at ``at``: vLLM records its per-request histograms when a request finishes."""
        r = self.rep[ids]
        h = self.histograms
        self.e2e[ids] = at - self.arrival[ids]
        self.success_total += np.bincount(r, minlength=self.cap)
        h[E2E].observe(r, at - self.engine_arrival[ids])
        h[PREFILL].observe(r, self.first_token_at[ids] - self.scheduled_at[ids])
        out = self.output[ids]
        # vLLM: (e2e - TTFT) / (output tokens - 1), and 0 for a one-token answer.
        tpot = np.where(out > 1, (at - self.first_token_at[ids]) / np.maximum(out - 1, 1), 0.0)
        h[TPOT].observe(r, tpot)
        h[PROMPT_TOKENS].observe(r, self.prompt[ids])
        h[GENERATION_TOKENS].observe(r, out)
        self.trt_tokens[0].observe(r, self.prompt[ids])
        self.trt_tokens[1].observe(r, out)

    def finish(self) -> None:
        """At the horizon: whatever has not completed is dropped (it was not served in time)."""
        undone = np.isnan(self.e2e) & ~self.dropped
        self.dropped |= undone

    # -- observation ---------------------------------------------------------------------------------
    def in_flight(self) -> int:
        """Requests in the system (gateway + at replicas): what Knative's queue-proxy/activator count."""
        return len(self.gateway) + len(self.active)

    def average_concurrency(self, t_s: float, window_s: float = 1.0, lookback_s: float = 900.0) -> float:
        """Time-averaged requests in the system over [t_s - window_s, t_s]: what Knative's queue-proxy (and
        the activator, at zero) report each second. Requests that arrived more than ``lookback_s`` ago and
        are still unfinished are not counted (none are, at a 300 s gateway timeout)."""
        lo = int(np.searchsorted(self.arrival, t_s - lookback_s, side="left"))
        hi = int(np.searchsorted(self.arrival, t_s, side="right"))
        if hi <= lo:
            return 0.0
        start = self.arrival[lo:hi]
        end = start + self.e2e[lo:hi]
        dropped = self.dropped[lo:hi]
        end = np.where(np.isnan(end), t_s, end)  # still in the system
        # A dropped request left the gateway when it timed out.
        end = np.where(dropped, start + self.config.gateway_timeout_s, end)
        overlap = np.minimum(end, t_s) - np.maximum(start, t_s - window_s)
        return float(np.clip(overlap, 0.0, None).sum() / window_s)

    def serving_slots(self) -> np.ndarray:
        """Slots whose pod serves ``/metrics`` (Ready or draining); a loading pod has no HTTP server yet."""
        return np.flatnonzero((self.status == READY) | (self.status == DRAINING))

    def gpu_slots(self) -> np.ndarray:
        """Slots holding GPUs (loading ones too: dcgm-exporter reports them, near 0 %)."""
        return np.flatnonzero(self.status != FREE)

    def pod_rows(self, slots: np.ndarray) -> np.ndarray:
        """What each pod in ``slots`` exposes on /metrics now, in its backend's schema order."""
        p = self.config.profile
        if p.triton_backend == "tensorrtllm":
            return self.trtllm_rows(slots)
        if p.backend == "triton":
            waiting = self._waiting_running(slots)[0]
            e2e = self.histograms[E2E]
            return triton_rows(
                waiting,
                self.prompt_total[slots],  # one item per request
                self.success_total[slots],
                1e6 * e2e.sums[slots],
                (self.first_response_ms.counts[slots], self.first_response_ms.sums[slots]),
            )
        return self.vllm_rows(slots)

    def trtllm_rows(self, slots: np.ndarray) -> np.ndarray:
        """What each Triton + TensorRT-LLM pod in ``slots`` exposes now, in ``exposition.trtllm_schema``
        order. The executor holds every request routed to the pod at once: Triton's pending count is 0, the
        queue is ``waiting`` (not yet in the batch) and ``active`` (in it)."""
        p = self.config.profile
        waiting, running = self._waiting_running(slots)
        e2e = self.histograms[E2E]
        core = triton_rows(
            np.zeros(len(slots)),
            self.success_total[slots],
            self.success_total[slots],
            1e6 * e2e.sums[slots],
            (self.first_response_ms.counts[slots], self.first_response_ms.sums[slots]),
        )
        n = len(slots)
        # active, max, scheduled, context, waiting
        requests = np.column_stack(
            [running, np.full(n, float(p.max_num_seqs)), running, np.zeros(n), waiting]
        )
        fraction = self._kv_fraction(slots)
        tokens_per_block = 64.0
        blocks = np.full(n, p.kv_cache_tokens / tokens_per_block)
        used = np.round(fraction * blocks)
        kv = np.column_stack(
            [blocks, blocks - used, used, np.full(n, tokens_per_block), np.zeros(n), used / blocks]
        )
        tokens = [(h.counts[slots], h.sums[slots]) for h in self.trt_tokens]
        # total_context_tokens, generation_requests (the sequences in the batch); iteration_counter
        batch = np.column_stack([self.context_per_iteration[slots], running])
        return trtllm_rows(core, requests, kv, tokens, batch, self.iterations_total[slots][:, None])

    def _waiting_running(self, slots: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if not len(self.active):
            return np.zeros(len(slots)), np.zeros(len(slots))
        r = self.rep[self.active]
        adm = self.admitted[self.active]
        waiting = np.bincount(r[~adm], minlength=self.cap)[slots].astype(np.float64)
        running = np.bincount(r[adm], minlength=self.cap)[slots].astype(np.float64)
        return waiting, running

    def _kv_fraction(self, slots: np.ndarray) -> np.ndarray:
        """The fraction of each pod's KV cache in use: KV blocks hold the tokens computed so far (the prompt
        done, and the output generated)."""
        kv = np.zeros(len(slots))
        if len(self.active):
            a = self.active
            adm = self.admitted[a]
            done = a[adm]
            computed = self.prompt[done] - self.prefill_left[done]
            computed += np.where(self.prefill_left[done] > 0, 0.0, self.output[done] - self.decode_left[done])
            held = np.bincount(self.rep[done], weights=computed, minlength=self.cap)[slots]
            kv = np.minimum(held / self.config.profile.kv_cache_tokens, 1.0)
        return kv

    def vllm_rows(self, slots: np.ndarray) -> np.ndarray:
        """What each vLLM pod in ``slots`` exposes now, in ``exposition.vllm_schema`` order."""
        waiting, running = self._waiting_running(slots)
        kv = self._kv_fraction(slots)
        gauges = np.column_stack([running, waiting, kv])
        counters = np.column_stack([self.prompt_total[slots], self.gen_total[slots]])
        success = np.zeros((len(slots), 5))
        success[:, 0] = self.success_total[
            slots
        ]  # finished_reason="stop": the trace's answers ran to the end
        return vllm_rows(
            gauges, counters, success, [(h.counts[slots], h.sums[slots]) for h in self.histograms]
        )

    def gpu_rows(self, slots: np.ndarray) -> np.ndarray:
        """DCGM_FI_DEV_GPU_UTIL of each GPU of each pod in ``slots``: the busy fraction of the last step."""
        util = 100.0 * np.where(self.status[slots] == LOADING, 0.0, self.busy[slots])
        return np.repeat(util[:, None], self.config.profile.gpus_per_replica, axis=1)
