"""The independent thoracic cohort (``benchmarks/indep_cohort.py``): layout, planted signal, determinism."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest
from scipy.stats import spearmanr
from sklearn.linear_model import LogisticRegression, RidgeCV
from sklearn.metrics import balanced_accuracy_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))

from indep_cohort import make_cohort  # noqa: E402

CLASSES = ["LUAD", "SCLC", "MESO", "CARC"]
CASES = 240
# One word that every negated mention of a class names; "non-small cell" is excluded by the negation check.
KEYWORD = {"LUAD": "adenocarcinoma", "SCLC": "small cell", "MESO": "mesothelioma", "CARC": "carcinoid"}
NEGATION = re.compile(r"\b(no|not|negative|excluded)\b", re.IGNORECASE)


@pytest.fixture(scope="module")
def cohort(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("indep") / "cohort"
    make_cohort(out, cases=CASES, seed=0)
    return out


def _pooled(out: Path, slides: pd.Series) -> np.ndarray:
    rows = []
    for slide in slides:
        with h5py.File(out / "features" / f"{slide}.h5", "r") as handle:
            rows.append(handle["features"][:].mean(axis=0))
    return np.stack(rows)


def _split(truth: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Held-out evaluation on the manifest: train fold vs. val + test (about 60/40, stratified)."""
    train = (truth["fold"] == "train").to_numpy()
    return np.flatnonzero(train), np.flatnonzero(~train)


def _scores(x: np.ndarray, labels: np.ndarray, risk: np.ndarray, train: np.ndarray,
            test: np.ndarray) -> tuple[float, float]:
    with threadpool_limits(1):  # tiny problems; BLAS threads only contend on a busy machine
        clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)).fit(x[train], labels[train])
        ridge = make_pipeline(StandardScaler(), RidgeCV(alphas=np.logspace(-2, 5, 15)))
        ridge.fit(x[train], risk[train])
    bacc = balanced_accuracy_score(labels[test], clf.predict(x[test]))
    rho = spearmanr(ridge.predict(x[test]), risk[test]).statistic
    return bacc, rho


def _nodes_positive(text: str) -> int | None:
    """The positive lymph node count a report states, in any of its phrasings."""
    words = ["none", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven",
             "twelve"]
    found = re.search(r"(\d+) of \d+ involved|(\d+)/\d+ (?:lymph|positive)|\((\d+)/\d+\)"
                      r"|(\d+) positive out of|\b([a-z]+) of [a-z]+ regional", text.lower())
    if found is None:
        return None
    value = next(g for g in found.groups() if g is not None)
    return words.index(value) if value in words else int(value)


def test_layout_and_shapes(cohort: Path) -> None:
    names = {"features", "rna.csv", "reports.json", "manifest.csv", "truth.csv", "survival.csv",
             "prompts.json", "cohort.json"}
    assert {p.name for p in cohort.iterdir()} == names
    manifest = pd.read_csv(cohort / "manifest.csv")
    assert list(manifest.columns) == ["case", "slide", "label", "fold"]
    assert len(manifest) == CASES and manifest["case"].is_unique
    assert manifest["case"].iloc[0] == "IND-0001" and manifest["slide"].iloc[0] == "IND-0001-S1"
    assert set(manifest["label"]) == set(CLASSES)
    shares = manifest["fold"].value_counts(normalize=True)
    assert abs(shares["train"] - 0.6) < 0.05 and abs(shares["val"] - 0.2) < 0.05
    for label, group in manifest.groupby("label"):
        assert set(group["fold"]) == {"train", "val", "test"}, label
    slides = sorted(f"{s}.h5" for s in manifest["slide"])
    assert sorted(p.name for p in (cohort / "features").iterdir()) == slides
    for slide in manifest["slide"].iloc[:10]:
        with h5py.File(cohort / "features" / f"{slide}.h5", "r") as handle:
            feats, coords = handle["features"][:], handle["coords"][:]
        assert feats.dtype == np.float32 and coords.dtype == np.int64
        assert feats.shape[1] == 96 and 60 <= len(feats) <= 300 and coords.shape == (len(feats), 2)
        assert (coords % 256 == 0).all() and (coords >= 0).all()
        assert len(np.unique(coords, axis=0)) == len(coords)
        assert np.isfinite(feats).all()

    truth = pd.read_csv(cohort / "truth.csv", keep_default_na=False)
    assert list(truth.columns) == ["case", "slide", "label", "risk", "tumour_cm", "nodes_positive",
                                   "has_report", "has_rna", "has_distractor", "distractor_classes"]
    keys = ["case", "slide", "label"]
    assert (truth[keys].to_numpy() == manifest[keys].to_numpy()).all()
    assert abs(truth["risk"].mean()) < 0.3 and 0.7 < truth["risk"].std() < 1.3
    assert spearmanr(truth["risk"], truth["tumour_cm"]).statistic > 0.6
    assert spearmanr(truth["risk"], truth["nodes_positive"]).statistic > 0.3
    assert (truth["tumour_cm"] == truth["tumour_cm"].round(1)).all()

    rna = pd.read_csv(cohort / "rna.csv")
    assert rna.columns[0] == "gene" and len(rna) == 3000 and rna["gene"].is_unique
    assert list(rna.columns[1:]) == truth.loc[truth["has_rna"] == 1, "case"].tolist()
    assert 0.05 <= 1 - truth["has_rna"].mean() <= 0.11
    values = rna.iloc[:, 1:].to_numpy()
    assert 0.01 < np.isnan(values).mean() < 0.06 and np.nanmin(values) >= 0 and np.nanmax(values) < 20

    survival = pd.read_csv(cohort / "survival.csv")
    assert list(survival.columns) == ["Study", "ID", "Event", "Status", "WSI", "split"]
    assert (survival["Study"] == "IND-" + manifest["label"]).all()
    assert (survival["ID"] == manifest["case"]).all()
    assert (survival["WSI"] == manifest["slide"] + ".pt").all()
    assert (survival["split"] == manifest["fold"].replace({"val": "validation"})).all()
    assert (survival["Event"] > 0).all() and 0.2 <= 1 - survival["Status"].mean() <= 0.4

    prompts = json.loads((cohort / "prompts.json").read_text())
    assert list(prompts) == ["0"] and list(prompts["0"]["classnames"]) == CLASSES
    assert all(len(names) >= 3 for names in prompts["0"]["classnames"].values())
    assert 5 <= len(prompts["0"]["templates"]) <= 8
    assert all("CLASSNAME" in t for t in prompts["0"]["templates"])
    meta = json.loads((cohort / "cohort.json").read_text())
    assert meta["seed"] == 0 and meta["feature_dim"] == 96 and meta["genes"] == 3000
    assert meta["classes"] == manifest["label"].value_counts().to_dict()


def test_class_and_risk_recoverable_from_pooled_features(cohort: Path) -> None:
    truth = pd.read_csv(cohort / "truth.csv").merge(pd.read_csv(cohort / "manifest.csv"))
    x = _pooled(cohort, truth["slide"])
    train, test = _split(truth)
    bacc, rho = _scores(x, truth["label"].to_numpy(), truth["risk"].to_numpy(), train, test)
    assert bacc > 0.7, bacc  # chance is 0.25
    assert rho > 0.6, rho
    # Not trivial: the class sits in a minority of patches, so the pooled classes overlap.
    assert bacc < 0.99, bacc


def test_class_and_risk_recoverable_from_rna(cohort: Path) -> None:
    rna = pd.read_csv(cohort / "rna.csv").set_index("gene").T
    rna = rna.fillna(rna.mean())
    truth = pd.read_csv(cohort / "truth.csv").merge(pd.read_csv(cohort / "manifest.csv")).set_index("case")
    truth = truth.loc[rna.index].reset_index()
    train, test = _split(truth)
    bacc, rho = _scores(rna.to_numpy(), truth["label"].to_numpy(), truth["risk"].to_numpy(), train, test)
    assert bacc > 0.7, bacc  # ~220 informative genes among 3,000
    assert rho > 0.5, rho


def test_reports_missing_numbers_and_negated_distractors(cohort: Path) -> None:
    reports = json.loads((cohort / "reports.json").read_text(encoding="utf-8"))
    truth = pd.read_csv(cohort / "truth.csv", keep_default_na=False).set_index("slide")
    assert set(reports) == set(truth.index[truth["has_report"] == 1])
    assert abs(1 - len(reports) / CASES - 0.10) <= 0.03
    words = [len(text.split()) for text in reports.values()]
    assert 40 <= min(words) and max(words) <= 120

    with_distractor = truth[(truth["has_report"] == 1) & (truth["has_distractor"] == 1)]
    assert 0.3 <= len(with_distractor) / len(reports) <= 0.6
    for slide, row in with_distractor.iterrows():
        others = row["distractor_classes"].split(";")
        assert others and row["label"] not in others
        sentences = re.split(r"(?<=[.)])\s+", reports[slide])
        for other in others:
            assert any(KEYWORD[other] in s.lower() and NEGATION.search(s) for s in sentences), (slide, other)

    # The true class is named by one of its synonyms and the size sentence carries the truth's number.
    synonyms = json.loads((cohort / "prompts.json").read_text())["0"]["classnames"]
    for slide, row in truth[truth["has_report"] == 1].iterrows():
        text = reports[slide].lower()
        assert any(name.lower() in text for name in synonyms[row["label"]]), slide
        cm, mm = f"{row['tumour_cm']:.1f}", f"{round(row['tumour_cm'] * 10)}"
        assert re.search(rf"\b{re.escape(cm)} (cm|x)\b|\b{mm} mm\b", text), slide
        assert _nodes_positive(text) == row["nodes_positive"], slide


def test_same_seed_identical_other_seed_different(tmp_path: Path) -> None:
    kwargs = {"cases": 30, "genes": 200}
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    make_cohort(a, seed=7, **kwargs)
    make_cohort(b, seed=7, **kwargs)
    make_cohort(c, seed=8, **kwargs)
    files = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file())
    for rel in files:
        assert (a / rel).read_bytes() == (b / rel).read_bytes(), rel
    for name in ("rna.csv", "reports.json", "truth.csv", "survival.csv"):
        assert (a / name).read_bytes() != (c / name).read_bytes(), name
    first = Path("features") / "IND-0001-S1.h5"
    with h5py.File(a / first, "r") as ha, h5py.File(c / first, "r") as hc:
        fa, fc = ha["features"][:], hc["features"][:]
    assert fa.shape != fc.shape or not np.array_equal(fa, fc)


def test_cli_refuses_non_empty_folder(tmp_path: Path) -> None:
    out = tmp_path / "cli"
    out.mkdir()
    (out / "keep.txt").write_text("x")
    script = str(BENCHMARKS / "indep_cohort.py")
    refused = subprocess.run([sys.executable, script, str(out), "--cases", "20"], capture_output=True,
                             text=True)
    assert refused.returncode == 2
    assert refused.stderr.strip() == (f"error: OUT {out} exists and is not empty; choose a new folder "
                                      "(or --overwrite)")
    done = subprocess.run([sys.executable, script, str(out), "--cases", "20", "--genes", "50", "--overwrite"],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "20 cases" in done.stdout and (out / "keep.txt").exists()
    assert len(list((out / "features").glob("*.h5"))) == 20
