from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from simulations.trace import GENERATORS, Trace, TraceError, load_trace, write_trace


def test_bundled_azure_traces_match_their_published_statistics(conv: Trace) -> None:
    # ../shared/traces/SOURCES.md: 19,366 requests over 3,501.7 s; code: 8,819 over 3,435.9 s.
    assert len(conv) == 19366
    assert conv.span_s == pytest.approx(3501.7, abs=0.1)
    assert float(conv.input_tokens.mean()) == pytest.approx(1155, abs=1)
    code = load_trace("azure-code")
    assert len(code) == 8819
    assert code.span_s == pytest.approx(3435.9, abs=0.1)
    assert np.all(np.diff(conv.arrival_s) >= 0)


def test_plain_csv_roundtrip(tmp_path: Path) -> None:
    p = tmp_path / "t.csv"
    p.write_text("arrival_s,input_tokens,output_tokens\n2.5,10,3\n0.5,100,7\n")
    t = load_trace(p)
    assert t.arrival_s.tolist() == [0.0, 2.0]
    assert t.input_tokens.tolist() == [100, 10]
    write_trace(t, tmp_path / "u.csv")
    u = load_trace(tmp_path / "u.csv")
    assert u.input_tokens.tolist() == [100, 10]


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ("a,b,c\n1,2,3\n", "unknown header"),
        ("arrival_s,input_tokens,output_tokens\nx,2,3\n", "arrival_s must be seconds"),
        ("arrival_s,input_tokens,output_tokens\n1,-2,3\n", "input_tokens must be an integer >= 0"),
        ("arrival_s,input_tokens,output_tokens\n1,2\n", "expected 3 columns"),
        ("arrival_s,input_tokens,output_tokens\n", "no requests"),
        ("TIMESTAMP,ContextTokens,GeneratedTokens\nyesterday,1,1\n", "TIMESTAMP must look like"),
    ],
)
def test_bad_traces_name_the_problem(tmp_path: Path, body: str, needle: str) -> None:
    p = tmp_path / "bad.csv"
    p.write_text(body)
    with pytest.raises(TraceError, match=needle):
        load_trace(p)


def test_missing_trace_lists_the_bundled_names(tmp_path: Path) -> None:
    with pytest.raises(TraceError, match="azure-code, azure-conv"):
        load_trace(tmp_path / "nope.csv")


@pytest.mark.parametrize("kind", sorted(GENERATORS))
def test_generators_are_deterministic_for_a_seed(kind: str) -> None:
    gen = GENERATORS[kind]
    args = (2.0, 10.0, 1200.0) if kind == "bursts" else (2.0, 1200.0)
    a, b = gen(*args, seed=3), gen(*args, seed=3)  # type: ignore[operator]
    c = gen(*args, seed=4)  # type: ignore[operator]
    assert np.array_equal(a.arrival_s, b.arrival_s) and np.array_equal(a.output_tokens, b.output_tokens)
    assert not np.array_equal(a.arrival_s[:50], c.arrival_s[:50])
    assert len(a) > 100


def test_idle_gaps_really_are_idle() -> None:
    t = GENERATORS["idle-gaps"](5.0, 2400.0, seed=1)  # type: ignore[operator]
    gaps = np.diff(t.arrival_s)
    assert gaps.max() > 800  # 900 s idle between 300 s busy periods


def test_flash_crowds_are_eight_times_the_base_an_hour_apart() -> None:
    t = GENERATORS["flash-crowd"](1.0, 9000.0, seed=1)  # type: ignore[operator]
    per_min = np.bincount((t.arrival_s // 60).astype(np.int64), minlength=150)
    base = float(np.median(per_min))
    crowds = np.flatnonzero(per_min > 4 * base)
    # Crowds of 5 minutes (plus 30 s ramps) from minutes 15, 75 and 135; about 60/min elsewhere.
    assert set(crowds // 60) == {0, 1, 2} and set(crowds % 60) <= set(range(15, 21))
    assert 50 < base < 70
    assert 7 * base < per_min[crowds].mean() < 9 * base
