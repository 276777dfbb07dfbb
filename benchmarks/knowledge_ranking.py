"""Does the knowledge ranking of `mstar predict` mean something? On a `mstar synth` cohort, statements that
describe a slide's planted attributes (cancer type, grade, TP53 status) should rank above the other
statements of the same family.

For every test slide, each family's statements (3 types, 3 grades, 2 TP53 states) are scored with a stage-1
model as `mstar predict --knowledge` scores them (the mean of the cosine with the slide embedding and the
mean cosine of the top evidence tiles; with no trained run here the evidence is uniform, so the "top" tiles
are the bag's first 8). Reports the fraction of slides whose own statement ranks first in each family, with
a 95 % bootstrap CI, against chance (1 / family size).

    python benchmarks/knowledge_ranking.py --cohort demo_out/cohort \\
        --features demo_out/work/features/timm-test_vit \\
        --stage1 demo_out/runs/pretrain/demo-stage1/checkpoints/stage1.pt
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np
import torch
import yaml

from _cli import run
from mstar.errors import MstarError

FAMILIES = {
    "cancer type": {
        "BRCA": "Invasive ductal carcinoma of the breast, a lumpectomy or mastectomy specimen.",
        "LUSC": "Keratinizing squamous cell carcinoma of the lung, resected by lobectomy.",
        "KIRC": "Clear cell renal cell carcinoma of the kidney, a nephrectomy specimen.",
    },
    "grade": {
        1: "Well differentiated carcinoma, grade 1.",
        2: "Moderately differentiated carcinoma, grade 2.",
        3: "Poorly differentiated carcinoma, grade 3.",
    },
    "TP53": {
        1: "TP53 immunohistochemistry shows aberrant, mutant-pattern staining.",
        0: "p53 immunostain: wild-type pattern.",
    },
}


def knowledge_yaml() -> dict:
    """A knowledge file whose concepts are the statements of every family."""
    classes = {"BRCA": {"names": ["invasive ductal carcinoma"]},
               "LUSC": {"names": ["squamous cell carcinoma"]},
               "KIRC": {"names": ["clear cell renal cell carcinoma"]}}
    concepts = [{"name": f"{family}: {key}", "statement": text, "source": "benchmark"}
                for family, items in FAMILIES.items() for key, text in items.items()]
    return {"classes": classes, "concepts": concepts}


def main() -> None:
    from mstar.eval.bootstrap import bootstrap_ci
    from mstar.features.io import load_features
    from mstar.predict.knowledge import KnowledgeRanker

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cohort", type=Path, required=True, help="a `mstar synth --out` folder (truth.json)")
    ap.add_argument("--features", type=Path, required=True, help="the cohort's features/<enc>/ folder")
    ap.add_argument("--stage1", type=Path, required=True, help="a stage-1 checkpoint (stage1.pt)")
    ap.add_argument("--split", default="test", help="the cases scored (train, val or test)")
    ap.add_argument("--json", type=Path, help="also write the figures here")
    args = ap.parse_args()
    if not (args.cohort / "truth.json").is_file():
        raise MstarError(f"--cohort {args.cohort}: no truth.json (want a `mstar synth` folder)")
    if not args.stage1.is_file():
        raise MstarError(f"--stage1 {args.stage1}: no such file")
    torch.set_num_threads(2)
    truth = json.loads((args.cohort / "truth.json").read_text())["cases"]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "knowledge.yaml"
        path.write_text(yaml.safe_dump(knowledge_yaml()))
        ranker = KnowledgeRanker.open(str(path), str(args.stage1), top=1)
    names = [s.concept for s in ranker.knowledge.statements]
    hits: dict[str, list[float]] = {f: [] for f in FAMILIES}
    for case in truth:
        if case["split"] != args.split:
            continue
        own = {"cancer type": case["cancer_type"], "grade": case["grade"], "TP53": case["marker"]}
        for slide in case["slides"]:
            file = args.features / f"{slide['slide_id']}.h5"
            if not file.is_file():
                continue
            feats, _, _ = load_features(file)
            x = torch.as_tensor(np.asarray(feats, np.float32))
            by_slide, by_tiles = ranker.scores(x, np.ones(len(x)))
            total = (by_slide + by_tiles) / 2
            for family, items in FAMILIES.items():
                idx = [names.index(f"{family}: {k}") for k in items]
                best = list(items)[int(np.argmax(total[idx]))]
                hits[family].append(float(best == own[family]))
    if not hits["grade"]:
        raise MstarError(f"no {args.split} slide has a features file in {args.features}")
    out = {}
    for family, h in hits.items():
        ci = bootstrap_ci(np.mean, np.array(h), n_resamples=2000, seed=0)
        out[family] = {**ci, "chance": 1 / len(FAMILIES[family])}
        print(f"{family:12s} own statement first: {ci['value']:.3f} [{ci['ci_low']:.3f}, "
              f"{ci['ci_high']:.3f}] (n={ci['n']}, chance {1 / len(FAMILIES[family]):.3f})")
    if args.json:
        args.json.write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    run(main)
