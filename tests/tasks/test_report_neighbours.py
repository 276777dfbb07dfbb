"""`mstar train report --neighbour-embeddings`: consensus neighbours found by stage-1 embeddings."""

import json
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest
import torch

from mstar.data.synthetic.reports import write_report
from mstar.data.synthetic.truth import draw_cohort_truth
from mstar.data.synthetic.types import cancer_codes
from mstar.errors import MstarError
from mstar.models.report.consensus import consensus_pick
from mstar.models.report.vocab import clean_report
from mstar.run.fingerprint import file_digest
from mstar.tasks.report_config import ReportConfig
from mstar.tasks.report_task import generate_for_run, train_report
from tests.models.report.test_consensus_stage1 import write_embeddings
from tests.tasks._bags import write_bag
from tests.tasks.test_report_learning import class_bags

pytestmark = pytest.mark.slow
TINY = {"d_model": 16, "d_ff": 32, "n_heads": 2, "d_vf": 16, "cmm_size": 16, "cmm_dim": 16, "topk": 8,
        "prototype_num": 8, "region_size": 16, "num_layers": 1, "encoder_layers": 1, "max_len": 48}


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    """90 cases; an embeddings file whose slide vectors point at the *next* class's report axis, so
    reports found through it state that class (the pooled features would give the true one)."""
    root = tmp_path_factory.mktemp("neighbours")
    cases = draw_cohort_truth(90, 3, seed=2)
    bags, rng = class_bags(cases), np.random.default_rng(3)
    codes = cancer_codes(3)
    rows, reports, ids, slide_vec, report_vec = [], {}, [], [], []
    for c in cases:
        sid = c.slides[0].slide_id
        write_bag(root / "features" / f"{sid}.h5", bags[c.case_id].numpy())
        rows.append({"case": c.case_id, "slide": sid, "label": c.cancer_type, "fold": c.split})
        reports[sid] = write_report(c, rng)
        axis = codes.index(c.cancer_type)
        ids.append(sid)
        slide_vec.append(np.eye(3)[(axis + 1) % 3] + rng.normal(0, 0.1, 3))
        report_vec.append(np.eye(3)[axis] + rng.normal(0, 0.1, 3))
    pd.DataFrame(rows).to_csv(root / "manifest.csv", index=False)
    (root / "reports.json").write_text(json.dumps(reports))
    write_embeddings(root / "embeddings.h5", ids, slide_vec, report_vec)
    return root, dict(zip(ids, slide_vec)), dict(zip(ids, report_vec))


def config(root: Path, **kw) -> ReportConfig:
    kw = {"out": str(root / "runs"), **kw}
    return ReportConfig(manifest=str(root / "manifest.csv"), features=str(root / "features"),
                        reports=str(root / "reports.json"), epochs=1, batch_size=8, min_freq=2, beam_size=1,
                        bootstrap=0, meteor=False, model_args=TINY, **kw)


def test_neighbours_come_from_the_embeddings_file(cohort):
    root, slide_vec, report_vec = cohort
    result = train_report(config(root, neighbour_embeddings=str(root / "embeddings.h5"), name="s1"))
    source = str((root / "embeddings.h5").resolve())
    assert result["consensus"] == {"k": 5, "space": "stage1", "source": source}
    pred = pd.read_csv(Path(result["run"]) / "predictions.csv", keep_default_na=False)
    manifest = pd.read_csv(root / "manifest.csv")
    train = manifest[manifest.fold == "train"].slide.tolist()
    texts = json.loads((root / "reports.json").read_text())
    bank = np.stack([report_vec[s] / np.linalg.norm(report_vec[s]) for s in train])  # (M, 3)
    for row in pred.itertuples():  # the rule recomputed: the 5 training reports nearest to the slide vector
        sims = bank @ (slide_vec[row.slide] / np.linalg.norm(slide_vec[row.slide]))
        nearest = torch.tensor(sims).topk(5).indices.tolist()
        neighbours = [clean_report(texts[train[j]]) for j in nearest]
        assert row.generated == consensus_pick(clean_report(row.generator), neighbours)
    # the slide vectors point at the next class: the re-ranked reports state it, not the true class
    assert result["test"]["cancer_type_accuracy"] < 0.2
    pooled = train_report(config(root, name="pooled"))
    assert pooled["consensus"]["space"] == "pooled" and pooled["test"]["cancer_type_accuracy"] > 0.8
    # generation re-ranks like the evaluation (the run's file by default)
    test = pred[pred.split == "test"].head(2)
    assert [generate_for_run(result["run"], s) for s in test.slide] == test.generated.tolist()


def test_generation_reads_the_slides_embeddings(cohort, tmp_path, capsys):
    import shutil

    from mstar.cli import main

    root = cohort[0]
    sid = pd.read_csv(root / "manifest.csv").slide[0]
    shutil.copy(root / "embeddings.h5", tmp_path / "copy.h5")
    run = train_report(config(root, neighbour_embeddings=str(tmp_path / "copy.h5"), name="moved"))["run"]
    want = generate_for_run(run, sid)
    # a file without the slide: one line, exit 1, nothing written
    write_embeddings(tmp_path / "few.h5", ["other"], [[1, 0, 0]], [[1, 0, 0]])
    with pytest.raises(SystemExit) as stop:
        main(["generate", "--run", run, "--slide", sid, "--embeddings", str(tmp_path / "few.h5"), "--out",
              str(tmp_path / "gen")])
    assert stop.value.code == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"1 slides to report on have no slide embedding (e.g. {sid})" in err
    assert not any((tmp_path / "gen").rglob("generated.csv"))
    # the run's file is gone: say so, and another file of the same model (--embeddings) does the same job
    (tmp_path / "copy.h5").unlink()
    with pytest.raises(MstarError, match="copy.h5: the embeddings file .* is gone; pass --embeddings"):
        generate_for_run(run, sid)
    assert generate_for_run(run, sid, embeddings=root / "embeddings.h5") == want
    pooled = train_report(config(root, name="pooled"))["run"]
    with pytest.raises(MstarError, match="pooled neighbour bank\\): drop --embeddings"):
        generate_for_run(pooled, sid, embeddings=root / "embeddings.h5")
    with pytest.raises(MstarError, match="consensus_k is 0"):
        config(root, neighbour_embeddings=str(root / "embeddings.h5"), consensus_k=0).validate()


@pytest.mark.parametrize("case_ids", [True, False], ids=["h5-with-cases", "h5-of-slides-only"])
def test_a_model_that_saw_held_out_cases_stops_before_the_run_folder(cohort, tmp_path, case_ids):
    root, slide_vec, report_vec = cohort
    manifest = pd.read_csv(root / "manifest.csv")
    ids = manifest.slide.tolist()
    leaked = manifest[manifest.fold == "test"].case.tolist()[:2]
    # without a manifest `mstar embed` knows slides only: the report run's manifest names their cases
    write_embeddings(tmp_path / "leak.h5", ids, [slide_vec[s] for s in ids], [report_vec[s] for s in ids],
                     train_cases=[*manifest[manifest.fold == "train"].case, *leaked],
                     case_ids=manifest.case.tolist() if case_ids else None)
    with pytest.raises(MstarError, match="trained on 2 of this run's val/test slides"):
        train_report(config(root, neighbour_embeddings=str(tmp_path / "leak.h5"), name="leak",
                            out=str(tmp_path / "runs")))
    assert not (tmp_path / "runs" / "report" / "leak").exists()
    # a training slide without a report vector stops it too, before anything is written
    write_embeddings(tmp_path / "part.h5", ids[:10], np.eye(3)[[0] * 10], np.eye(3)[[0] * 10])
    with pytest.raises(MstarError, match="training slides have no report embedding"):
        train_report(config(root, neighbour_embeddings=str(tmp_path / "part.h5"), name="part",
                            out=str(tmp_path / "runs")))
    assert not (tmp_path / "runs" / "report" / "part").exists()


def test_embeddings_of_another_reports_file_are_flagged(cohort, tmp_path, caplog):
    root, slide_vec, report_vec = cohort
    ids = pd.read_csv(root / "manifest.csv").slide.tolist()
    write_embeddings(tmp_path / "other.h5", ids, [slide_vec[s] for s in ids], [report_vec[s] for s in ids],
                     reports_digest="sha256:another-file")
    with caplog.at_level("WARNING", logger="mstar.tasks.report_task"):
        train_report(config(root, neighbour_embeddings=str(tmp_path / "other.h5"), name="other",
                            out=str(tmp_path / "runs")))
    assert "was embedded from another reports file than" in caplog.text
    caplog.clear()
    write_embeddings(tmp_path / "same.h5", ids, [slide_vec[s] for s in ids], [report_vec[s] for s in ids],
                     reports_digest=file_digest(root / "reports.json"))
    with caplog.at_level("WARNING", logger="mstar.tasks.report_task"):
        train_report(config(root, neighbour_embeddings=str(tmp_path / "same.h5"), name="same",
                            out=str(tmp_path / "runs")))
    assert "another reports file" not in caplog.text


def test_a_stage1_init_checkpoint_is_checked_before_the_run_folder(cohort, tmp_path, caplog):
    """``--stage1`` copies the stage-1 patch projection: a model that saw held-out cases is flagged (not
    refused: mSTAR pretrains on the cohorts it evaluates) and recorded; a mismatched one writes nothing."""
    root, _, _ = cohort
    manifest = pd.read_csv(root / "manifest.csv")
    with h5py.File(root / "features" / f"{manifest.slide[0]}.h5") as handle:
        in_dim = handle["features"].shape[1]
    leaked = manifest[manifest.fold == "test"].case.tolist()[:2]
    proj = {"proj.weight": torch.randn(TINY["d_vf"], in_dim), "proj.bias": torch.randn(TINY["d_vf"])}
    torch.save({"model_state_dict": proj, "meta": {"train_cases": [*manifest[manifest.fold == "train"].case,
                                                                    *leaked]}}, tmp_path / "seen.pt")
    with caplog.at_level("WARNING", logger="mstar.tasks.report_task"):
        result = train_report(config(root, stage1=str(tmp_path / "seen.pt"), name="seen",
                                     out=str(tmp_path / "runs")))
    assert "trained on 2 of this run's val/test slides" in caplog.text
    assert result["stage1_init"] == {"checkpoint": str(tmp_path / "seen.pt"), "saw_heldout": 2,
                                     "train_cases_recorded": True}
    caplog.clear()
    torch.save({"model_state_dict": proj}, tmp_path / "old.pt")  # an earlier version's: no cases recorded
    with caplog.at_level("WARNING", logger="mstar.tasks.report_task"):
        result = train_report(config(root, stage1=str(tmp_path / "old.pt"), name="old",
                                     out=str(tmp_path / "runs")))
    assert "does not record the cases it was trained on" in caplog.text
    assert result["stage1_init"]["saw_heldout"] == 0
    wide = {"proj.weight": torch.randn(TINY["d_vf"] + 1, in_dim), "proj.bias": torch.randn(TINY["d_vf"] + 1)}
    torch.save({"model_state_dict": wide}, tmp_path / "wide.pt")
    with pytest.raises(MstarError, match="wide.pt"):
        train_report(config(root, stage1=str(tmp_path / "wide.pt"), name="wide", out=str(tmp_path / "runs")))
    assert not (tmp_path / "runs" / "report" / "wide").exists()
