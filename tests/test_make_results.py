"""benchmarks/make_results.py: the laptop recipe search's table says which target each run missed and by how much."""
from __future__ import annotations

import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent.parent / "benchmarks"
if str(BENCH) not in sys.path:
    sys.path.insert(0, str(BENCH))

import make_results  # noqa: E402


def _row(**kw):
    row = {"candidate": "w32-s900", "why": "today's laptop recipe", "notebook": 4, "amp": "none", "precision": "fp32",
           "width": 32, "steps": 900, "batch_size": 128, "ema": 0.995, "two_core_seconds": 170.0,
           "two_core_seconds_per_step": 0.189, "share": 0.99, "n_samples": 100, "judged": "read as 6",
           "frechet_distance": 8.4, "frechet_floor": 5.76}
    row.update(kw)
    return row


def test_recipe_table_says_which_target_was_missed_and_by_how_much():
    rs = {"machine": "a CPU", "runs": [
        _row(),                                                            # 170 s <= 180 s fp32, 99 % >= 95 %
        _row(candidate="w16-s900", amp="bf16", precision="bf16 autocast", two_core_seconds=78.0, share=0.11),
        _row(candidate="cond-w32-s1500", notebook=6, two_core_seconds=870.0, share=1.0)]}
    lines = [ln for ln in make_results.recipe_section(rs) if ln.startswith("| `")]
    assert len(lines) == 3
    assert lines[0].endswith("| met |")
    assert "missed: 84 points below 95%" in lines[1] and "× the" not in lines[1]      # 78 s is within 90 s
    assert "missed: 2.42× the 360 s" in lines[2] and "points below" not in lines[2]
    assert "11% [6–19%] read as 6" in lines[1]                                      # the Wilson interval of 11/100


def test_no_search_no_section():
    assert make_results.recipe_section({}) == [] and make_results.recipe_section(None) == []
