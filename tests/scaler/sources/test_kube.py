"""Pod states from real-shaped Kubernetes objects (the official client's models)."""

from __future__ import annotations

import datetime as dt

from kubernetes.client import V1ObjectMeta, V1Pod, V1PodCondition, V1PodStatus

from scaler.sources.kube import summarise_pods

NOW_S = 1_700_000_000.0


def _t(s: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(s, tz=dt.UTC)


def pod(
    name: str, created_s: float, ready_s: float | None, phase: str = "Running", deleting: bool = False
) -> V1Pod:
    cond = V1PodCondition(
        type="Ready",
        status="True" if ready_s is not None else "False",
        last_transition_time=_t(ready_s if ready_s is not None else created_s),
    )
    meta = V1ObjectMeta(
        name=name, creation_timestamp=_t(created_s), deletion_timestamp=_t(NOW_S) if deleting else None
    )
    return V1Pod(metadata=meta, status=V1PodStatus(phase=phase, conditions=[cond]))


def test_ready_warming_terminating_and_finished_pods() -> None:
    pods = [
        pod("a", NOW_S - 500, NOW_S - 460),  # Ready after 40 s
        pod("b", NOW_S - 300, NOW_S - 250),  # Ready after 50 s
        pod("c", NOW_S - 30, None),  # warming for 30 s
        pod("d", NOW_S - 5, None, phase="Pending"),  # warming (unscheduled yet) for 5 s
        pod("e", NOW_S - 900, NOW_S - 850, deleting=True),  # terminating: not counted
        pod("f", NOW_S - 900, None, phase="Failed"),  # finished: not counted
    ]
    s = summarise_pods(pods, NOW_S)
    assert (s.total, s.ready) == (4, 2)
    assert s.warming_ages_s == (30.0, 5.0)  # oldest first
    assert s.cold_starts_s == (40.0, 50.0)  # in order of creation


def test_a_pod_without_conditions_is_warming() -> None:
    p = V1Pod(
        metadata=V1ObjectMeta(name="x", creation_timestamp=_t(NOW_S - 12)),
        status=V1PodStatus(phase="Pending"),
    )
    s = summarise_pods([p], NOW_S)
    assert (s.total, s.ready, s.warming_ages_s) == (1, 0, (12.0,))
