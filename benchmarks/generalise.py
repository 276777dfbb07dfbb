"""Does the method hold on data it was not tuned on? Before/after figures of issue 17's six findings.

    python benchmarks/generalise.py --cohort /tmp/indep --kind indep --work /tmp/gen-indep \
        --profile after --seeds 0 1 2

``--kind indep`` reads a cohort of ``benchmarks/indep_cohort.py`` (a generator written apart from
``mstar synth``: thoracic classes, 96-d minority-signal bags, 3,000 genes, reports with numbers and negated
distractors); ``--kind synth`` reads ``mstar synth`` + tile + ``timm:test_vit`` features (the cohort the
settings are chosen on). Profiles: ``before`` = the defaults before issue 17 (Performer gene encoder, [CLS]
read-out of the text encoder, negated clauses kept, no pooled-feature term, upstream few-shot prototypes,
report vocabulary of whole words and 64 tokens per report),
``after`` = the current defaults.
Both use the demo's small stage-1 settings (``mstar.demo.settings.DEMO_STAGE1``), as the issue's cohort did.

Per seed (every figure on the held-out cases, val + test, never trained on; few- and zero-shot on test):

1. stage-1 pretraining; held-out cross-modal Recall@1/5 with bootstrap CI and chance (``mstar pretrain``);
2. gene-embedding class probe vs the raw-expression probe (logistic regression, test balanced accuracy);
3. report-embedding class probe on test reports with vs without a negated distractor;
4. within-class continuous signal: ridge from slide embeddings vs from mean-pooled features → Spearman with
   the planted risk on test cases (bootstrap CI);
5. few-shot k-curve (text prototypes, SimpleShot, linear probe; ``mstar few-shot``) and slide zero-shot;
6. survival from frozen slide embeddings (ridge Cox, C-index) and low-label pretrained vs untrained
   (``epochs 0``) on a target pretraining never saw (risk above the training median, 12 training slides,
   20 draws, paired bootstrap of the AUC difference).

Report generation (BLEU-4 vs the most-common-report baseline, paired CI) runs once per profile with
``--report``. Writes ``<work>/<profile>/results.json``; ``--table`` prints the markdown tables of every
profile found under ``--work``.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

import numpy as np
import pandas as pd

from _cli import run
from generalise_report import report_generation, report_seeds
from generalise_tables import SHOTS, tables
from mstar.errors import MstarError

log = logging.getLogger("generalise")

PROFILES = {
    "before": {"stage1": {"gene_encoder": "performer",
                          "gene_args": {"dim": 32, "depth": 1, "heads": 4, "dim_head": 8},
                          "report_negation": "keep", "text_pooling": "cls", "preserve_weight": 0.0},
               "prototype_rule": "upstream", "report": {"number_tokens": False, "max_len": 64}},
    "after": {"stage1": {}, "prototype_rule": "per_case", "report": {"neighbours": "stage1"}},
}


# ---- cohorts ----
def cohort_paths(root: Path, kind: str) -> dict:
    """Paths and the truth table (``case, slide, label, fold, risk[, has_distractor]``) of a cohort."""
    if kind == "indep":
        truth = pd.read_csv(root / "truth.csv")
        folds = pd.read_csv(root / "manifest.csv").set_index("case")["fold"]
        truth["fold"] = truth["case"].map(folds)
        return {"manifest": root / "manifest.csv", "features": root / "features",
                "reports": root / "reports.json",
                "rna": root / "rna.csv", "prompts": root / "prompts.json", "survival": root / "survival.csv",
                "truth": truth}
    blob = json.loads((root / "cohort" / "truth.json").read_text())
    rows = [{"case": c["case_id"], "slide": c["slides"][0]["slide_id"], "label": c["cancer_type"],
             "fold": c["split"], "risk": c["risk_slide"], "has_distractor": False} for c in blob["cases"]]
    return {"manifest": root / "cohort" / "manifests" / "diagnosis.csv",
            "features": root / "work" / "features" / "timm-test_vit",
            "reports": root / "cohort" / "reports.json",
            "rna": root / "cohort" / "rna" / "expression.csv",
            "prompts": root / "cohort" / "prompts" / "cancer_type.json",
            "survival": root / "cohort" / "manifests" / "survival.csv", "truth": pd.DataFrame(rows)}


# ---- helpers ----
def entry(values: dict) -> dict:
    """A metrics.json entry reduced to value, CI and chance."""
    return {k: values[k] for k in ("value", "ci_low", "ci_high", "chance", "n") if k in values}


def spearman_ci(y: np.ndarray, pred: np.ndarray, n_resamples: int = 1000, seed: int = 0) -> dict:
    """Spearman correlation with a percentile bootstrap CI over cases."""
    from scipy.stats import spearmanr

    from mstar.eval.bootstrap import bootstrap_ci

    return bootstrap_ci(lambda a, b: spearmanr(a, b).statistic, np.asarray(y), np.asarray(pred),
                        n_resamples=n_resamples, seed=seed)


def ridge_predict(train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray) -> np.ndarray:
    """RidgeCV (alphas 1e-3..1e4) on standardised features."""
    from sklearn.linear_model import RidgeCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    model = make_pipeline(StandardScaler(), RidgeCV(alphas=np.logspace(-3, 4, 15)))
    return model.fit(train_x, train_y).predict(test_x)


def class_probe(train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray) -> np.ndarray:
    """Predicted labels of a logistic regression (C by inner CV) on standardised features."""
    from mstar.eval.probes import linear_probe

    probs, classes, _ = linear_probe(train_x, train_y, test_x, c=None, max_iter=3000)
    return classes[probs.argmax(axis=1)]


def paired_auc_difference(y: np.ndarray, a: np.ndarray, b: np.ndarray, n_resamples: int = 1000,
                          seed: int = 0) -> dict:
    """AUC(a) - AUC(b) on the same cases with a paired percentile bootstrap (one-class resamples are
    redrawn: ``roc_auc_score`` raises ``ValueError`` there)."""
    from sklearn.metrics import roc_auc_score

    from mstar.eval.bootstrap import bootstrap_ci

    out = bootstrap_ci(lambda t, p, q: roc_auc_score(t, p) - roc_auc_score(t, q), y, a, b,
                       n_resamples=n_resamples, seed=seed)
    return {**out, "auc_a": float(roc_auc_score(y, a)), "auc_b": float(roc_auc_score(y, b))}


def pooled_features(features: Path, slides: list[str]) -> np.ndarray:
    """``(S, D)`` mean patch feature per slide."""
    from mstar.data.feature_dirs import feature_file, resolve_feature_dir
    from mstar.features.io import load_features

    folder = resolve_feature_dir(features)
    return np.stack([load_features(feature_file(folder, s))[0].astype(np.float64).mean(0) for s in slides])


def read_embeddings(h5: Path) -> pd.DataFrame:
    """One row per slide: slide_id, case, and the slide/report/gene embedding vectors (NaN when absent)."""
    import h5py

    with h5py.File(h5, "r") as f:
        table = pd.DataFrame({"slide_id": f["slide_id"][:].astype(str), "case": f["case_id"][:].astype(str)})
        for key in ("slide", "report", "gene"):
            table[key] = list(f[key][:]) if key in f else [np.full(1, np.nan)] * len(table)
    return table


def stack(col: pd.Series) -> np.ndarray:
    return np.stack(col.to_list()).astype(np.float64)


# ---- one seed ----
def run_seed(paths: dict, work: Path, profile: dict, seed: int, threads: int) -> dict:
    """Pretrain, embed and measure everything of one seed."""
    import torch

    from mstar.demo.settings import DEMO_STAGE1
    from mstar.pretrain.stage1_config import Stage1Config
    from mstar.pretrain.stage1_embed import EmbedConfig, embed_cohort
    from mstar.pretrain.stage1_train import pretrain
    from mstar.zeroshot.config import FewShotConfig, ZeroShotConfig
    from mstar.zeroshot.few_shot import few_shot
    from mstar.zeroshot.zero_shot import zero_shot

    torch.set_num_threads(threads)
    truth = paths["truth"].drop(columns="case").set_index("slide")
    common = dict(manifest=str(paths["manifest"]), features=str(paths["features"]),
                  reports=str(paths["reports"]), rna=str(paths["rna"]), out=str(work), seed=seed,
                  accelerator="cpu", text_cache=str(work / "text-cache"))
    stage1 = {**DEMO_STAGE1, **profile["stage1"]}
    out: dict = {"seed": seed}
    runs = {}
    for arm, epochs in (("pretrained", stage1["epochs"]), ("untrained", 0)):
        cfg = Stage1Config(**common, **{**stage1, "epochs": epochs}, name=f"stage1-{arm}-s{seed}")
        start = time.perf_counter()
        res = pretrain(cfg, progress=False)
        runs[arm] = res
        out.setdefault("seconds", {})[arm] = round(time.perf_counter() - start, 1)
        val = res["metrics"].get("val", {})
        out[f"retrieval_{arm}"] = {k: entry(v) for k, v in val.items()
                                   if k.split("/")[-1] in ("recall@1", "recall@5")}
    emb = {}
    for arm, res in runs.items():
        ecfg = EmbedConfig(stage1=res["checkpoint"], features=str(paths["features"]),
                           manifest=str(paths["manifest"]), reports=str(paths["reports"]),
                           rna=str(paths["rna"]),
                           out=str(work), name=f"embed-{arm}-s{seed}", device="cpu",
                           text_cache=str(work / "text-cache"))
        h5 = embed_cohort(ecfg)["out"]
        emb[arm] = read_embeddings(Path(h5)).set_index("slide_id").join(truth, how="inner")
    e = emb["pretrained"]
    # probes: trained on the stage-1 training cases, scored on the held-out ones (val + test)
    tr, te = e["fold"].eq("train").to_numpy(), e["fold"].isin(["val", "test"]).to_numpy()
    y = e["label"].to_numpy()

    # 2. gene embeddings vs raw expression
    from mstar.data.rna import read_rna_table
    from mstar.eval.probes import balanced_accuracy_ci

    rna = read_rna_table(paths["rna"])
    has_rna = e["case"].isin(rna.index).to_numpy()
    raw = rna.reindex(e["case"]).to_numpy(np.float64)
    raw = np.where(np.isnan(raw), np.nanmean(raw[tr & has_rna], axis=0), raw)
    g_tr, g_te = tr & has_rna, te & has_rna
    out["gene_probe"] = {
        "embedding": balanced_accuracy_ci(y[g_te], class_probe(stack(e["gene"][g_tr]), y[g_tr],
                                                               stack(e["gene"][g_te])), seed=seed),
        "raw_expression": balanced_accuracy_ci(y[g_te], class_probe(raw[g_tr], y[g_tr], raw[g_te]),
                                               seed=seed),
        "chance": 1 / len(np.unique(y))}
    # 3. report embeddings with vs without a negated distractor
    has_rep = np.array([np.isfinite(v).all() for v in e["report"]])
    r_tr = tr & has_rep
    pred = class_probe(stack(e["report"][r_tr]), y[r_tr], stack(e["report"][te & has_rep]))
    dis = e["has_distractor"].fillna(False).astype(bool).to_numpy()[te & has_rep]
    yt = y[te & has_rep]
    out["report_probe"] = {"with_distractor": balanced_accuracy_ci(yt[dis], pred[dis], seed=seed)
                           if dis.sum() >= 5 else None,
                           "without_distractor": balanced_accuracy_ci(yt[~dis], pred[~dis], seed=seed)}
    # 4. within-class continuous signal
    pooled = pooled_features(paths["features"], e.index.tolist())
    risk = e["risk"].to_numpy(np.float64)
    out["risk_probe"] = {
        "slide_embedding": spearman_ci(risk[te], ridge_predict(stack(e["slide"][tr]), risk[tr],
                                                               stack(e["slide"][te])), seed=seed),
        "untrained_embedding": spearman_ci(risk[te], ridge_predict(
            stack(emb["untrained"]["slide"][tr]), risk[tr], stack(emb["untrained"]["slide"][te])), seed=seed),
        "pooled_features": spearman_ci(risk[te], ridge_predict(pooled[tr], risk[tr], pooled[te]), seed=seed),
        "gene_embedding": spearman_ci(risk[g_te], ridge_predict(stack(e["gene"][g_tr]), risk[g_tr],
                                                                stack(e["gene"][g_te])), seed=seed),
        "raw_expression": spearman_ci(risk[g_te], ridge_predict(raw[g_tr], risk[g_tr], raw[g_te]), seed=seed)}
    # 5. few-shot and zero-shot
    fs = few_shot(FewShotConfig(stage1=runs["pretrained"]["checkpoint"], prompts=str(paths["prompts"]),
                                manifest=str(paths["manifest"]), features=str(paths["features"]),
                                shots=list(SHOTS), runs=5, prototype_rule=profile["prototype_rule"],
                                out=str(work), name=f"fewshot-s{seed}", seed=seed), progress=False)
    summary = fs["summary"]
    out["few_shot"] = {f"{r.method}/k{r.k}": {"median": r.median, "q25": r.q25, "q75": r.q75}
                       for r in summary[summary["metric"] == "balanced_accuracy"].itertuples()}
    zs = zero_shot(ZeroShotConfig(stage1=runs["pretrained"]["checkpoint"], prompts=str(paths["prompts"]),
                                  manifest=str(paths["manifest"]), features=str(paths["features"]),
                                  heatmaps=0, out=str(work), name=f"zeroshot-s{seed}", seed=seed),
                   progress=False)
    out["zero_shot"] = {k: entry(v) for k, v in zs["metrics"]["test"].items() if "balanced_accuracy" in k}
    # 6. survival from embeddings and the low-label comparison
    out["survival"] = survival_from_embeddings(paths, emb, pooled, tr, te, seed)
    out["low_label"] = low_label(emb, risk, tr, te, seed)
    return out


def survival_from_embeddings(paths: dict, emb: dict, pooled: np.ndarray, tr: np.ndarray, te: np.ndarray,
                             seed: int) -> dict:
    """C-index on test of a ridge Cox model (sksurv, alpha chosen on train by 5-fold CV) per input."""
    from sklearn.decomposition import PCA
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sksurv.linear_model import CoxPHSurvivalAnalysis

    from mstar.eval.survival import concordance_index_ci

    surv = pd.read_csv(paths["survival"]).set_index("ID")
    e = emb["pretrained"]
    event = surv.loc[e["case"], "Status"].to_numpy().astype(bool)
    time_ = surv.loc[e["case"], "Event"].to_numpy(np.float64)
    ys = np.array(list(zip(event, time_)), dtype=[("event", bool), ("time", float)])
    inputs = {"slide_embedding": stack(e["slide"]), "untrained_embedding": stack(emb["untrained"]["slide"]),
              "pooled_features": pooled}
    out = {}
    for name, x in inputs.items():
        model = make_pipeline(StandardScaler(), PCA(n_components=min(16, x.shape[1]), random_state=seed),
                              CoxPHSurvivalAnalysis(alpha=1.0))
        model.fit(x[tr], ys[tr])
        out[name] = concordance_index_ci(event[te], time_[te], model.predict(x[te]), seed=seed)
    return out


def low_label(emb: dict, risk: np.ndarray, tr: np.ndarray, te: np.ndarray, seed: int, n_train: int = 12,
              draws: int = 20) -> dict:
    """High vs low risk (training median) from frozen slide embeddings with ``n_train`` labelled slides:
    pretrained vs untrained stage-1 model, probabilities averaged over ``draws`` seeded draws."""
    from mstar.eval.probes import linear_probe

    cut = np.median(risk[tr])
    y = (risk > cut).astype(int)
    train_idx = np.flatnonzero(tr)
    probs = {arm: np.zeros(int(te.sum())) for arm in emb}
    for d in range(draws):
        rng = np.random.default_rng([seed, d])
        pick = np.concatenate([rng.choice(train_idx[y[train_idx] == c], n_train // 2, replace=False)
                               for c in (0, 1)])
        for arm, table in emb.items():
            x = stack(table["slide"])
            p, classes, _ = linear_probe(x[pick], y[pick], x[te], scale="unit", c=1.0)
            probs[arm] += p[:, list(classes).index(1)] / draws
    return paired_auc_difference(y[te], probs["pretrained"], probs["untrained"], seed=seed)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cohort", type=Path,
                    help="indep: an indep_cohort.py folder; synth: a folder holding cohort/ and work/")
    ap.add_argument("--kind", choices=("indep", "synth"), default="indep",
                    help="which generator made --cohort")
    ap.add_argument("--work", type=Path, required=True,
                    help="results go to <work>/<profile>/ (seeds found there are reused)")
    ap.add_argument("--profile", choices=tuple(PROFILES), default="after",
                    help="before: the defaults before issue 17; after: the current ones")
    ap.add_argument("--seeds", type=int, nargs="*", default=[0], help="stage-1 seeds (none: report only)")
    ap.add_argument("--report", type=int, nargs="*", default=None, metavar="SEED",
                    help="also train report generation with these seeds (no value: seed 0)")
    ap.add_argument("--threads", type=int, default=2, help="torch threads")
    ap.add_argument("--set", nargs="*", default=[], help="extra stage-1 settings key=value (choosing)")
    ap.add_argument("--report-set", nargs="*", default=[],
                    help="report settings key=value (model_args.<key> for the generator's, e.g. "
                         "model_args.d_model=64)")
    ap.add_argument("--table", action="store_true", help="print the tables of every profile under --work")
    args = ap.parse_args()
    if args.table:
        if not any(args.work.glob("*/results.json")):
            raise MstarError(f"--work {args.work}: no <profile>/results.json to tabulate (run without "
                             "--table first)")
        print(tables(args.work))
        return
    if args.cohort is None:
        ap.error("--cohort is required (except with --table)")
    paths = cohort_paths(args.cohort, args.kind)  # reads the truth table: a wrong --cohort stops here
    for key in ("manifest", "features", "reports", "rna", "prompts", "survival"):
        if not paths[key].exists():
            raise MstarError(f"--cohort {args.cohort} (--kind {args.kind}): no {paths[key]}")
    logging.basicConfig(level=logging.WARNING)
    import yaml

    profile = json.loads(json.dumps(PROFILES[args.profile]))
    for item in [*args.set, *args.report_set]:
        if "=" not in item:
            raise MstarError(f"{item}: expected key=value")
    for item in args.set:
        key, value = item.split("=", 1)
        profile["stage1"][key] = yaml.safe_load(value)
    for item in args.report_set:
        key, value = item.split("=", 1)
        if key.startswith("model_args."):
            profile["report"].setdefault("model_args", {})[key.split(".", 1)[1]] = yaml.safe_load(value)
        else:
            profile["report"][key] = yaml.safe_load(value)
    tag = args.profile + "".join(f"-{s.replace('=', '')}" for s in [*args.set, *args.report_set])
    work = args.work / tag
    work.mkdir(parents=True, exist_ok=True)
    path = work / "results.json"
    results = json.loads(path.read_text()) if path.is_file() else {}
    for seed in args.seeds:
        key = f"seed{seed}"
        if key not in results:
            start = time.perf_counter()
            results[key] = run_seed(paths, work, profile, seed, args.threads)
            results[key]["seconds_total"] = round(time.perf_counter() - start, 1)
            path.write_text(json.dumps(results, indent=1, default=float))
        print(key, json.dumps({k: results[key][k] for k in ("gene_probe", "risk_probe", "low_label")},
                              default=float)[:1500])
    if args.report is not None:
        reports = report_seeds(results)
        for seed in args.report or [0]:
            stored = reports.get(f"seed{seed}")
            # recomputed (from the finished run) when stored with other neighbours or before the <unk> count
            # read the generator's own text
            if stored is None or "unk_fraction_generator" not in stored or stored.get(
                    "neighbours", "pooled") != profile["report"].get("neighbours", "pooled"):
                reports[f"seed{seed}"] = report_generation(paths, work, profile, seed)
                results["report"] = reports
                path.write_text(json.dumps(results, indent=1, default=float))
    print(f"wrote {path}")


if __name__ == "__main__":
    run(main)
