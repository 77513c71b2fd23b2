"""simulations.report: what a run writes."""

from __future__ import annotations

import json
from pathlib import Path

from simulations.engine import simulate
from simulations.policies import make_policy
from simulations.policy import SimSettings
from simulations.profile import profile_named
from simulations.report import DECISION_EVIDENCE, write_run
from simulations.trace import load_trace


def test_a_runs_decisions_carry_the_evidence_explain_shows(tmp_path: Path) -> None:
    """Each row of decisions.jsonl has the decision's capacity estimate (with the learned costs), projection,
    headroom and floors, exactly as ``Decision.to_dict`` (what ``explain`` prints) gives them."""
    trace = load_trace("azure-code").slice(0, 300)
    sim = SimSettings(profile=profile_named("llama8b-h100"), warmup_s=120.0)
    pol = make_policy("scaler", sim, trace, None, {})
    run = simulate(trace, pol, sim)
    write_run(run, tmp_path, None)
    rows = [json.loads(line) for line in (tmp_path / "decisions.jsonl").read_text().splitlines()]
    assert len(rows) == len(run.decisions)
    for row, (t_s, decision) in zip(rows, run.decisions, strict=True):
        want = json.loads(json.dumps(decision.to_dict()))
        assert row["t_s"] == t_s and row["desired"] == decision.desired_replicas
        assert {k: row[k] for k in DECISION_EVIDENCE if k in row} == {
            k: want[k] for k in DECISION_EVIDENCE if k in want
        }
    served = [row for row in rows if "capacity" in row]
    assert served, "no decision had a capacity estimate"
    assert all(row["capacity"]["step_base_s"] > 0 for row in served)
    assert any("headroom" in row for row in rows)
