"""The redesign keeps results: ifd, quality, kcenter, less (tiny) and cherry (tiny) select
the same examples with the same scores as the files made by the code before it
(``tests/fixtures/regression``, written by ``python tests/regression_cases.py``)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from regression_cases import CASES, FIXTURES, run_case, snapshot

from winnow.store import Store

# Stage structure of these runs is unchanged, so each example leaves at the same stage.
SAME_STAGES = {"ifd", "quality", "kcenter", "less"}


@pytest.mark.parametrize("case", CASES)
def test_selection_and_scores_match_the_files_made_before_the_redesign(case, shared_data,
                                                                       tmp_path):
    expected = json.loads((FIXTURES / f"{case}.json").read_text())
    result, _ = run_case(case, shared_data, Store(tmp_path / "cache"))
    got = snapshot(result)
    assert got["selected"] == expected["selected"]
    assert set(expected["columns"]) <= set(got["columns"])
    for name, want in expected["columns"].items():
        want = np.array([np.nan if v is None else v for v in want], dtype=np.float64)
        have = np.array([np.nan if v is None else v for v in got["columns"][name]],
                        dtype=np.float64)
        # fp32 on both sides; only the summation order of the matmul and attention kernels
        # may differ. A margin is a difference of two probabilities: its error is absolute,
        # about twice the logits' (~1e-5 after 30 layers), whatever the margin's size.
        atol = 5e-5 if name.endswith("margin") else 1e-6
        np.testing.assert_allclose(have, want, rtol=1e-4, atol=atol, equal_nan=True,
                                   err_msg=f"{case}: column {name}")
    if case in SAME_STAGES:
        assert got["left_stage"] == expected["left_stage"]
    else:  # what was dropped is still dropped, at some stage
        assert [s == -1 for s in got["left_stage"]] == [s == -1 for s in
                                                        expected["left_stage"]]
