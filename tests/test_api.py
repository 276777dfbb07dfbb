"""The public Python API: `import mstar` gives the entry points a notebook needs."""

from __future__ import annotations

import subprocess
import sys

import numpy as np

import mstar
from tests.tasks._bags import classification_cohort


def test_every_export_resolves_to_the_library_object():
    from mstar.features.io import load_features
    from mstar.tasks.config import TrainConfig
    from mstar.tasks.runner import train_task

    for name in mstar.__all__:
        assert getattr(mstar, name) is not None, name
    assert (mstar.TrainConfig is TrainConfig and mstar.train is train_task
            and mstar.load_features is load_features)
    assert mstar.__version__ and "train" in dir(mstar)


def test_import_is_light():
    code = "import sys, mstar; print(sorted(m for m in ('torch', 'lightning', 'pandas') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_train_and_evaluate_from_python(tmp_path):
    manifest, features = classification_cohort(tmp_path / "cohort", n_cases=45, seed=1)
    cfg = mstar.TrainConfig(task="classify", manifest=str(manifest), features=str(features), epochs=8,
                            lr=1e-3, batch_size=8, bootstrap=50, model_args={"dim": 32, "attn_dim": 16},
                            out=str(tmp_path / "runs"))
    result = mstar.train(cfg, progress=False)
    assert result["metrics"]["test"]["auc_macro"]["value"] > 0.8
    feats, coords, _ = mstar.load_features(next(features.glob("*.h5")))
    assert feats.ndim == 2 and np.asarray(coords).shape[1] == 2
    again = mstar.train(cfg, progress=False)
    assert again["finished_before"] and again["metrics"] == result["metrics"]
