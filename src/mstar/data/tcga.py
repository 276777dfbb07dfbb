"""A stage-1 cohort from the real TCGA tables: the PORPOISE/MCAT omics tables plus the TCGA reports table.

:func:`build_tcga_cohort` writes, into one folder:

- ``manifest.csv``: ``case, slide, label, fold`` for every patient of the omics tables: ``label`` is the TCGA
  cohort (BLCA, BRCA, ... as the table is named), ``slide`` the patient's slide ids (``;``-joined; no slide
  features exist for them, so stage 1 runs on reports and RNA), ``fold`` a patient-level split stratified
  by cohort (``test_fraction`` held out, ``val_fraction`` for choosing settings, the rest ``train``);
- ``rna.csv.gz``: one row per patient, ``case_id`` + ``<GENE>_rnaseq`` columns, the union of the cohorts'
  genes (a gene a cohort lacks is empty); only the ``_rnaseq`` columns: mSTAR's gene modality is RNA-seq,
  CNV and mutations stay in the omics tables for the survival baselines;
- ``cohort.json``: per cohort the patients, those with a report, with RNA, with both, and the split sizes.

The reports table is referenced, not copied: ``mstar pretrain --reports`` prepares it (OCR clean-up).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd

from mstar.data.cohort_tables import WIDE_COLUMNS
from mstar.data.rna import table_columns
from mstar.data.tables import read_csv_table
from mstar.errors import MstarError
from mstar.utils.atomic import atomic_path, write_text_atomic

OMICS_TABLE = ("omics table", "one row per slide: case_id, slide_id, survival_months, censorship, ..., "
                              "<GENE>_rnaseq/_cnv/_mut columns (PORPOISE/MCAT layout)")


def _omics_columns(path: Path) -> list[str]:
    """The columns of a PORPOISE/MCAT omics table, after checking that it is one (case_id and molecular or
    clinical columns): another table named ``tcga_*.csv`` (the reports table) is refused, not read as a
    cohort."""
    header = table_columns(path, what=OMICS_TABLE)
    molecular = [c for c in header if c.endswith(("_rnaseq", "_cnv", "_mut"))]
    clinical = [c for c in WIDE_COLUMNS if c in header and c not in ("case_id", "slide_id")]
    if "case_id" not in header or not (molecular or clinical):  # only case_id + genes are read
        has = ", ".join(map(str, header[:6]))
        raise MstarError(f"{path}: not a PORPOISE/MCAT omics table (needs case_id and <GENE>_rnaseq/_cnv/"
                         f"_mut or {', '.join(WIDE_COLUMNS[2:])} columns; has {has}...); --omics takes the "
                         "folder of tcga_<cohort>.csv.gz tables, e.g. tcga_omics/")
    return header


def _cohort_tables(omics: Path) -> dict[str, Path]:
    tables = {p.name.removeprefix("tcga_").split(".")[0].upper(): p
              for p in sorted(omics.glob("tcga_*.csv*"))}
    if not tables:
        raise MstarError(f"{omics}: no tcga_<cohort>.csv(.gz) tables (the PORPOISE/MCAT omics tables)")
    return tables


def _split(cases: pd.DataFrame, test_fraction: float, val_fraction: float, seed: int) -> pd.Series:
    """train/val/test per patient, stratified by ``label`` (each cohort split in the same proportions)."""
    rng = np.random.default_rng(seed)
    fold = pd.Series("train", index=cases.index, dtype=object)
    for _, idx in cases.groupby("label").groups.items():
        idx = np.array(sorted(idx))
        rng.shuffle(idx)
        n_test, n_val = int(round(test_fraction * len(idx))), int(round(val_fraction * len(idx)))
        fold[idx[:n_test]] = "test"
        fold[idx[n_test:n_test + n_val]] = "val"
    return fold


def build_tcga_cohort(omics: str | os.PathLike, reports: str | os.PathLike | None, out: str | os.PathLike,
                      test_fraction: float = 0.2, val_fraction: float = 0.1, seed: int = 0,
                      projects: list[str] | None = None) -> dict:
    """Write ``manifest.csv``, ``rna.csv.gz`` and ``cohort.json`` (see the module docstring).

    Args:
        omics: Folder of ``tcga_<cohort>.csv.gz`` tables (``case_id``, ``slide_id``, ``<GENE>_rnaseq`` ...).
        reports: The reports table (``case_id`` + text); only its case ids are read here (counts).
        out: Folder to write.
        test_fraction, val_fraction: Held-out and validation shares of each cohort's patients.
        seed: Seed of the split.
        projects: Keep only these cohorts (``BLCA``, ``KIRC`` ...). Every table is still split, so each
            patient's fold is the one the whole cohort gives it (a model pretrained on either split the
            other's test patients never saw).

    Returns:
        The content of ``cohort.json``.
    """
    omics, out = Path(omics), Path(out)
    if not omics.is_dir():
        raise MstarError(f"{omics}: omics folder not found")
    if not (0 < test_fraction < 1 and 0 <= val_fraction < 1 and test_fraction + val_fraction < 1):
        raise MstarError("--test-fraction and --val-fraction must be in [0, 1) and sum below 1")
    tables = _cohort_tables(omics)
    wanted = set(tables) if not projects else {str(p).upper() for p in projects}
    unknown = sorted(wanted - set(tables))
    if unknown:
        raise MstarError(f"--projects {', '.join(unknown)}: no tcga_<cohort> table for them in {omics} (it "
                         f"has {', '.join(tables)})")
    cases, rna = [], []
    for label, path in tables.items():
        header = _omics_columns(path)
        genes = ([c for c in header if c.endswith("_rnaseq")]  # none for UCEC (mutations and CNV only)
                 if label in wanted else [])  # another cohort: only its patients, for the split
        with_slides = "slide_id" in header
        table = read_csv_table(path, *OMICS_TABLE, low_memory=False,
                               usecols=["case_id", *(["slide_id"] if with_slides else []), *genes])
        slides = (table.groupby("case_id", sort=False)["slide_id"]
                  .agg(lambda s: ";".join(str(x).removesuffix(".svs") for x in s)) if with_slides
                  else pd.Series("", index=table["case_id"].unique()))
        cases.append(pd.DataFrame({"case": slides.index, "slide": slides.to_numpy(), "label": label}))
        if genes:  # rows of one patient are identical in these tables: the first is kept
            rna.append(table.drop_duplicates("case_id").set_index("case_id")[genes])
    cases = pd.concat(cases, ignore_index=True)
    dup = cases["case"][cases["case"].duplicated()]
    if len(dup):
        raise MstarError(f"{omics}: patients in two cohorts ({', '.join(dup[:5])}); one cohort per patient")
    cases["slide"] = [s if s else c for s, c in zip(cases["slide"], cases["case"])]
    cases["fold"] = _split(cases, test_fraction, val_fraction, seed)
    cases = cases[cases["label"].isin(wanted)].reset_index(drop=True)
    rna_table = pd.concat(rna, axis=0).copy() if rna else pd.DataFrame(index=pd.Index([], name="case_id"))
    reported: set[str] = set()
    if reports:
        from mstar.data.reports import read_report_rows

        reported = {c for c, t in read_report_rows(reports) if isinstance(c, str) and t.strip()}
        if not reported & set(cases["case"]):
            raise MstarError(f"{reports}: no report case id matches a patient of the omics tables (reports "
                             f"have {', '.join(sorted(reported)[:3])}; omics {', '.join(cases['case'][:3])})")
    with atomic_path(out / "manifest.csv") as tmp:
        cases.to_csv(tmp, index=False)
    with atomic_path(out / "rna.csv.gz") as tmp:
        rna_table.rename_axis("case_id").reset_index().to_csv(tmp, index=False, float_format="%.5g",
                                                               compression="gzip")
    summary: dict = {"omics": str(omics), "reports": str(reports) if reports else None, "seed": seed,
                     "projects": sorted(wanted),
                     "test_fraction": test_fraction, "val_fraction": val_fraction,
                     "genes": int(rna_table.shape[1]), "cohorts": {}}
    has_rna = set(rna_table.index)
    for label, g in cases.groupby("label"):
        ids = set(g["case"])
        summary["cohorts"][label] = {
            "patients": len(ids), "report": len(ids & reported), "rna": len(ids & has_rna),
            "both": len(ids & reported & has_rna),
            **{f: int((g["fold"] == f).sum()) for f in ("train", "val", "test")}}
    summary["patients"] = int(len(cases))
    write_text_atomic(out / "cohort.json", json.dumps(summary, indent=1) + "\n")
    return summary
