"""`mstar pretrain` writes the run directory; `mstar embed` writes slide/report/gene embeddings of any
cohort."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from typer.testing import CliRunner

import mstar.cli.pretrain  # noqa: F401  (registers the commands on mstar.cli.app)
from mstar.cli import app
from mstar.errors import MstarError
from tests.pretrain._cohort import TINY, stage1_cohort
from tests.tasks._bags import write_bag


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    paths = stage1_cohort(root / "cohort", n_cases=30)
    config = root / "tiny.yaml"
    config.write_text(yaml.safe_dump({k: v for k, v in TINY.items()
                                      if k not in ("lr", "batch_size", "max_patches")}))
    args = ["pretrain", "--manifest", str(paths["manifest"]), "--features", str(paths["features"]),
            "--reports", str(paths["reports"]), "--rna", str(paths["rna"]), "--config", str(config),
            "--epochs", "1", "--batch-size", "8", "--lr", "0.002", "--max-patches", "24",
            "--out", str(root / "runs"), "--name", "cli", "--set", "bootstrap=50", "--set", "val_every=1"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    return root, paths, result.output


def test_pretrain_command_writes_the_run_directory(run):
    root, _, output = run
    out = root / "runs" / "pretrain" / "cli"
    assert "held-out slide → report" in output and "chance" in output and str(out) in output
    cfg = yaml.safe_load((out / "config.yaml").read_text())
    assert cfg["epochs"] == 1 and cfg["max_patches"] == 24 and cfg["bootstrap"] == 50 and cfg["dim"] == 32
    for name in ("checkpoints/last.ckpt", "checkpoints/stage1.pt", "log.csv", "metrics.json",
                 "figures/retrieval.png", "figures/slide_embeddings.png"):
        assert (out / name).is_file(), name
    assert len(pd.read_csv(out / "log.csv")) == 1


def test_embed_writes_every_modality_and_masks_unknown_and_missing_genes(run, tmp_path):
    from mstar.pretrain.stage1_model import load_stage1
    from mstar.run.fingerprint import content_digest, file_digest

    root, paths, _ = run
    ckpt = root / "runs" / "pretrain" / "cli" / "checkpoints" / "stage1.pt"
    table = pd.read_csv(paths["rna"]).set_index("gene")
    table = table.drop(index="G29")  # a vocabulary gene the new table lacks: masked
    table.loc["NEWGENE"] = 1.0  # a gene the model never saw: ignored with a warning
    table.reset_index().to_csv(tmp_path / "rna.csv", index=False)
    out = tmp_path / "emb.h5"
    args = ["embed", "--stage1", str(ckpt), "--features", str(paths["features"]), "--out-h5", str(out),
            "--manifest", str(paths["manifest"]), "--reports", str(paths["reports"]), "--rna",
            str(tmp_path / "rna.csv"), "--device", "cpu"]
    with pytest.warns(UserWarning, match="1 of 30 table genes are not in the gene vocabulary"):
        result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    with h5py.File(out) as f:
        slides = [s.decode() for s in f["slide_id"][:]]
        assert slides == [f"S{i:03d}" for i in range(30)]  # every split, manifest order
        assert f["slide"].shape == (30, 32) and np.isfinite(f["slide"][:]).all()
        has_report, has_gene = f["has_report"][:], f["has_gene"][:]
        assert has_report.sum() == 26 and not has_report[1] and not has_report[4]  # S001 empty, S004 absent
        assert np.isnan(f["report"][:][~has_report]).all() and np.isfinite(f["report"][:][has_report]).all()
        assert has_gene.sum() == 26 and not has_gene[5] and np.isnan(f["gene"][:][~has_gene]).all()
        assert [s.decode() for s in f["label"][:3]] == ["BRCA", "LUAD", "KIRC"]
        slide0, gene0 = f["slide"][0], f["gene"][0]
        trained = json.loads(f.attrs["train_cases"])  # the cases the model was trained on: the train fold
        assert f.attrs["train_cases_complete"] and f.attrs["checkpoint_digest"] == content_digest(ckpt)
        assert f.attrs["reports_digest"] == file_digest(paths["reports"])
    manifest = pd.read_csv(paths["manifest"])
    assert trained == sorted(manifest[manifest["fold"] == "train"]["case"])
    model, _ = load_stage1(ckpt)
    from mstar.features.io import load_features

    feats, _, _ = load_features(paths["features"] / "S000.h5")
    with torch.no_grad():  # all patches (no subsetting) at inference
        want = model.encode_slide(torch.as_tensor(np.asarray(feats), dtype=torch.float16).float()[None])[0]
    np.testing.assert_allclose(slide0, want.numpy(), rtol=1e-4, atol=1e-5)
    vocab = model.gene_encoder.vocabulary
    values = table.reindex(vocab)["C000"].to_numpy(np.float32)
    mask = ~np.isnan(values)
    assert not mask[vocab.index("G29")]
    with torch.no_grad():
        want = model.encode_gene(torch.from_numpy(np.nan_to_num(values))[None],
                                 torch.from_numpy(mask)[None])[0]
    np.testing.assert_allclose(gene0, want.numpy(), rtol=1e-4, atol=1e-5)


def test_embed_without_a_manifest_takes_every_feature_file_and_checks_the_width(run, tmp_path):
    from mstar.pretrain.stage1_embed import EmbedConfig, embed_cohort

    root, paths, _ = run
    ckpt = root / "runs" / "pretrain" / "cli" / "checkpoints" / "stage1.pt"
    cfg = EmbedConfig(stage1=str(ckpt), features=str(paths["features"]), out=str(tmp_path / "runs"),
                      device="cpu")
    summary = embed_cohort(cfg)
    h5 = tmp_path / "runs" / "embed" / "features" / "embeddings.h5"
    assert summary == {"out": str(h5), "run": str(h5.parent), "slides": 30, "reports": 0, "genes": 0,
                       "dim": 32}
    assert yaml.safe_load((h5.parent / "config.yaml").read_text())["stage1"] == str(ckpt)
    with h5py.File(h5) as f:
        assert not f["has_report"][:].any() and f.attrs["in_dim"] == 16
    assert embed_cohort(cfg)["finished_before"]  # the same inputs again: reported, not recomputed
    write_bag(tmp_path / "other" / "X.h5", np.zeros((5, 8)))
    with pytest.raises(MstarError, match="8-d patch features, but the checkpoint was pretrained on 16-d"):
        embed_cohort(EmbedConfig(stage1=str(ckpt), features=str(tmp_path / "other"), out=str(tmp_path / "x")))
    with pytest.raises(MstarError, match="none.json: reports file not found"):
        embed_cohort(EmbedConfig(stage1=str(ckpt), features=str(paths["features"]), out=str(tmp_path / "y"),
                                 reports=str(tmp_path / "none.json")))
    # RNA keyed by case (C000) while each slide (S000) is its own case: the fix is named
    with pytest.raises(MstarError, match=r"no manifest case has an RNA profile .* without --manifest each "
                                         r"slide is its own case .*: pass --manifest CSV"):
        embed_cohort(EmbedConfig(stage1=str(ckpt), features=str(paths["features"]), out=str(tmp_path / "z"),
                                 rna=str(paths["rna"])))
    assert not (tmp_path / "z" / "embed").exists()


def test_embed_old_spellings_still_work_with_a_deprecation_line(run, tmp_path):
    root, paths, _ = run
    ckpt = root / "runs" / "pretrain" / "cli" / "checkpoints" / "stage1.pt"
    out = tmp_path / "old.h5"
    result = CliRunner().invoke(app, ["embed", "--checkpoint", str(ckpt), "--features",
                                      str(paths["features"]), "--out", str(out), "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert "--checkpoint is deprecated" in result.output and "--out FILE.h5 is deprecated" in result.output
    with h5py.File(out) as f:
        assert f["slide"].shape == (30, 32)
