"""Stage-1 pretraining runs: checkpoint layout and downstream loading, missing modalities, resume, bad
inputs."""

from __future__ import annotations

import json

import lightning as L
import numpy as np
import pandas as pd
import pytest
import torch

from mstar.errors import MstarError
from mstar.pretrain.stage1_config import Stage1Config
from mstar.pretrain.stage1_train import pretrain
from tests.pretrain._cohort import TINY, stage1_cohort
from tests.tasks._bags import write_bag


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    return stage1_cohort(tmp_path_factory.mktemp("stage1"))


def _cfg(tmp_path, paths, **kw) -> Stage1Config:
    args = {"manifest": str(paths["manifest"]), "features": str(paths["features"]),
            "reports": str(paths["reports"]), "rna": str(paths["rna"]), "out": str(tmp_path / "runs"),
            "epochs": 2, **TINY}
    args.update(kw)
    return Stage1Config(**args)


@pytest.fixture(scope="module")
def short_run(cohort, tmp_path_factory):
    """Two epochs with reports and RNA (the performer gene encoder)."""
    return pretrain(_cfg(tmp_path_factory.mktemp("run"), cohort, name="short"), progress=False)


def test_checkpoint_keys_are_upstreams_and_the_downstream_loaders_read_them(short_run):
    from mstar.models.upstream import load_stage1_aggregator
    from mstar.pretrain.stage1_model import load_stage1

    ckpt = torch.load(short_run["checkpoint"], map_location="cpu", weights_only=True)
    sd = ckpt["model_state_dict"]
    assert {k.split(".")[0] for k in sd} == {"proj", "vision_encoder", "text_encoder", "proj_text",
                                             "gene_encoder", "logit_scale"}
    assert tuple(sd["proj.weight"].shape) == (32, 16) and tuple(sd["proj_text.weight"].shape) == (32, 384)
    assert all(k.startswith("text_encoder.bert.") for k in sd if k.startswith("text_encoder."))
    assert "vision_encoder.cls_token" in sd and "vision_encoder.layer1.attn.to_qkv.weight" in sd
    assert not any(k.startswith("vision_encoder._fc1") for k in sd)  # the projection is the top-level `proj`

    model, meta = load_stage1(short_run["checkpoint"])
    assert meta["classes"] == ["BRCA", "KIRC", "LUAD"]
    # the patch encoder of its features, which zero-shot, retrieval, embed and predict check theirs against
    assert meta["features"] == {"encoder": "timm:test", "encoder_sha": "c" * 64}
    bag = torch.randn(1, 30, 16)
    # num_landmarks has no weights, so it cannot be read from the checkpoint: pass the pretraining value
    agg = load_stage1_aggregator(short_run["checkpoint"], proj="checkpoint", num_landmarks=8).eval()
    with torch.no_grad():  # upstream layout → TransMIL with proj as its input Linear: the same slide encoder
        torch.testing.assert_close(agg(bag).embedding, model.encode_slide(bag))
        ddp = {"model_state_dict": {f"module.{k}": v for k, v in sd.items()}}
        again = load_stage1_aggregator(ddp, proj="checkpoint", num_landmarks=8).eval()
        torch.testing.assert_close(again(bag).embedding, model.encode_slide(bag))
    fresh = load_stage1_aggregator(short_run["checkpoint"], in_dim=16, proj="fresh")
    torch.testing.assert_close(fresh.layer2.attn.to_qkv.weight,
                               sd["vision_encoder.layer2.attn.to_qkv.weight"])


def test_the_supervised_runner_starts_from_the_pretrained_aggregator(short_run, cohort, tmp_path):
    from mstar.tasks.config import TrainConfig
    from mstar.tasks.runner import build_model, train_task

    ckpt = torch.load(short_run["checkpoint"], map_location="cpu", weights_only=True)["model_state_dict"]
    cfg = TrainConfig(task="classify", manifest=str(cohort["manifest"]), features=str(cohort["features"]),
                      model="transmil", stage1=short_run["checkpoint"], epochs=1, batch_size=8, bootstrap=50,
                      model_args={"num_landmarks": 8}, out=str(tmp_path / "runs"), max_patches=24)
    model = build_model(cfg, 3, 16)
    torch.testing.assert_close(model.aggregator.cls_token, ckpt["vision_encoder.cls_token"])
    torch.testing.assert_close(model.aggregator._fc1[0].weight,
                               ckpt["proj.weight"])  # aggregator_proj=checkpoint
    result = train_task(cfg, progress=False)
    assert result["metrics"]["test"]["auc_macro"]["n"] > 0


def test_missing_and_empty_reports_and_rna_leave_the_other_pairs_training(short_run, cohort):
    counts = short_run["meta"]["counts"]
    assert counts["reports"] == 42 and counts["empty_reports"] == 1 and counts["absent_reports"] == 5
    assert counts["rna"] == 41 and counts["genes"] == 30
    log = pd.read_csv(f"{short_run['run']}/log.csv")
    assert list(log["epoch"]) == [1, 2]
    for term in ("slide_report", "slide_gene", "report_gene", "triplet"):
        assert np.isfinite(log[f"train_{term}"]).all()
    assert (log["train_slide_report"] > 0).all() and (log["train_slide_gene"] > 0).all()


def test_a_batch_without_reports_still_trains_slide_and_gene(short_run, cohort):
    from mstar.data.bags import BagStore
    from mstar.pretrain.stage1_cohort import build_cohort
    from mstar.pretrain.stage1_data import Stage1Dataset, collate_stage1
    from mstar.pretrain.stage1_inputs import read_slide_table
    from mstar.pretrain.stage1_model import load_stage1
    from mstar.pretrain.stage1_module import stage1_step

    model, _ = load_stage1(short_run["checkpoint"])
    model.train()
    rows = read_slide_table(cohort["manifest"])
    items = build_cohort(rows, str(cohort["features"]), str(cohort["reports"]), str(cohort["rna"]),
                         vocabulary=model.gene_encoder.vocabulary).splits["train"]
    lazy = BagStore(cohort["features"], items.slides, [[s] for s in items.slides], cache=False)
    data = Stage1Dataset(lazy, items)
    batch = collate_stage1([data[i] for i in range(6)])
    batch["has_report"][:] = False  # nobody in this batch has a report
    out = stage1_step(model, batch)
    assert out["slide_report"].item() == 0 and out["report_gene"].item() == 0 and out["n_slide_report"] == 0
    assert out["slide_gene"].item() > 0 and out["n_slide_gene"] == int(batch["has_gene"].sum())
    out["loss"].backward()
    assert model.vision_encoder.cls_token.grad.abs().sum() > 0
    assert model.gene_encoder.proj_gene.weight.grad.abs().sum() > 0
    assert model.proj_text.weight.grad is None or model.proj_text.weight.grad.abs().sum() == 0


class _StopAt(L.Callback):
    """Simulates a crash at the start of an epoch (after the previous epoch's checkpoint was written)."""

    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        if trainer.current_epoch == self.epoch:
            raise RuntimeError("simulated crash")


def test_resuming_from_last_ckpt_gives_the_uninterrupted_weights_and_history(cohort, tmp_path):
    base = dict(reports=None, epochs=3)  # RNA only: the Performer and TransMIL dropout are both random
    whole = pretrain(_cfg(tmp_path, cohort, name="whole", **base), progress=False)
    with pytest.raises(RuntimeError, match="simulated crash"):
        pretrain(_cfg(tmp_path, cohort, name="cut", **base), progress=False, callbacks=[_StopAt(2)])
    run = tmp_path / "runs" / "pretrain" / "cut"
    assert (run / "checkpoints" / "last.ckpt").exists() and not (run / "metrics.json").exists()
    resumed = pretrain(_cfg(tmp_path, cohort, name="cut", **base), progress=False)
    a = torch.load(whole["checkpoint"], weights_only=True)["model_state_dict"]
    b = torch.load(resumed["checkpoint"], weights_only=True)["model_state_dict"]
    assert {k.split(".")[0] for k in a} == {"proj", "vision_encoder", "gene_encoder", "logit_scale"}
    for key, value in a.items():
        if isinstance(value, torch.Tensor):
            assert torch.equal(value, b[key]), key
    log_a = pd.read_csv(tmp_path / "runs" / "pretrain" / "whole" / "log.csv").drop(columns="seconds")
    log_b = pd.read_csv(run / "log.csv").drop(columns="seconds")
    assert list(log_b["epoch"]) == [1, 2, 3]
    pd.testing.assert_frame_equal(log_a, log_b)
    assert resumed["metrics"]["val"]["slide_to_gene/recall@1"] == pytest.approx(
        whole["metrics"]["val"]["slide_to_gene/recall@1"])
    stamp = (run / "checkpoints" / "stage1.pt").stat().st_mtime_ns  # a finished run is not retrained
    pretrain(_cfg(tmp_path, cohort, name="cut", **base), progress=False)
    assert (run / "checkpoints" / "stage1.pt").stat().st_mtime_ns == stamp


def test_bad_inputs_raise_one_line_errors(cohort, tmp_path):
    def fails(match, **kw):
        with pytest.raises(MstarError, match=match) as err:
            pretrain(_cfg(tmp_path, cohort, epochs=1, **kw), progress=False)
        assert "\n" not in str(err.value)

    fails("reports file not found", reports=str(tmp_path / "nope.json"))
    (tmp_path / "list.json").write_text(json.dumps(["a", "b"]))
    fails("expected a JSON object", reports=str(tmp_path / "list.json"))
    (tmp_path / "bad.json").write_text("{oops")
    fails("not valid JSON", reports=str(tmp_path / "bad.json"))
    manifest = pd.read_csv(cohort["manifest"])
    manifest.drop(columns="label").to_csv(tmp_path / "nolabel.csv", index=False)
    fails("no cancer-type column", manifest=str(tmp_path / "nolabel.csv"))
    manifest.rename(columns={"slide": "image"}).to_csv(tmp_path / "noslide.csv", index=False)
    fails("noslide.csv", manifest=str(tmp_path / "noslide.csv"))
    pd.DataFrame({"gene": ["G00"], "X1": [1.0], "X2": [2.0]}).to_csv(tmp_path / "other.csv", index=False)
    fails("no training case has a profile", rna=str(tmp_path / "other.csv"))
    fails("needs --reports and/or --rna", reports=None, rna=None)
    fails("heldout", heldout="test")


def test_nan_features_stop_training_naming_the_slide(cohort, tmp_path):
    import shutil

    feats = tmp_path / "features"
    shutil.copytree(cohort["features"], feats)
    bad = np.random.default_rng(0).normal(size=(30, 16))
    bad[:, 2] = np.nan  # in every patch, so every random subset holds it
    for slide in ("S000", "S002", "S003", "S004", "S005", "S006"):  # several, so every batch holds one
        write_bag(feats / f"{slide}.h5", bad)
    # caught when the features load, naming the file, before any training step
    with pytest.raises(MstarError, match=r"S000\.h5: 30 of 30 patch features are NaN or infinite"):
        pretrain(_cfg(tmp_path, cohort, features=str(feats), epochs=1, reports=None), progress=False)


def test_text_read_out_and_negation_are_saved_and_old_checkpoints_load_as_before(short_run, tmp_path):
    from mstar.pretrain.stage1_model import load_stage1

    ckpt = torch.load(short_run["checkpoint"], map_location="cpu", weights_only=True)
    text = ckpt["config"]["text"]
    assert text["pooling"] == "mean" and text["negation"] == "drop"  # the defaults on the packaged MiniLM
    model, _ = load_stage1(short_run["checkpoint"])
    assert model.text.pooling == "mean" and model.text.negation == "drop"
    new_key = model.text_cache_file(tmp_path)
    old = {**ckpt, "config": {**ckpt["config"], "text": {k: v for k, v in text.items()
                                                        if k not in ("pooling", "negation")}}}
    model_old, _ = load_stage1(old)  # saved before these settings existed: [CLS], negations kept
    assert model_old.text.pooling == "cls" and model_old.text.negation == "keep"
    assert model_old.text_cache_file(tmp_path) != new_key  # cached states never mix read-outs


def test_cpu_bf16_only_where_it_pays(cohort, tmp_path, monkeypatch):

    from mstar.pretrain import stage1_train
    from mstar.utils.cpu_precision import pinned_cpu_precision

    pays = stage1_train.cpu_bf16_pays
    assert pays(Stage1Config(dim=512))  # the default model: 8 heads x 64
    assert not pays(Stage1Config(dim=64))  # narrow model: bf16 is slower
    assert not pays(Stage1Config(dim=512, vision_args={"heads": 4, "dim_head": 16}))  # narrow attention
    assert pays(Stage1Config(dim=1024, vision_args={"heads": 4}))  # 4 x 128
    assert not pays(Stage1Config(dim=512), width=64)  # a continued narrow model
    assert pays(Stage1Config(dim=64), width=512)
    assert not pays(Stage1Config(dim=512, devices=2))  # DDP: every rank would decide alone
    # through a run: the workload rule and the CPU's choice decide together; the meta records it
    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    monkeypatch.setattr(stage1_train, "cpu_bf16_pays", lambda cfg, width=None: True)
    with pinned_cpu_precision("bf16"):
        out = pretrain(_cfg(tmp_path, cohort, name="bf16", epochs=1), progress=False)
    assert out["meta"]["precision"] == "bf16-mixed"
    with pinned_cpu_precision("fp32"):
        out = pretrain(_cfg(tmp_path, cohort, name="fp32", epochs=1), progress=False)
    assert out["meta"]["precision"] == "32-true"
