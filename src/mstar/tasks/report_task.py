"""`mstar train report` and `mstar generate`: report generation from slide features (HistGen-style)."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pandas as pd
import torch
import yaml

from mstar.data.bags import BagStore
from mstar.data.feature_dirs import resolve_feature_dir
from mstar.data.manifest import read_manifest
from mstar.data.reports import read_reports
from mstar.errors import MstarError
from mstar.eval.results import write_metrics_json, write_predictions_csv
from mstar.tasks.report_config import ReportConfig
from mstar.utils.atomic import atomic_path, write_text_atomic


def _load(cfg: ReportConfig):
    table = read_manifest(cfg.manifest).table
    if "split" not in table:
        raise MstarError(f"{cfg.manifest}: report generation needs a fixed train/val/test split column")
    slides = [(s, split) for ss, split in zip(table["slides"], table["split"]) for s in ss]
    store = BagStore(resolve_feature_dir(cfg.features), [s for s, _ in slides], [[s] for s, _ in slides],
                     skip_missing=cfg.skip_missing)
    features = {s: store.bag(s) for s in store.cases}
    split_of = {s: split for s, split in slides if s in features}
    return features, split_of, store.dim


def train_report(cfg: ReportConfig, overwrite: bool = False) -> dict:
    """Train, select by validation BLEU-4, evaluate on test (with the template baseline) and save."""
    from mstar.eval.text_metrics import report_generation_metrics
    from mstar.models.report import ReportGenerator, Vocabulary
    from mstar.models.report.clinical import clinical_accuracy
    from mstar.models.report.inference import baseline_reports, generate_reports
    from mstar.models.report.train import build_items, fit_report_model
    from mstar.models.report.vocab import clean_report

    cfg.validate()
    start = time.perf_counter()
    torch.manual_seed(cfg.seed)
    reports = read_reports(cfg.reports)
    features, split_of, dim = _load(cfg)
    run = cfg.run_dir()
    if run.exists() and overwrite:
        shutil.rmtree(run)
    if (run / "metrics.json").exists():
        return {"run": str(run), "resumed": True, **json.loads((run / "summary.json").read_text())}
    run.mkdir(parents=True, exist_ok=True)
    write_text_atomic(run / "config.yaml", cfg.to_yaml())
    items, counts = {}, {}
    for split in ("train", "val", "test"):
        ids = [s for s, sp in split_of.items() if sp == split]
        items[split], counts[split] = build_items(features, reports, ids)
    vocab = Vocabulary.build([it.report for it in items["train"]], min_freq=cfg.min_freq)
    vocab.save(run / "vocab.json")
    model = ReportGenerator(len(vocab), in_dim=dim, **cfg.model_args)
    if cfg.aggregator:
        from mstar.models.report.init import init_from_stage1

        init_from_stage1(model, cfg.aggregator)
    fit = fit_report_model(model, items["train"], items["val"], vocab, epochs=cfg.epochs, lr=cfg.lr,
                           weight_decay=cfg.weight_decay, gamma=cfg.gamma, batch_size=cfg.batch_size,
                           grad_clip_value=cfg.grad_clip_value,
                           beam_size=cfg.val_beam_size or cfg.beam_size, val_every=cfg.val_every, seed=cfg.seed)
    with atomic_path(run / "model.pt") as tmp:
        torch.save({"model_state_dict": model.state_dict(), "info": {"config": model.config}}, tmp)
    with atomic_path(run / "log.csv") as tmp:
        pd.DataFrame(fit.history).to_csv(tmp, index=False)
    metrics, rows, summary = {}, [], {"best_epoch": fit.best_epoch, "skipped": counts}
    train_texts = [it.report for it in items["train"]]
    for split in ("val", "test"):
        if not items[split]:
            continue
        refs = {it.slide_id: clean_report(it.report) for it in items[split]}
        generated = generate_reports(model, vocab, items[split], beam_size=cfg.beam_size,
                                     length_penalty=cfg.length_penalty)
        baseline = {k: clean_report(v) for k, v in baseline_reports(train_texts, list(refs)).items()}
        for name, texts in ((split, generated), (f"{split}_baseline", baseline)):
            scores = report_generation_metrics(texts, refs, meteor=cfg.meteor, n_resamples=cfg.bootstrap,
                                               seed=cfg.seed)
            metrics[name] = dict(scores.ci)
            clinical = clinical_accuracy(texts, refs)
            for key in ("cancer_type_accuracy", "marker_accuracy"):
                value = getattr(clinical, key)
                if value is not None:
                    metrics[name][key] = {"value": value, "ci_low": float("nan"), "ci_high": float("nan"),
                                          "n": clinical.n}
            summary[name] = {**scores.scores, **clinical.summary(), "notes": scores.notes,
                             "implementation": scores.implementation}
        rows += [{"split": split, "slide": k, "generated": generated[k], "baseline": baseline[k], "reference": v}
                 for k, v in refs.items()]
    write_predictions_csv(run / "predictions.csv", pd.DataFrame(rows))
    summary["seconds"] = round(time.perf_counter() - start, 1)
    write_text_atomic(run / "summary.json", json.dumps(summary, indent=1, default=str))
    write_metrics_json(run / "metrics.json", metrics, meta={"selection": "validation BLEU-4", **summary})
    from mstar.eval.plots import plot_training_curves

    plot_training_curves(pd.DataFrame(fit.history), run / "figures" / "training_curves.png")
    return {"run": str(run), "resumed": False, **summary}


def generate_for_run(run: str | Path, slide_id: str, features: str | Path | None = None,
                     beam_size: int | None = None) -> str:
    """The generated report of one slide with a trained run's model."""
    from mstar.features.io import load_features
    from mstar.models.report import ReportGenerator, Vocabulary
    from mstar.models.report.inference import generate_for_slide
    from mstar.data.feature_dirs import feature_file

    run = Path(run)
    if not (run / "model.pt").exists():
        raise MstarError(f"{run}: no trained report model (model.pt); pass runs/report/<name>")
    cfg = ReportConfig(**yaml.safe_load((run / "config.yaml").read_text()))
    vocab = Vocabulary.load(run / "vocab.json")
    blob = torch.load(run / "model.pt", map_location="cpu", weights_only=False)
    model = ReportGenerator(**blob["info"]["config"])
    model.load_state_dict(blob["model_state_dict"])
    model.eval()
    folder = resolve_feature_dir(features or cfg.features)
    path = feature_file(folder, slide_id)
    bag = {} if path is None else {slide_id: torch.as_tensor(load_features(path)[0]).float()}
    return generate_for_slide(model, vocab, bag, slide_id, beam_size=beam_size or cfg.beam_size,
                              length_penalty=cfg.length_penalty)
