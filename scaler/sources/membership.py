"""Which pods are a Deployment's, and how they count: by ownership, by name only when nothing else can tell.

A Deployment's pods are the pods its ReplicaSets own. The Kubernetes reader (``kube.py``) and the
kube-state-metrics join (``query.plan_kube_state``) both resolve that, then count the same way here
(``count_pods``): a rolling update's surge pods are neither current replicas nor warming capacity, pods
that are not Ready are warming, and only clean start-ups are cold-start samples. With neither source the
pods are matched by name, exactly as Kubernetes generates them (``pod_pattern``); that is a guess, and the
source says so.

How Kubernetes names them (read from upstream: ``pkg/controller/deployment`` creates the ReplicaSet
``d.Name + "-" + podTemplateSpecHash``; ``controller.ComputeHash`` returns
``rand.SafeEncodeString(fmt.Sprint(fnv32a))``; ``k8s.io/apiserver/pkg/storage/names`` cuts a generateName
base to 58 characters (63 - 5) and appends ``utilrand.String(5)``):

- the pod-template hash is a decimal uint32 re-encoded character by character, which maps the digits 0-9
  onto ``4-9bcdf``: 1 to 10 characters of ``[4-9bcdf]``;
- a pod is ``(<replicaset> + "-")[:58]`` plus 5 characters of ``bcdfghjklmnpqrstvwxz2456789`` (no
  vowels, so ``llama-warmup-x7k2p``, a Job's pod, is not ``llama``'s).

Worked example: Deployment ``llama-3-1-70b-instruct-fp8-tp4-prod-europe-west4b`` (49 characters), hash
``5d4f8b7c9f``: its ReplicaSet is 60 characters, so its pods are ``<deployment>-5d4f8b7c`` + 5 random,
with no hyphen before the suffix.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

HASH_CHARS = "[4-9bcdf]"
SUFFIX_CHARS = "[bcdfghjklmnpqrstvwxz2456789]"
MAX_HASH_CHARS = 10
SUFFIX_LEN = 5
MAX_GENERATED_BASE = 58
_HASH = re.compile(f"{HASH_CHARS}{{1,{MAX_HASH_CHARS}}}")
# Cold-start samples above this many priors (coldStartSeconds) are not start-ups, and never above an hour
# (the largest coldStartSeconds accepted).
COLD_START_CAP_FACTOR = 10.0
MAX_COLD_START_S = 3600.0


# -- names -------------------------------------------------------------------------------------------------
def generated_prefix(replicaset: str) -> str:
    """The part of a pod's name its ReplicaSet decides: the generateName base ``<replicaset>-``, cut to 58."""
    return (replicaset + "-")[:MAX_GENERATED_BASE]


@functools.lru_cache(maxsize=8192)
def replicaset_prefix_regex(deployment: str) -> str:
    """A regex of ``generated_prefix(rs)`` for every ReplicaSet ``rs`` the Deployment could have.

    For each hash length h (1-10) the base ``<deployment>-<h chars>-`` is kept whole up to 58 characters,
    else cut: a 49-character name keeps 8 hash characters and loses the final hyphen."""
    d = len(deployment)
    name = re.escape(deployment)
    alternatives: dict[str, None] = {}
    for h in range(1, MAX_HASH_CHARS + 1):
        if d + h + 2 <= MAX_GENERATED_BASE:
            alternatives[f"{name}-{HASH_CHARS}{{{h}}}-"] = None
        elif d >= MAX_GENERATED_BASE:
            alternatives[re.escape(deployment[:MAX_GENERATED_BASE])] = None
        elif d == MAX_GENERATED_BASE - 1:
            alternatives[f"{name}-"] = None
        else:
            alternatives[f"{name}-{HASH_CHARS}{{{MAX_GENERATED_BASE - d - 1}}}"] = None
    return "(?:" + "|".join(alternatives) + ")"


@functools.lru_cache(maxsize=8192)
def pod_pattern(deployment: str) -> re.Pattern[str]:
    """Names Kubernetes could give the Deployment's pods (use with ``fullmatch``). Only a guess: a bare pod
    or another workload named the same way matches too; ownership is the truth."""
    return re.compile(f"{replicaset_prefix_regex(deployment)}{SUFFIX_CHARS}{{{SUFFIX_LEN}}}")


@functools.lru_cache(maxsize=8192)
def prefix_pattern(deployment: str) -> re.Pattern[str]:
    """Generated prefixes (``generated_prefix``) the Deployment's ReplicaSets could have."""
    return re.compile(replicaset_prefix_regex(deployment))


def deployment_key(deployment: str) -> str:
    """The key ``deployment_keys`` files a Deployment's prefixes under: its name, cut to 58 characters."""
    return deployment[:MAX_GENERATED_BASE]


def deployment_keys(prefix: str) -> tuple[str, ...]:
    """Keys (``deployment_key``) of the Deployments whose ReplicaSets could have generated ``prefix``.

    ``llama-5d4f8b7c9-`` -> ``llama``. A prefix of 58 characters was cut, so it has more readings:
    ``<deployment>-<hash cut short>``, or a Deployment of 57+ characters (``<57>-``, or 58 of it)."""
    keys: list[str] = []
    body = prefix[:-1] if prefix.endswith("-") else prefix
    head, _, tail = body.rpartition("-")
    whole = prefix.endswith("-")
    if head and _HASH.fullmatch(tail) and (whole or len(prefix) == MAX_GENERATED_BASE):
        keys.append(head)
    if len(prefix) == MAX_GENERATED_BASE:
        keys.append(body)  # <57 characters>- : the whole hash cut away
        if body != prefix:
            keys.append(prefix)  # 58 characters of a longer name that has a hyphen there
    return tuple(keys)


# -- counting ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class PodFacts:
    """One live pod of a Deployment (terminating and finished pods are left out before this)."""

    name: str
    created_s: float | None
    ready: bool
    ready_at_s: float | None = None  # the Ready condition's last transition, when Ready
    restarts: int = 0  # container restarts, all containers


@dataclass(frozen=True)
class PodStates:
    """One Deployment's pods by ownership (Kubernetes API or kube-state-metrics), counted for ``decide``.

    ``total``/``ready``/``warming_ages_s`` count at most ``spec.replicas`` pods; ``pods`` and
    ``ready_pods`` are every live pod it owns (a surge pod's metrics are still its demand);
    ``prefixes`` are its ReplicaSets' generated prefixes, for the history grouped by them; ``error``
    says why the target cannot be answered (it is not a Deployment)."""

    total: int
    ready: int
    warming_ages_s: tuple[float, ...]
    cold_starts_s: tuple[float, ...]
    pods: frozenset[str] = frozenset()
    ready_pods: frozenset[str] = frozenset()
    prefixes: frozenset[str] = frozenset()
    notes: Mapping[str, str] = field(default_factory=dict)
    error: str | None = None


def refused(message: str) -> PodStates:
    """The states of a target that cannot be answered (``message`` says why)."""
    return PodStates(total=0, ready=0, warming_ages_s=(), cold_starts_s=(), error=message)


def not_a_deployment(namespace: str, deployment: str, statefulsets: frozenset[str], where: str) -> PodStates:
    """No Deployment of that name: a StatefulSet's (or a LeaderWorkerSet's, which runs StatefulSets) is
    refused by name; otherwise the Deployment does not exist. Either way no answer, never zero."""
    if deployment in statefulsets:
        return refused(
            f"{namespace}/{deployment} is a StatefulSet ({where}): this scaler sizes Deployments only "
            "(a StatefulSet has no ReplicaSets and updates in place); point the ScaledObject at a Deployment"
        )
    return refused(f"no Deployment {namespace}/{deployment} ({where})")


def count_pods(
    pods: Sequence[PodFacts],
    spec_replicas: int | None,
    prefixes: frozenset[str],
    now_s: float,
    prior_cold_start_s: float,
) -> PodStates:
    """Current, Ready and warming replicas and cold-start samples from one Deployment's live pods.

    A rolling update runs up to maxSurge pods above ``spec.replicas``; they are the rollout's, not
    demand's, so at most ``spec.replicas`` pods count, Ready ones first, and warming are the not-Ready
    pods within the spec, youngest first (a surge pod stuck unschedulable is the oldest). Worked example:
    spec 3, three Ready pods of the old ReplicaSet and one loading of the new: 3 current, 3 Ready,
    0 warming. Counting the surge pod held the answer at 4; the HPA set spec 4 and the Deployment surged
    again, 3 -> 8 in 75 s against demand for 3. Mid-rollout after a scale-up to spec 6 (3 Ready, 4 loading):
    6 current, 3 warming.
    """
    ready = [p for p in pods if p.ready]
    counted = len(pods) if spec_replicas is None else min(len(pods), max(0, spec_replicas))
    ready_counted = min(len(ready), counted)
    loading = sorted(
        (p for p in pods if not p.ready), key=lambda p: -(p.created_s if p.created_s is not None else now_s)
    )
    warming = loading[: counted - ready_counted]
    ages = sorted(
        (max(0.0, now_s - p.created_s) if p.created_s is not None else 0.0 for p in warming), reverse=True
    )
    notes: dict[str, str] = {}
    if len(pods) > counted:
        notes["rollout"] = (
            f"{len(pods) - counted} pod(s) above spec.replicas {spec_replicas} (a rolling update's "
            "surge) are not counted as replicas or warming capacity"
        )
    samples, note = clean_cold_starts(ready, prior_cold_start_s)
    if note:
        notes["cold_start"] = note
    return PodStates(
        total=counted,
        ready=ready_counted,
        warming_ages_s=tuple(ages),
        cold_starts_s=samples,
        pods=frozenset(p.name for p in pods),
        ready_pods=frozenset(p.name for p in ready),
        prefixes=prefixes,
        notes=notes,
    )


def clean_cold_starts(ready: Sequence[PodFacts], prior_s: float) -> tuple[tuple[float, ...], str]:
    """Creation -> Ready durations of clean start-ups (oldest pod first), and a note on those left out.

    The Ready condition's ``lastTransitionTime`` is the *last* transition: a pod whose readiness flapped
    after two hours reads as a 7,300 s start-up, and three starts of 90-95 s plus that one gave a learned
    p90 of 5,068 s, which then drove keep-warm and the forecast horizon. A sample counts only if no
    container restarted (the start-up ran again; its first Ready time is unknown) and it is at most
    min(10 x coldStartSeconds, 3600 s): with a 60 s prior, a 7,300 s "start" is a flap. A flap inside the
    cap still inflates its sample; the cap bounds by how much."""
    cap_s = min(COLD_START_CAP_FACTOR * prior_s, MAX_COLD_START_S)
    kept: list[tuple[float, float]] = []
    restarted = over_cap = 0
    for p in ready:
        if p.created_s is None or p.ready_at_s is None or p.ready_at_s <= p.created_s:
            continue
        duration = p.ready_at_s - p.created_s
        if p.restarts > 0:
            restarted += 1
        elif duration > cap_s:
            over_cap += 1
        else:
            kept.append((p.created_s, duration))
    parts = []
    if restarted:
        parts.append(f"{restarted} pod(s) that restarted")
    if over_cap:
        parts.append(f"{over_cap} over the cap of {cap_s:.0f} s (a readiness flap, not a start-up)")
    note = f"cold-start samples left out: {'; '.join(parts)}" if parts else ""
    return tuple(d for _, d in sorted(kept)), note
