"""Stage 1 on real TCGA data: pathology reports (raw OCR) + RNA-seq of the ten PORPOISE cohorts, no slides.

    python benchmarks/tcga_real.py --data ../shared/data --work /tmp/mstar-tcga-real

Every step is an mstar API call writing a run folder under ``--work`` (a re-run reuses finished runs):

1. ``mstar cohort tcga``: one manifest of 4,612 patients, split 70/10/20 (train/val/test) per project
   (seed 0).
2. ``mstar pretrain`` with the recipe of ``benchmarks/tcga_stage1.yaml`` (chosen on the val split, see
   RESULTS.md), seeds 0, 1, 2, and the same model untrained (``epochs 0``: random gene encoder and
   projections, the packaged MiniLM frozen) as the baseline. The text encoder's [CLS] states are cached.
3. ``mstar retrieve`` on the test patients: report<->RNA R@1/5/10, pan-cancer and within project.
4. ``mstar zero-shot --modality gene|report`` with the packaged ``tcga_cohorts`` prompts.
5. Few-shot: logistic regression on stage-1 RNA embeddings vs on the raw RNA-seq vector, k = 1, 4, 16, 64
   training patients per project, 10 seeded draws, test patients.
6. Survival per cohort on the MCAT folds: SNN on frozen embeddings (RNA, report, both) vs SNN on the raw
   RNA-seq vector, on the patients with both a report and RNA (all patients of the cohort's modality for
   UCEC/SKCM); and with 25 % of each fold's training patients: pretrained vs random gene encoder
   (``mstar compare``, paired CI).
7. Accrual: pretrain on five projects, continue on the other five with a replay share of the first
   (``--continue-from``), against the first run and a joint run: retrieval and zero-shot on old and new
   test patients with paired bootstrap CIs of the change.

``--data`` is the shared data folder (default: ``$MSTAR_SHARED_DATA``, ``<repo>/shared/data`` or
``<repo>/../shared/data``), holding ``tcga_omics/`` and ``tcga_reports/``. Writes ``<work>/results.json`` and
prints the markdown tables (``benchmarks/tcga_real_tables.py``).
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from _cli import run, shared_data
from mstar.data.tcga import build_tcga_cohort
from mstar.eval.bootstrap import bootstrap_ci_weighted
from mstar.eval.probes import balanced_accuracy_ci, paired_change_ci
from mstar.eval.retrieval import relevance_paired, retrieval_per_query
from mstar.pretrain.stage1_config import Stage1Config
from mstar.pretrain.stage1_embed import EmbedConfig, embed_cohort
from mstar.pretrain.stage1_train import pretrain
from mstar.zeroshot.config import RetrievalConfig, ZeroShotConfig
from mstar.zeroshot.retrieve import retrieve
from mstar.zeroshot.zero_shot import zero_shot

HERE = Path(__file__).resolve().parent
OLD = ["BLCA", "BRCA", "COADREAD", "GBMLGG", "HNSC"]  # accrual: first five projects (alphabetical)
NEW = ["KIRC", "LUAD", "LUSC", "SKCM", "UCEC"]
SHOTS = (1, 4, 16, 64)
# Published C-index figures quoted in the issue (MCAT paper genomic SNN; Song et al. 2025 pan-cancer test)
PUBLISHED_SNN = {"BLCA": 0.541, "BRCA": 0.466, "GBMLGG": 0.598, "LUAD": 0.539, "UCEC": 0.493}
SONG_2025 = {"report": 0.694, "rna": 0.750}
log = logging.getLogger("tcga_real")


class Bench:
    """Paths and shared settings of one benchmark run."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.data, self.work, self.args = args.data, args.work, args
        self.reports = str(args.data / "tcga_reports" / "tcga_reports.csv.gz")
        self.omics = args.data / "tcga_omics"
        self.cohort = args.work / "cohort"
        self.manifest = str(self.cohort / "manifest.csv")
        self.rna = str(self.cohort / "rna.csv.gz")
        self.runs = str(args.work / "runs")
        self.cache = str(args.text_cache or args.work / "text_cache")
        self.recipe = yaml.safe_load((HERE / "tcga_stage1.yaml").read_text())
        if args.epochs is not None:  # smoke runs only; the reported tables use the recipe's epochs
            self.recipe["epochs"] = args.epochs
        self.results: dict = {"recipe": self.recipe, "seconds": {}}

    def timed(self, name: str, fn, *a, **kw):
        start = time.perf_counter()
        out = fn(*a, **kw)
        self.results["seconds"][name] = round(time.perf_counter() - start, 1)
        print(f"[{time.strftime('%H:%M:%S')}] {name}: {self.results['seconds'][name]} s", flush=True)
        return out

    def stage1(self, name: str, **kw) -> dict:
        cfg = Stage1Config(**{**self.recipe, "manifest": self.manifest, "reports": self.reports,
                              "rna": self.rna, "text_cache": self.cache, "out": self.runs, "name": name,
                              **kw})
        return self.timed(f"pretrain {name}", pretrain, cfg, progress=False)

    def embed(self, name: str, checkpoint: str) -> Path:
        out = self.work / "embeddings" / f"{name}.h5"
        cfg = EmbedConfig(stage1=checkpoint, manifest=self.manifest, reports=self.reports, rna=self.rna,
                          text_cache=self.cache, out=self.runs, name=name, out_h5=str(out), batch_size=256)
        self.timed(f"embed {name}", embed_cohort, cfg)
        return out


def load_embeddings(path: Path) -> pd.DataFrame:
    """One row per patient: case, label, has_report, has_gene, report (E,), gene (E,)."""
    import h5py

    with h5py.File(path, "r") as f:
        table = pd.DataFrame({"case": f["case_id"].asstr()[:], "label": f["label"].asstr()[:],
                              "has_report": f["has_report"][:], "has_gene": f["has_gene"][:]})
        table["report"], table["gene"] = list(f["report"][:]), list(f["gene"][:])
    return table


def unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


# ---- 3/4: retrieval and zero-shot through the mstar commands ----
def retrieval(b: Bench, name: str, checkpoint: str, manifest: str | None = None) -> dict:
    cfg = RetrievalConfig(stage1=checkpoint, manifest=manifest or b.manifest, reports=b.reports, rna=b.rna,
                          split="test", within_label=True, text_cache=b.cache, out=b.runs, name=name,
                          batch_size=256)
    metrics = b.timed(f"retrieve {name}", retrieve, cfg)["metrics"]["test"]
    return {k: v for k, v in metrics.items() if k.startswith(("report_to_gene", "gene_to_report"))}


def zero_shots(b: Bench, name: str, checkpoint: str, preds: dict | None = None) -> dict:
    """Gene and report zero-shot on the test patients; ``preds`` collects the test prediction tables."""
    out = {}
    for modality, extra in (("gene", {"rna": b.rna}), ("report", {"reports": b.reports})):
        cfg = ZeroShotConfig(stage1=checkpoint, prompts="tcga_cohorts", manifest=b.manifest,
                             modality=modality, text_cache=b.cache, out=b.runs, name=f"{name}-{modality}",
                             **extra)
        result = b.timed(f"zero-shot {name} {modality}", zero_shot, cfg, progress=False)
        test = result["metrics"]["test"]
        pred = pd.read_csv(Path(result["run"]) / "predictions.csv")
        pred = pred[pred["split"] == "test"]
        if preds is not None:
            preds[modality] = pred
        per_class = {c: float((g[f"{modality}_predicted"] == c).mean()) for c, g in pred.groupby("label")}
        out[modality] = {"balanced_accuracy": test[f"{modality}/balanced_accuracy"],
                         "auc_macro": test.get(f"{modality}/auc_macro"), "recall_per_class": per_class,
                         "n_classes_present": int(pred["label"].nunique()),
                         "predicted_skcm": int((pred[f"{modality}_predicted"] == "SKCM").sum())}
    return out


# ---- 5: few-shot linear probe ----
def few_shot(b: Bench, emb_paths: dict[str, Path]) -> dict:
    """Balanced accuracy (test) of a logistic regression on k training patients per project."""
    from mstar.eval.probes import linear_probe
    from mstar.zeroshot.few_shot import draw_support

    manifest = pd.read_csv(b.manifest).set_index("case")
    raw = pd.read_csv(b.rna).set_index("case_id")
    raw = raw.loc[raw.index.intersection(manifest.index)]
    cases = list(raw.index)
    split = manifest.loc[cases, "fold"].to_numpy()
    classes = sorted(manifest.loc[cases, "label"].unique())
    y = manifest.loc[cases, "label"].map({c: i for i, c in enumerate(classes)}).to_numpy()
    features = {"raw RNA-seq": raw.fillna(0.0).to_numpy(np.float32)}  # z-scores; an absent gene -> 0
    for name, path in emb_paths.items():
        e = load_embeddings(path).set_index("case")
        features[name] = unit(np.stack(e.loc[cases, "gene"].to_numpy()))
    train, test = np.flatnonzero(split == "train"), np.flatnonzero(split == "test")
    onehot = np.stack([y[test] == c for c in range(len(classes))], axis=1).astype(float)  # (T, C)
    out: dict = {"classes": classes, "n_test": int(len(test)), "chance": 1 / len(classes)}
    for name, x in features.items():
        for k in SHOTS:
            hits = []
            for r in range(b.args.draws):
                support = train[draw_support(y[train], k, len(classes), np.random.default_rng([7, k, r]))]
                probs, cls, _ = linear_probe(x[support], y[support], x[test], seed=r)
                hits.append(onehot * (cls[probs.argmax(axis=1)] == y[test])[:, None])
            hits = np.stack(hits)  # (R, T, C)

            def stats(w: np.ndarray, hits=hits) -> dict[str, np.ndarray]:
                recall = np.einsum("bt,rtc->brc", w, hits) / (w @ onehot)[:, None, :]  # (B, R, C)
                return {"bacc": np.nanmean(recall, axis=2).mean(axis=1)}

            entry = bootstrap_ci_weighted(stats, len(test), 1000, 0)["bacc"]
            out.setdefault(name, {})[k] = {**entry, "draws": b.args.draws}
        shown = ", ".join(f"k={k} {out[name][k]['value']:.3f}" for k in SHOTS)
        print(f"few-shot {name}: {shown}", flush=True)
    return out


# ---- 6: survival on the MCAT folds ----
def _table(path: Path, frame: pd.DataFrame) -> str:
    """Write a features x patients table (the genes_x_cases layout ``--rna`` reads)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.T.rename_axis("gene").reset_index().to_csv(path, index=False, float_format="%.6g")
    return str(path)


def survival(b: Bench, emb: Path, emb_random: Path, tag: str) -> dict:
    """Per cohort: SNN on raw RNA-seq (independent of ``tag``) and on the embeddings of one stage-1 model;
    25 % of the training patients: that model's RNA embeddings vs an untrained model's (``emb_random``)."""
    from mstar.eval.compare import compare_runs
    from mstar.tasks.multimodal import train_multimodal
    from mstar.tasks.multimodal_config import MultimodalConfig

    e = load_embeddings(emb).set_index("case")
    er = load_embeddings(emb_random).set_index("case")
    snn = dict(model="snn", epochs=20, lr=2e-4, batch_size=32, patience=20, bootstrap=1000,
               out=b.runs, omics="full")
    out: dict = {}
    for path in sorted(b.omics.glob("tcga_*.csv.gz")):
        cohort = path.name[5:-7].upper()
        if b.args.survival_cohorts and cohort not in b.args.survival_cohorts:
            continue
        table = pd.read_csv(path, low_memory=False).drop_duplicates("case_id").set_index("case_id")
        has_rna = any(c.endswith("_rnaseq") for c in table.columns)
        here = e.loc[e.index.intersection(table.index)]
        # patients with both modalities (SKCM: RNA only, almost no reports; UCEC: reports only, no RNA)
        keep = [c for c in here.index if (cohort == "SKCM" or here.loc[c, "has_report"])
                and (not has_rna or here.loc[c, "has_gene"])]
        folder = b.work / "survival" / tag / cohort.lower()
        manifest = folder / "manifest.csv"
        folder.mkdir(parents=True, exist_ok=True)
        pd.read_csv(path, low_memory=False).query("case_id in @keep").to_csv(manifest, index=False)
        inputs = {}
        if has_rna:
            inputs["raw RNA-seq"] = dict(rna=str(path), modalities=["rnaseq"])
            inputs["RNA emb"] = dict(rna=_table(folder / "gene.csv", _matrix(here.loc[keep], "gene")))
        if cohort != "SKCM":
            inputs["report emb"] = dict(rna=_table(folder / "report.csv", _matrix(here.loc[keep], "report")))
        if has_rna and cohort != "SKCM":
            both = pd.concat([_matrix(here.loc[keep], "gene"), _matrix(here.loc[keep], "report")], axis=1)
            inputs["RNA+report emb"] = dict(rna=_table(folder / "both.csv", both))
        folds = str(b.omics / "splits" / cohort.lower())
        res: dict = {"patients": len(keep)}
        for name, extra in inputs.items():
            run_name = f"surv-{cohort}-{name}" + ("" if name == "raw RNA-seq" else f"-{tag}")
            cfg = MultimodalConfig(manifest=str(manifest), folds=folds, name=run_name, **snn, **extra)
            r = b.timed(f"survival {cohort} {name}", train_multimodal, cfg, overwrite=False, progress=False)
            res[name] = _c_index(r)
        if has_rna:  # low-label: 25 % of each fold's training patients, pretrained vs random gene encoder
            rand = _table(folder / "gene_random.csv", _matrix(er.loc[keep], "gene"))
            runs = {}
            for kind, rna in (("pretrained", inputs["RNA emb"]["rna"]), ("random", rand)):
                cfg = MultimodalConfig(manifest=str(manifest), folds=folds, rna=rna, train_fraction=0.25,
                                       name=f"surv25-{cohort}-{kind}-{tag}", **snn)
                runs[kind] = b.timed(f"survival25 {cohort} {kind} {tag}", train_multimodal, cfg,
                                     progress=False)
            diff = compare_runs(runs["pretrained"]["run"], runs["random"]["run"], "test")
            res["low_label"] = {"pretrained": _c_index(runs["pretrained"]),
                                "random": _c_index(runs["random"]),
                                "difference": diff["metrics"]["c_index"]["difference"]}
        out[cohort] = res
        print(f"survival {cohort} ({tag}): " + ", ".join(f"{k} {v['mean']:.3f}" for k, v in res.items()
                                                 if isinstance(v, dict) and "mean" in v), flush=True)
    return out


def _matrix(rows: pd.DataFrame, column: str) -> pd.DataFrame:
    x = np.stack(rows[column].to_numpy())  # (P, E)
    return pd.DataFrame(x, index=rows.index, columns=[f"{column[0]}{i:03d}" for i in range(x.shape[1])])


def _c_index(result: dict) -> dict:
    c = result["metrics"]["test"]["c_index"]
    per = c.get("per_unit", [c["value"]])
    return {"mean": float(np.mean(per)), "sd": float(np.std(per, ddof=1)) if len(per) > 1 else 0.0,
            "per_fold": [float(v) for v in per], "ci": [c["ci_low"], c["ci_high"]], "n": c["n"]}


# ---- 7: accrual ----
def accrual(b: Bench, joint_ckpt: str, seed: int) -> dict:
    """First (old five), continued (+ new five, replay), joint (all ten): old and new test patients."""
    first = b.stage1(f"accrual-first-seed{seed}", labels=OLD, seed=seed)
    cont = b.stage1(f"accrual-continued-seed{seed}", labels=NEW, continue_from=first["run"],
                    replay_fraction=b.args.replay, seed=seed)
    models = {"first": first["checkpoint"], "continued": cont["checkpoint"], "joint": joint_ckpt}
    emb = {m: load_embeddings(b.embed(f"accrual-{m}-seed{seed}", ck)) for m, ck in models.items()}
    preds: dict[str, dict] = {m: {} for m in models}
    for m, ck in models.items():
        zero_shots(b, f"accrual-{m}-seed{seed}", ck, preds[m])
    manifest = pd.read_csv(b.manifest).set_index("case")
    out: dict = {"replay_fraction": b.args.replay, "old": OLD, "new": NEW,
                 "replayed_cases": cont["meta"]["counts"].get("replayed_cases")}
    for group, labels in (("old", OLD), ("new", NEW)):
        per_model = {}
        for m, table in emb.items():
            t = table.set_index("case").loc[lambda d, labels=labels: d.index.isin(
                manifest.index[(manifest["fold"] == "test") & manifest["label"].isin(labels)])]
            both = t[t["has_report"] & t["has_gene"]]
            sim = unit(np.stack(both["report"].to_numpy())) @ unit(np.stack(both["gene"].to_numpy())).T
            per_model[m] = retrieval_per_query(sim, relevance_paired(len(both)), ks=(1, 5, 10))["recall@5"]
        out[group] = {"report_to_gene_r5": _paired(per_model), "n": int(len(per_model["first"])),
                      "chance": 5 / max(len(per_model["first"]), 1)}
        for modality in ("gene", "report"):
            tables = {m: p[modality][p[modality]["label"].isin(labels)].set_index("case") for m, p in
                      preds.items()}
            common = sorted(set.intersection(*(set(t.index) for t in tables.values())))
            if not common:
                continue
            y = tables["first"].loc[common, "label"].to_numpy()
            pred = {m: t.loc[common, f"{modality}_predicted"].to_numpy() for m, t in tables.items()}
            out[group][f"zero_shot_{modality}"] = {
                "n": len(common), "chance": 1 / 10,
                "first": balanced_accuracy_ci(y, pred["first"]), "continued": balanced_accuracy_ci(
                    y, pred["continued"]), "joint": balanced_accuracy_ci(y, pred["joint"]),
                "continued-first": paired_change_ci(y, pred["first"], pred["continued"]),
                "continued-joint": paired_change_ci(y, pred["joint"], pred["continued"])}
    return out


def _paired(per_query: dict[str, np.ndarray]) -> dict:
    """Means and paired bootstrap CIs of continued - first and continued - joint (same queries)."""
    values = {m: v.astype(float) for m, v in per_query.items()}
    n = len(values["first"])

    def stats(w: np.ndarray) -> dict[str, np.ndarray]:
        mean = {m: (w @ v) / w.sum(axis=1) for m, v in values.items()}
        return {**mean, "continued-first": mean["continued"] - mean["first"],
                "continued-joint": mean["continued"] - mean["joint"]}

    return bootstrap_ci_weighted(stats, n, 1000, 0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=None, help="the shared data folder (default: see above)")
    ap.add_argument("--work", type=Path, default=Path("/tmp/mstar-tcga-real"))
    ap.add_argument("--seeds", type=int, nargs="*", default=[0, 1, 2])
    ap.add_argument("--draws", type=int, default=10, help="few-shot support draws per k")
    ap.add_argument("--replay", type=float, default=0.2, help="accrual: replay share of the first run")
    ap.add_argument("--skip", nargs="*", default=[], choices=["fewshot", "survival", "accrual"])
    ap.add_argument("--survival-cohorts", nargs="*", default=None, help="default: all ten (e.g. BLCA UCEC)")
    ap.add_argument("--text-cache", type=Path, default=None, help="default: <work>/text_cache")
    ap.add_argument("--epochs", type=int, default=None, help="override the recipe's epochs (smoke runs)")
    args = ap.parse_args()
    for part in ("tcga_omics", "tcga_reports/tcga_reports.csv.gz"):  # both, before anything is written
        found = shared_data(part) if args.data is None else shared_data(explicit=args.data / part)
    args.data = found.parents[1]
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    b = Bench(args)
    b.results["cohort"] = b.timed("cohort", build_tcga_cohort, b.omics, b.reports, b.cohort, seed=0)
    models = {f"seed{s}": b.stage1(f"tcga-seed{s}", seed=s) for s in args.seeds}
    models["random"] = b.stage1("tcga-random", epochs=0)
    randoms = {s: models["random"] if s == 0 else b.stage1(f"tcga-random{s}", epochs=0, seed=s)
               for s in args.seeds}  # untrained models of the other seeds: the low-label baselines
    b.results["val"] = {m: {k: v for k, v in r["metrics"].get("val", {}).items() if "gene" in k}
                        for m, r in models.items()}
    for m, r in models.items():
        b.results.setdefault("retrieval", {})[m] = retrieval(b, f"test-{m}", r["checkpoint"])
        b.results.setdefault("zero_shot", {})[m] = zero_shots(b, m, r["checkpoint"])
    emb = {m: b.embed(m, r["checkpoint"]) for m, r in models.items()}
    if "fewshot" not in args.skip:
        b.results["few_shot"] = b.timed("few-shot", few_shot, b, {m: p for m, p in emb.items()})
    if "survival" not in args.skip:
        b.results["survival"] = {
            f"seed{s}": survival(b, emb[f"seed{s}"], emb["random"] if s == 0 else
                                 b.embed(f"random{s}", randoms[s]["checkpoint"]), f"seed{s}")
            for s in args.seeds}
    if "accrual" not in args.skip:
        b.results["accrual"] = {f"seed{s}": accrual(b, models[f"seed{s}"]["checkpoint"], s)
                                for s in args.seeds}
    args.work.mkdir(parents=True, exist_ok=True)
    (args.work / "results.json").write_text(json.dumps(b.results, indent=1, default=str))
    from tcga_real_tables import markdown

    print(markdown(b.results))


if __name__ == "__main__":
    run(main)
