"""Pod names as Kubernetes generates them, and how a Deployment's pods count."""

from __future__ import annotations

import pytest

from scaler.sources.membership import (
    PodFacts,
    clean_cold_starts,
    count_pods,
    deployment_key,
    deployment_keys,
    generated_prefix,
    pod_pattern,
    prefix_pattern,
)
from tests.harness.kube_api import generated_pod_name

LONG = "llama-3-1-70b-instruct-fp8-tp4-prod-europe-west4b"  # 49 characters
NOW_S = 1_000_000.0


@pytest.mark.parametrize(
    ("deployment", "pod", "matches"),
    [
        ("llama", "llama-5d4f8b7c9-x2kqp", True),
        ("llama", "llama-4-x2kqp", True),  # a 1-character hash
        ("llama", "llama-5d4f8b7c9f-x2kqp", True),  # 10
        ("llama", "llama-canary-0", False),  # a StatefulSet's pod
        ("llama", "llama-warmup-x7k2p", False),  # a Job's pod: vowels are never in a hash
        ("llama", "llama-29012345-x7k2p", False),  # a CronJob's Job's pod: 0-3 are never in a hash
        ("llama", "llama-8b-6f9c7b8d5-x2kqp", False),  # Deployment llama-8b
        ("llama", "llama-5d4f8b7c9-x2kqa", False),  # no vowels in the random suffix either
        ("llama", "llama-5d4f8b7c9-x2kq", False),  # 4, not 5
        ("llama-8b", "llama-8b-6f9c7b8d5-x2kqp", True),
        # The 49-character Deployment: its ReplicaSet with a 10-character hash is 60 characters,
        # so the generateName base is cut at 58: 8 hash characters and no hyphen before the suffix.
        (LONG, f"{LONG}-5d4f8b7cx2kqp", True),
        (LONG, f"{LONG}-5d4f8b7-x2kqp", True),  # a 7-character hash still fits whole
        (LONG, f"{LONG}-5d4f8b7c-x2kqp", False),  # 8 characters would not keep the hyphen
        (LONG, f"{LONG}-5d4f8b7c9-x2kqp", False),
    ],
)
def test_pod_pattern_is_how_kubernetes_names_pods(deployment: str, pod: str, matches: bool) -> None:
    assert bool(pod_pattern(deployment).fullmatch(pod)) is matches


@pytest.mark.parametrize("length", [40, 46, 47, 49, 55, 56, 57, 58, 70, 253])
@pytest.mark.parametrize("template_hash", ["4", "5d4f8b7", "5d4f8b7c9f"])
def test_every_generated_name_matches_and_files_under_its_deployment(length: int, template_hash: str) -> None:
    deployment = ("d" + "-xy" * 100)[:length]
    deployment = deployment[:-1] + "z" if deployment.endswith("-") else deployment
    rs = f"{deployment}-{template_hash}"
    pod = generated_pod_name(rs, "x2kqp")
    assert pod_pattern(deployment).fullmatch(pod)
    assert prefix_pattern(deployment).fullmatch(generated_prefix(rs))
    assert deployment_key(deployment) in deployment_keys(generated_prefix(rs))


def test_deployment_keys_of_a_prefix() -> None:
    assert deployment_keys("llama-5d4f8b7c9-") == ("llama",)
    assert deployment_keys("llama-") == ()  # no hash: not a ReplicaSet's
    cut = f"{LONG}-5d4f8b7c"  # 58 characters: the hash cut short, or a 58-character name
    assert deployment_keys(cut) == (LONG, cut)


def _pod(name: str, created_s: float, ready_s: float | None, restarts: int = 0) -> PodFacts:
    return PodFacts(name, created_s, ready_s is not None, ready_s, restarts)


@pytest.mark.parametrize(
    ("ready", "loading_ages", "spec", "expected"),
    [
        # (total, ready, warming ages)
        (3, (20.0,), 3, (3, 3, ())),  # a rollout's surge pod: neither a replica nor warming
        (3, (20.0, 10.0, 5.0, 1.0), 6, (6, 3, (10.0, 5.0, 1.0))),  # scaled up mid-rollout: youngest 3
        (2, (30.0,), 3, (3, 2, (30.0,))),  # maxUnavailable: the replacement is coming within the spec
        (3, (), 5, (3, 3, ())),  # spec raised, pods not created yet
        (4, (), 2, (2, 2, ())),  # spec lowered, pods not deleted yet
        (2, (20.0,), None, (3, 2, (20.0,))),  # spec unknown: every pod counts
    ],
)
def test_count_pods_follows_spec_replicas(
    ready: int,
    loading_ages: tuple[float, ...],
    spec: int | None,
    expected: tuple[int, int, tuple[float, ...]],
) -> None:
    pods = [_pod(f"r{i}", NOW_S - 900, NOW_S - 800) for i in range(ready)]
    pods += [_pod(f"w{i}", NOW_S - age, None) for i, age in enumerate(loading_ages)]
    s = count_pods(pods, spec, frozenset(), NOW_S, 60.0)
    assert (s.total, s.ready, s.warming_ages_s) == expected
    assert len(s.pods) == len(pods)


def test_cold_starts_come_only_from_clean_start_ups() -> None:
    pods = [
        _pod("a", NOW_S - 600, NOW_S - 510),  # 90 s
        _pod("b", NOW_S - 500, NOW_S - 408),  # 92 s
        _pod("c", NOW_S - 400, NOW_S - 305),  # 95 s
        _pod("flap", NOW_S - 3 * 3600, NOW_S - 3 * 3600 + 7300),  # readiness flapped after two hours
        _pod("restarted", NOW_S - 800, NOW_S - 400, restarts=2),
    ]
    samples, note = clean_cold_starts(pods, prior_s=60.0)
    assert samples == (90.0, 92.0, 95.0)
    assert "1 pod(s) that restarted" in note and "1 over the cap of 600 s" in note
    # The cap follows the prior and never exceeds an hour.
    assert clean_cold_starts(pods[3:4], prior_s=900.0)[0] == ()
    assert clean_cold_starts([_pod("slow", NOW_S - 900, NOW_S - 300)], prior_s=90.0)[0] == (600.0,)
