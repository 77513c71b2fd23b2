"""The simulated fleet: replicas (loading, Ready, draining), the gateway in front of them, and the metrics
each pod would expose.

Routing: a request goes to the Ready replica with the fewest requests outstanding (what an inference gateway
or a least-request load balancer does; a Kubernetes Service only ever routes to Ready endpoints). With no
Ready replica it waits at the gateway (Knative's activator, KEDA's HTTP add-on interceptor, an inference
gateway) and is dropped after ``gateway_timeout_s``. Requests still unfinished at the horizon count as
dropped too.

Replicas: a new one loads for its cold start (counted in GPU time) before it is Ready. Scale-down follows the
ReplicaSet controller's ranking (not-Ready pods first, then the most recently Ready): a removed Ready pod
stops receiving requests and drains what it holds (graceful termination), using its GPU until it is empty.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from scaler.sources.profile import VLLM_E2E_BUCKETS_S, VLLM_TTFT_BUCKETS_S
from simulations.profile import HardwareProfile
from simulations.replica import admit, serve
from simulations.trace import Trace

FREE, LOADING, READY, DRAINING = 0, 1, 2, 3


@dataclass
class Scrape:
    """What one Prometheus scrape saw: per-pod series of the pods that expose metrics, and fleet totals."""

    t_s: float
    pods: np.ndarray  # pod ids of Ready/draining replicas (they serve /metrics)
    waiting: np.ndarray
    running: np.ndarray
    gen_total: np.ndarray  # per pod, counters
    prompt_total: np.ndarray
    ttft_hist: np.ndarray  # per pod x (buckets + 1), cumulative counts (last = +Inf)
    ttft_sum: np.ndarray
    e2e_hist: np.ndarray
    e2e_sum: np.ndarray
    gpu_pods: np.ndarray  # pod ids with a GPU (loading ones too: dcgm-exporter reports them, near 0 %)
    gpu_util_percent: np.ndarray
    fleet_gen_total: float
    fleet_prompt_total: float
    fleet_done_total: float  # requests finished (vLLM: request_success_total)
    fleet_itl_sum_s: float  # vLLM: inter_token_latency_seconds_sum, summed over pods
    fleet_itl_count: float
    fleet_ttft_hist: np.ndarray
    gateway_queue: int
    replicas: int  # Deployment replicas (loading + Ready), from the Kubernetes API
    ready: int
    loading_ages_s: tuple[float, ...]


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
    cold_starts: int = 0
    gpu_seconds: float = 0.0
    cold_start_samples_s: list[float] = field(default_factory=list)

    def __post_init__(self) -> None:
        p = self.config.profile
        tr = self.trace
        n = len(tr)
        self.arrival = tr.arrival_s.astype(np.float64)
        if p.backend == "triton":
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
        # When the engine first saw each request. vLLM's own histograms start there, so time spent in the
        # gateway while no replica was Ready is in the user's TTFT (scored) but not in the exported metric.
        self.engine_arrival = self.arrival.copy()
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
        self.busy = np.zeros(cap)
        self.ttft_hist = np.zeros((cap, len(VLLM_TTFT_BUCKETS_S) + 1))
        self.ttft_sum = np.zeros(cap)
        self.e2e_hist = np.zeros((cap, len(VLLM_E2E_BUCKETS_S) + 1))
        self.e2e_sum = np.zeros(cap)
        self.fleet_ttft_hist = np.zeros(len(VLLM_TTFT_BUCKETS_S) + 1)
        self.fleet_gen_total = 0.0
        self.fleet_prompt_total = 0.0
        self.fleet_done_total = 0.0
        self.fleet_itl_sum_s = 0.0
        self.fleet_itl_count = 0.0
        self._next_pod = 0
        self._rng = np.random.default_rng(self.config.seed)
        self._ttft_b = np.asarray(VLLM_TTFT_BUCKETS_S)
        self._e2e_b = np.asarray(VLLM_E2E_BUCKETS_S)
        for _ in range(self.initial_replicas):
            slot = self._new_slot(0.0)
            self.status[slot] = READY  # the initial replicas are up before the trace starts
            self.ready_at[slot] = 0.0

    # -- replicas ------------------------------------------------------------------------------------
    def _new_slot(self, t_s: float) -> int:
        free = np.flatnonzero(self.status == FREE)
        if not len(free):
            raise RuntimeError("fleet slot table full: raise max_replicas")
        slot = int(free[0])
        self.pod_id[slot] = self._next_pod
        self._next_pod += 1
        self.created_at[slot] = t_s
        self.gen_total[slot] = self.prompt_total[slot] = 0.0
        self.ttft_hist[slot] = 0.0
        self.e2e_hist[slot] = 0.0
        self.ttft_sum[slot] = self.e2e_sum[slot] = 0.0
        self.busy[slot] = 0.0
        return slot

    @property
    def replicas(self) -> int:
        """Deployment replicas as the Kubernetes API counts them: loading + Ready (terminating excluded)."""
        return int(np.count_nonzero((self.status == LOADING) | (self.status == READY)))

    @property
    def ready(self) -> int:
        return int(np.count_nonzero(self.status == READY))

    @property
    def loading(self) -> int:
        return int(np.count_nonzero(self.status == LOADING))

    @property
    def holding(self) -> int:
        """Replicas holding GPUs: loading, Ready and draining."""
        return int(np.count_nonzero(self.status != FREE))

    def scale_to(self, replicas: int, t_s: float) -> None:
        """Set the Deployment's replicas; new pods start loading, removed ones drain."""
        replicas = max(0, min(replicas, self.config.max_replicas))
        current = self.replicas
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
        up = (self.status == LOADING) & (self.ready_at <= t_s)
        for slot in np.flatnonzero(up):
            self.status[slot] = READY
            self.cold_start_samples_s.append(float(self.ready_at[slot] - self.created_at[slot]))
        draining = np.flatnonzero(self.status == DRAINING)
        if len(draining):
            held = np.bincount(self.rep[self.active], minlength=self.cap) if len(self.active) else None
            for slot in draining:
                if held is None or held[slot] == 0:
                    self.status[slot] = FREE

    # -- requests ------------------------------------------------------------------------------------
    def _route(self, t_s: float, dt_s: float) -> None:
        j = int(np.searchsorted(self.arrival, t_s, side="right"))
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
        # Routed now; anything that arrived within the last step would have reached the engine on arrival.
        waited = self.gateway
        self.engine_arrival[waited] = np.maximum(self.arrival[waited], t_s - dt_s)
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
            self.admitted[w[ok]] = True
            adm = self.admitted[a]
        run = a[adm]
        if not len(run):
            return
        pl = self.prefill_left[run]
        dl = self.decode_left[run]
        # Only slots up to the highest one in use: bincounts over 20 slots, not the whole table.
        used = int(np.flatnonzero(self.status)[-1]) + 1 if self.status.any() else 1
        out = serve(p, t_s, dt_s, used, self.rep[run], pl, dl, self.prompt[run])
        self.prefill_left[run] = pl
        self.decode_left[run] = dl
        self.busy[:used] = out.busy_fraction
        self.gen_total[:used] += out.generated_tokens
        self.prompt_total[:used] += out.prompt_tokens
        self.fleet_gen_total += float(out.generated_tokens.sum())
        self.fleet_itl_sum_s += float(out.itl_sum_s.sum())
        self.fleet_itl_count += float(out.itl_count.sum())
        self.fleet_prompt_total += float(out.prompt_tokens.sum())
        first = ~np.isnan(out.prefill_done_at_s)
        if first.any():
            ids = run[first]
            self.ttft[ids] = out.prefill_done_at_s[first] - self.arrival[ids]
            ttft = out.prefill_done_at_s[first] - self.engine_arrival[ids]
            b = np.searchsorted(self._ttft_b, ttft, side="left")
            np.add.at(self.ttft_hist, (self.rep[ids], b), 1.0)
            np.add.at(self.ttft_sum, self.rep[ids], ttft)
            np.add.at(self.fleet_ttft_hist, b, 1.0)
        fin = ~np.isnan(out.finished_at_s)
        if fin.any():
            ids = run[fin]
            self.e2e[ids] = out.finished_at_s[fin] - self.arrival[ids]
            e2e = out.finished_at_s[fin] - self.engine_arrival[ids]
            b = np.searchsorted(self._e2e_b, e2e, side="left")
            np.add.at(self.e2e_hist, (self.rep[ids], b), 1.0)
            self.fleet_done_total += float(len(ids))
            np.add.at(self.e2e_sum, self.rep[ids], e2e)
            keep = np.ones(len(a), dtype=bool)
            keep[np.flatnonzero(adm)[fin]] = False
            self.active = a[keep]

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

    def scrape(self, t_s: float) -> Scrape:
        serving = np.flatnonzero((self.status == READY) | (self.status == DRAINING))
        gpus = np.flatnonzero(self.status != FREE)
        if len(self.active):
            r = self.rep[self.active]
            adm = self.admitted[self.active]
            waiting = np.bincount(r[~adm], minlength=self.cap)[serving]
            running = np.bincount(r[adm], minlength=self.cap)[serving]
        else:
            waiting = running = np.zeros(len(serving), dtype=np.int64)
        loading = np.flatnonzero(self.status == LOADING)
        return Scrape(
            t_s=t_s,
            pods=self.pod_id[serving].copy(),
            waiting=waiting,
            running=running,
            gen_total=self.gen_total[serving].copy(),
            prompt_total=self.prompt_total[serving].copy(),
            ttft_hist=np.cumsum(self.ttft_hist[serving], axis=1),
            ttft_sum=self.ttft_sum[serving].copy(),
            e2e_hist=np.cumsum(self.e2e_hist[serving], axis=1),
            e2e_sum=self.e2e_sum[serving].copy(),
            gpu_pods=self.pod_id[gpus].copy(),
            gpu_util_percent=100.0 * np.where(self.status[gpus] == LOADING, 0.0, self.busy[gpus]),
            fleet_gen_total=self.fleet_gen_total,
            fleet_prompt_total=self.fleet_prompt_total,
            fleet_done_total=self.fleet_done_total,
            fleet_itl_sum_s=self.fleet_itl_sum_s,
            fleet_itl_count=self.fleet_itl_count,
            fleet_ttft_hist=np.cumsum(self.fleet_ttft_hist),
            gateway_queue=len(self.gateway),
            replicas=self.replicas,
            ready=self.ready,
            loading_ages_s=tuple(float(t_s - self.created_at[s]) for s in loading),
        )
