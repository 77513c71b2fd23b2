"""QuerySpec: queries as data, rendered to PromQL; the matcher and relabel semantics an evaluator uses."""

from __future__ import annotations

import pytest

from scaler.sources.spec import Matcher, Op, QuerySpec, Regroup, Relabel, duration_s, render

NS = (Matcher("namespace", "=~", "a|b"),)


@pytest.mark.parametrize(
    ("spec", "text"),
    [
        (QuerySpec(Op.SELECT, ("up",), NS), 'up{namespace=~"a|b"}'),
        (
            QuerySpec(Op.MAX, ("up",), NS, ("namespace", "pod")),
            'max by (namespace, pod) (up{namespace=~"a|b"})',
        ),
        (QuerySpec(Op.SUM, ("g",), ()), "sum(g{})"),
        (
            QuerySpec(Op.SUM, ("x:a", "x:b"), NS, ("pod",), metric_set=True),
            'sum by (pod) ({__name__=~"x:a|x:b", namespace=~"a|b"})',
        ),
        (QuerySpec(Op.RATE, ("c_total",), NS, window="1m"), 'rate(c_total{namespace=~"a|b"}[1m])'),
        (
            QuerySpec(Op.HISTOGRAM_RATE, ("h_bucket",), (), ("pod",), window="30s"),
            "sum by (pod, le) (rate(h_bucket{}[30s]))",
        ),
        (
            QuerySpec(
                Op.RATE,
                ("c_total",),
                NS,
                window="1m",
                regroup=Regroup(("deployment",), Relabel("deployment", "$1", "pod", "(.+)-x")),
            ),
            'sum by (deployment) (label_replace(rate(c_total{namespace=~"a|b"}[1m]), "deployment", "$1", '
            '"pod", "(.+)-x"))',
        ),
        (QuerySpec(Op.SELECT, ("m",), (Matcher("l", "=", 'say "hi" \\'),)), 'm{l="say \\"hi\\" \\\\"}'),
    ],
)
def test_render(spec: QuerySpec, text: str) -> None:
    assert render(spec) == text


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"op": Op.SUM_RATE, "metrics": ("c",)}, "window"),
        ({"op": Op.SUM, "metrics": ("c",), "window": "1m"}, "window"),
        ({"op": Op.SUM, "metrics": ("a", "b")}, "metric_set"),
        ({"op": Op.SUM_RATE, "metrics": ("a", "b"), "metric_set": True, "window": "1m"}, "rate"),
        ({"op": Op.SELECT, "metrics": ("a",), "by": ("pod",)}, "aggregate"),
        ({"op": Op.SUM, "metrics": ()}, "at least one metric"),
    ],
)
def test_invalid_specs_say_why(kwargs: dict[str, object], needle: str) -> None:
    with pytest.raises(ValueError, match=needle):
        QuerySpec(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("matcher", "value", "hit"),
    [
        (Matcher("ns", "=~", "a|b"), "a", True),
        (Matcher("ns", "=~", "a|b"), "ab", False),  # anchored, as in Prometheus
        (Matcher("ns", "!~", "a|b"), "c", True),
        (Matcher("pod", "!=", ""), "", False),
        (Matcher("pod", "=", "x"), "x", True),
    ],
)
def test_matcher(matcher: Matcher, value: str, hit: bool) -> None:
    assert matcher.matches(value) is hit


def test_relabel_like_label_replace() -> None:
    r = Relabel("deployment", "$1", "pod", "(.+)-[a-z0-9]+-[a-z0-9]+")
    assert r.apply({"pod": "llama-8b-6f9c7-x2kqp"})["deployment"] == "llama-8b"
    assert "deployment" not in r.apply({"pod": "bare"})  # no match: unchanged


@pytest.mark.parametrize(
    ("text", "seconds"), [("1m", 60.0), ("90s", 90.0), ("1h30m", 5400.0), ("500ms", 0.5)]
)
def test_duration(text: str, seconds: float) -> None:
    assert duration_s(text) == seconds


@pytest.mark.parametrize("text", ["", "1", "1x", "m1", "1m 2s"])
def test_bad_duration(text: str) -> None:
    with pytest.raises(ValueError, match="not a Prometheus duration"):
        duration_s(text)
