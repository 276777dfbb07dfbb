"""Build the synthetic multimodal cohort on disk (``mstar synth``).

Layout of ``out``::

    slides/<slide_id>.svs          Aperio-style pyramids (40x: 0.25 µm/px, levels 1/4/16;
                                   20x: ~0.5 µm/px, 1/4)
    masks/<slide_id>.png           truth labels at 8 µm/px (0 background, 1 normal, 2 tumour)
    manifests/diagnosis.csv        case,slide,label,fold            (label = cancer type)
    manifests/molecular.csv        case,slide,label,fold            (label = TP53 status)
    manifests/survival.csv         Study,ID,Event,Status,WSI,split  (split: train/validation/test)
    manifests/multimodal_survival.csv  ... plus RNA                 (split: train/val/test)
    reports.json                   {slide_id: report text}          (some slides have none, one is empty)
    rna/expression.csv             genes x cases (log1p TPM-like);  rna/cases/<case>.csv  Gene,Value
    signatures.csv                 MCAT-style 6 gene groups over the synthetic genes
    prompts/cancer_type.json, prompts/marker.json   zero-shot prompts (CONCH / mSTAR schema)
    prompts/knowledge.yaml         an example knowledge file (`mstar predict --knowledge`, docs/predict.md)
    truth.json                     the latent truth of every case and slide
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from mstar.data.synthetic.layout import LABEL_NAMES, MASK_MPP, draw_layout
from mstar.data.synthetic.pyramid import write_svs
from mstar.data.synthetic.render import render_slide
from mstar.data.synthetic.reports import write_report
from mstar.data.synthetic.rna import expression_table, signature_table
from mstar.data.synthetic.truth import CaseTruth, SlideTruth, draw_cohort_truth
from mstar.data.synthetic.types import CANCER_TYPES, MARKER_LABELS
from mstar.utils.atomic import atomic_path, remove_stale_parts, write_text_if_changed
from mstar.utils.pools import process_pool
from mstar.utils.progress import progress_bar

TEMPLATES = ["CLASSNAME.", "a photomicrograph showing CLASSNAME.", "a photomicrograph of CLASSNAME.",
             "an image of CLASSNAME.", "an H&E stained image of CLASSNAME.", "CLASSNAME, H&E stain.",
             "a histopathology slide showing CLASSNAME.", "tissue section of CLASSNAME.",
             "an H&E image of CLASSNAME.", "presence of CLASSNAME."]


@dataclass(frozen=True)
class SynthConfig:
    """What to generate. Everything is a deterministic function of these fields."""

    cases: int = 60
    seed: int = 0
    n_types: int = 3
    slide_um: tuple[float, float] = (1280.0, 1024.0)


def _slide_job(case: CaseTruth, slide: SlideTruth, slide_um, out: str) -> str:
    out_dir = Path(out)
    svs = out_dir / "slides" / f"{slide.slide_id}.svs"
    if svs.exists():
        return slide.slide_id
    rng = np.random.default_rng(slide.seed)
    labels = draw_layout(rng, slide_um, case.tumour_fraction)
    with atomic_path(out_dir / "masks" / f"{slide.slide_id}.png") as tmp:
        cv2.imwrite(str(tmp), labels)
    rgb = render_slide(case, labels, slide.mpp, int(rng.integers(2**31)), slide.has_pen)
    write_svs(svs, rgb, slide.mpp, slide.downsamples,
              extra={"Filename": slide.slide_id, "Date": "01/01/26", "Title": "synthetic"})
    return slide.slide_id


def _csv(path: Path, df: pd.DataFrame) -> None:
    # a resumed cohort keeps its files (and their times) where the content is the same
    write_text_if_changed(path, df.to_csv(index=False, lineterminator="\n"))


def _manifests(cases: list[CaseTruth], out: Path) -> None:
    def slides(c, suffix=""):
        return ";".join(f"{s.slide_id}{suffix}" for s in c.slides)

    rows = [{"case": c.case_id, "slide": slides(c), "label": c.cancer_type, "fold": c.split} for c in cases]
    _csv(out / "manifests" / "diagnosis.csv", pd.DataFrame(rows))
    rows = [{"case": c.case_id, "slide": slides(c), "label": MARKER_LABELS[c.marker], "fold": c.split}
            for c in cases]
    _csv(out / "manifests" / "molecular.csv", pd.DataFrame(rows))
    surv_split = {"train": "train", "val": "validation", "test": "test"}
    rows = [{"Study": f"SYN-{c.cancer_type}", "ID": c.case_id, "Event": c.survival_months, "Status": c.status,
             "WSI": slides(c, ".pt"), "split": surv_split[c.split]} for c in cases]
    _csv(out / "manifests" / "survival.csv", pd.DataFrame(rows))
    rows = [{"Study": f"SYN-{c.cancer_type}", "ID": c.case_id, "Event": c.survival_months, "Status": c.status,
             "WSI": slides(c, ".pt"), "RNA": f"{c.case_id}.csv", "split": c.split}
            for c in cases if c.has_rna]
    _csv(out / "manifests" / "multimodal_survival.csv", pd.DataFrame(rows))


def _prompts(codes: list[str]) -> dict[str, dict]:
    cancer = {"0": {"classnames": {code: list(CANCER_TYPES[code].names) for code in codes},
                    "templates": TEMPLATES}}
    marker = {"0": {"classnames": {"wildtype": ["TP53 wild-type tumor", "p53 wild-type pattern"],
                                   "mutant": ["TP53 mutant tumor", "p53 mutant pattern", "TP53 mutation"]},
                    "templates": TEMPLATES}}
    return {"cancer_type": cancer, "marker": marker}


def _knowledge(codes: list[str]) -> str:
    """An example knowledge file for the cohort's types: each type's names and a description, a concept
    per type tagged with it, and one concept about any slide. The statements describe the synthetic
    morphology; they are an example of the format, not medical guidance."""
    import yaml

    source = "mstar synth (synthetic example)"
    classes, concepts = {}, []
    for code in codes:
        kind = CANCER_TYPES[code]
        classes[code] = {"names": [kind.names[0]], "synonyms": list(kind.names[1:]), "source": source,
                         "description": f"{kind.names[0].capitalize()}, a {kind.organ} tumour."}
        concepts.append({"name": f"{kind.arrangement} pattern", "classes": [code], "source": source,
                         "statement": f"Tumour cells arranged in {kind.arrangement}."})
    concepts.append({"name": "TP53", "statement": "TP53 mutant tumour with an aberrant p53 pattern.",
                     "source": source})
    header = ("# An example knowledge file (docs/predict.md): edit or extend it; `mstar predict "
              "--knowledge`\n# reads it when it starts, so changes need no retraining.\n")
    return header + yaml.safe_dump({"classes": classes, "concepts": concepts}, sort_keys=False, width=100)


def make_cohort(out: str | os.PathLike, config: SynthConfig = SynthConfig(), workers: int = 1,
                show_progress: bool = True) -> dict:
    """Generate the cohort into ``out`` (resumable: finished slides are kept). Returns a short summary."""
    out = Path(out)
    for sub in ("slides", "masks", "manifests", "prompts", "rna/cases"):
        (out / sub).mkdir(parents=True, exist_ok=True)
        remove_stale_parts(out / sub)
    truth_path = out / "truth.json"
    if truth_path.exists():
        previous = json.loads(truth_path.read_text()).get("config")
        if previous and previous != json.loads(json.dumps(asdict(config))):
            from mstar.errors import MstarError

            raise MstarError(f"{out} already holds a cohort made with {previous}; choose another --out "
                             "or delete the folder")
    cases = draw_cohort_truth(config.cases, config.n_types, config.seed)
    codes = sorted({c.cancer_type for c in cases}, key=list(CANCER_TYPES).index)

    jobs = [(c, s) for c in cases for s in c.slides]
    with progress_bar() as bar:
        task = bar.add_task("rendering slides", total=len(jobs), rate="", visible=show_progress)
        if workers > 1:
            with process_pool(workers) as pool:
                for _ in pool.map(_slide_job, *zip(*[(c, s, config.slide_um, str(out)) for c, s in jobs])):
                    bar.advance(task)
        else:
            for c, s in jobs:
                _slide_job(c, s, config.slide_um, str(out))
                bar.advance(task)

    rng = np.random.default_rng(np.random.SeedSequence([config.seed, 1]))
    reports = {}
    for c in cases:
        if c.has_report:
            for s in c.slides:
                reports[s.slide_id] = write_report(c, rng)
    with_report = [s.slide_id for c in cases if c.has_report for s in c.slides]
    if len(with_report) > 4:
        reports[with_report[3]] = ""  # real exports contain empty reports; every loader must cope
    write_text_if_changed(out / "reports.json", json.dumps(reports, indent=1))

    table = expression_table(cases, config.seed + 7)
    _csv(out / "rna" / "expression.csv", table.reset_index())
    for case_id in table.columns:
        _csv(out / "rna" / "cases" / f"{case_id}.csv",
             pd.DataFrame({"Gene": table.index, "Value": table[case_id].to_numpy()}))
    _csv(out / "signatures.csv", signature_table(config.seed + 11))
    _manifests(cases, out)
    for name, prompt in _prompts(codes).items():
        write_text_if_changed(out / "prompts" / f"{name}.json", json.dumps(prompt, indent=1))
    write_text_if_changed(out / "prompts" / "knowledge.yaml", _knowledge(codes))
    truth = {"config": asdict(config), "cancer_types": codes, "marker_labels": list(MARKER_LABELS),
             "mask_mpp": MASK_MPP, "label_names": {str(k): v for k, v in LABEL_NAMES.items()},
             "cases": [c.to_json() for c in cases]}
    write_text_if_changed(truth_path, json.dumps(truth, indent=1))
    n_slides = len(jobs)
    return {"out": str(out), "cases": len(cases), "slides": n_slides,
            "reports": sum(1 for v in reports.values() if v), "rna_cases": table.shape[1],
            "genes": table.shape[0], "censored": float(np.mean([1 - c.status for c in cases])),
            "cancer_types": codes}
