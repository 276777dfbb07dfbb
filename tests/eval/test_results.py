"""metrics.json / predictions.csv round trips, NaN handling, the CI formatter."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from mstar.errors import MstarError
from mstar.eval.results import (
    format_ci,
    metrics_table,
    point_entry,
    read_metrics_json,
    read_metrics_meta,
    read_predictions_csv,
    write_metrics_json,
    write_predictions_csv,
)

METRICS = {
    "val": {"auc_macro": {"value": 0.9, "ci_low": 0.85, "ci_high": 0.95, "n": np.int64(40)}},
    "test": {
        "auc_macro": {"value": np.float64(0.912), "ci_low": 0.871, "ci_high": 0.948, "n": 120},
        "c_index": point_entry(float("nan"), 3),
    },
}


def test_round_trip_with_nan_as_null_and_meta(tmp_path):
    path = write_metrics_json(tmp_path / "run" / "metrics.json", METRICS, meta={"meteor": "METEOR 1.5"})
    raw = json.loads(path.read_text())  # strict JSON: NaN written as null
    assert raw["test"]["c_index"] == {"value": None, "ci_low": None, "ci_high": None, "n": 3}
    back = read_metrics_json(path)
    assert list(back) == ["val", "test"]
    assert back["test"]["auc_macro"] == {"value": 0.912, "ci_low": 0.871, "ci_high": 0.948, "n": 120}
    assert math.isnan(back["test"]["c_index"]["value"])
    assert read_metrics_meta(path) == {"meteor": "METEOR 1.5"}
    assert not [p for p in path.parent.iterdir() if p.name != "metrics.json"]  # no temporaries left


def test_invalid_entries_and_files_are_user_errors(tmp_path):
    with pytest.raises(MstarError, match="lacks"):
        write_metrics_json(tmp_path / "m.json", {"test": {"auc": {"value": 1.0}}})
    with pytest.raises(MstarError, match="not found"):
        read_metrics_json(tmp_path / "absent.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(MstarError, match="not valid JSON"):
        read_metrics_json(bad)


def test_predictions_round_trip(tmp_path):
    table = {"case": ["NA", "b"], "split": ["test", "test"], "label": [0, 1], "prob_1": [0.2, 0.7]}
    path = write_predictions_csv(tmp_path / "predictions.csv", table)
    pd.testing.assert_frame_equal(read_predictions_csv(path), pd.DataFrame(table))
    with pytest.raises(MstarError, match="not found"):
        read_predictions_csv(tmp_path / "none.csv")


def test_format_ci_and_table():
    assert format_ci({"value": 0.9123, "ci_low": 0.8712, "ci_high": 0.9478}) == "0.912 [0.871, 0.948]"
    assert format_ci(point_entry(0.5, 10), digits=2) == "0.50"
    assert format_ci(point_entry(float("nan"), 0)) == "nan"
    table = metrics_table(METRICS)
    assert table.shape == (3, 7)
    assert table.loc[1, "formatted"] == "0.912 [0.871, 0.948]"
