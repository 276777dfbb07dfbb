"""Per-tile evidence of each aggregator kind, and the ensemble's spread."""

import numpy as np
import pytest
import torch

from mstar.models.registry import create_mil_model
from mstar.predict.ensemble import predict_bag
from mstar.predict.models import RunModels, unit_outputs


def test_attention_models_give_attention_and_token_models_per_tile_scores():
    torch.manual_seed(0)
    x = torch.randn(10, 8)
    abmil = create_mil_model("abmil", "classification", 3, in_dim=8, dim=16).eval()
    summary, scores, kind = unit_outputs(abmil, x)
    assert kind == "attention" and scores.sum() == pytest.approx(1.0, abs=1e-5)
    transmil = create_mil_model("transmil", "classification", 3, in_dim=8, dim=16).eval()
    summary, scores, kind = unit_outputs(transmil, x)
    assert kind == "per-tile class score" and scores.shape == (10,) and np.isfinite(scores).all()
    logits = transmil.head(transmil(x[None], torch.ones(1, 10, dtype=torch.bool)).slide.tokens[0])
    np.testing.assert_allclose(scores, logits[:, int(summary["probs"].argmax())].detach().numpy(), atol=1e-6)


def test_ensemble_mean_and_spread_over_models():
    torch.manual_seed(0)
    models = [create_mil_model("abmil", "classification", 2, in_dim=8, dim=16).eval() for _ in range(3)]
    run = RunModels(run=None, kind="classification", units=["a", "b", "c"], models=models, classes=["x", "y"],
                    identity={}, risk_cutoffs=[], in_dim=8)
    x = torch.randn(7, 8)
    pred = predict_bag(run, x)
    probs = np.stack([unit_outputs(m, x)[0]["probs"] for m in models])
    assert pred.row["prob_x"] == pytest.approx(probs[:, 0].mean(), abs=1e-6)
    assert pred.row["sd_y"] == pytest.approx(probs[:, 1].std(ddof=1), abs=1e-6)
    assert pred.row["predicted"] == ["x", "y"][int(probs.mean(0).argmax())]
    att = np.stack([unit_outputs(m, x)[1] for m in models])
    np.testing.assert_allclose(pred.scores, att.mean(0), atol=1e-6)
    surv = [create_mil_model("abmil", "survival", 4, in_dim=8, dim=16).eval() for _ in range(3)]
    risks = [unit_outputs(m, x)[0]["risk"] for m in surv]
    cutoffs = [risks[0] - 1, risks[1] + 1, risks[2] - 1]  # two of three models call the slide high risk
    run = RunModels(None, "survival", ["a", "b", "c"], surv, None, {}, cutoffs, 8)
    pred = predict_bag(run, x)
    assert pred.row["high_risk_votes"] == 2 and pred.row["risk_group"] == "high"
    even = RunModels(None, "survival", ["a", "b"], surv[:2], None, {}, cutoffs[:2], 8)  # one vote of two
    assert predict_bag(even, x).row["risk_group"] == "tied"
    assert pred.row["risk"] == pytest.approx(np.mean(risks), abs=1e-6)


def test_omics_are_found_by_manifest_slide_id_or_tcga_patient_only():
    import pandas as pd

    from mstar.errors import MstarError
    from mstar.predict.run import CaseOmics

    table = pd.DataFrame({"G1": [1.0, 2.0, 3.0]}, index=["TCGA-AB-1234", "patient_0001", "S9"])
    omics = CaseOmics(table, "omics.csv", {"slide-x": "S9"})
    assert omics.profile("slide-x")[0] == "S9"  # the manifest's case
    assert omics.profile("patient_0001")[0] == "patient_0001"  # the slide id is the case
    assert omics.profile("TCGA-AB-1234-01Z-00-DX1")[0] == "TCGA-AB-1234"  # TCGA patient barcode
    assert omics.profile("tcga-ab-1234-01a-01-ts1")[0] == "TCGA-AB-1234"  # a lower-case file name
    tried = r"no omics for slide tcga-zz-9999-01a \(tried case tcga-zz-9999-01a, TCGA-ZZ-9999\)"
    with pytest.raises(MstarError, match=tried):
        omics.profile("tcga-zz-9999-01a")  # the barcode it tried is named
    with pytest.raises(MstarError, match="no omics for slide patient_00012_A"):
        omics.profile("patient_00012_A")  # a 12-character prefix is not a case outside TCGA ids


def test_new_slides_are_segmented_with_every_tissue_setting_of_the_training_features(caplog, tmp_path):
    from mstar.predict.inputs import tissue_params
    from mstar.slide.tissue import TissueParams

    ident = {"mask_mpp": 4.0, "fill_holes": True, "min_tissue_area_um2": 4.0e5, "min_hole_area_um2": 100.0,
             "remove_pen": False}
    assert tissue_params(ident, tmp_path) == TissueParams(4.0, 4.0e5, 100.0, True, False)
    assert "do not record" not in caplog.text
    # features from before these were recorded: the defaults, said once
    assert tissue_params({"mask_mpp": 4.0}, tmp_path) == TissueParams(mask_mpp=4.0)
    assert "do not record min_tissue_area_um2, min_hole_area_um2, remove_pen" in caplog.text
