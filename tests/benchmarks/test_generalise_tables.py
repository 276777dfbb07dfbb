"""The before/after tables of benchmarks/generalise.py: seed 0 with its CI, then mean ± sd over seeds."""

from __future__ import annotations

import json
import sys
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))

from generalise import tables  # noqa: E402


def _entry(value, chance=None):
    e = {"value": value, "ci_low": value - 0.1, "ci_high": value + 0.1, "n": 50}
    return {**e, "chance": chance} if chance is not None else e


def _seed(r5, probe, k1, k16):
    return {"retrieval_pretrained": {"slide_to_gene/recall@5": _entry(r5, 0.05)},
            "gene_probe": {"embedding": _entry(probe)},
            "few_shot": {"text_prototypes/k1": {"median": k1}, "text_prototypes/k16": {"median": k16}}}


def test_profiles_become_columns_with_seed_zero_ci_and_the_spread_over_seeds(tmp_path):
    for name, seeds in (("after", [_seed(0.3, 0.9, 0.4, 0.7), _seed(0.2, 0.8, 0.5, 0.6)]),
                        ("before", [_seed(0.06, 0.3, 0.4, 0.3)])):
        (tmp_path / name).mkdir()
        blob = {f"seed{i}": s for i, s in enumerate(seeds)}
        if name == "after":  # report figures as an earlier version wrote them: seed 0's directly
            blob["report"] = {"bleu": {"difference": _entry(0.02)}, "unk_fraction": 0.0,
                              "bleu_pooled": {"difference": _entry(0.01)}, "type_bleu_pooled": 0.6}
        (tmp_path / name / "results.json").write_text(json.dumps(blob))
    md = tables(tmp_path).splitlines()
    assert md[0] == "| measure | before (1 seeds) | after (2 seeds) |"
    row = next(line for line in md if line.startswith("| slide→RNA |"))
    assert row == ("| slide→RNA | 0.060 [-0.04, 0.16] (chance 0.050) | "
                   "0.300 [0.20, 0.40] · 0.250 ± 0.071 (chance 0.050) |")
    probe = next(line for line in md if line.startswith("| gene embedding |"))
    assert probe.endswith("| 0.900 [0.80, 1.00] · 0.850 ± 0.071 |")
    k16 = next(line for line in md if line.startswith("| text_prototypes, k16 |"))
    assert k16 == "| text_prototypes, k16 | 0.300 | 0.650 ± 0.071 |"
    assert "| difference (paired) | – | 0.020 [-0.08, 0.12] |" in md
    assert "| difference, pooled-feature consensus (paired) | – | 0.010 [-0.09, 0.11] |" in md
    assert "| ... pooled-feature consensus | – | 0.600 |" in md
    assert "| risk from slide embedding |" not in md and "| slide embedding | – | – |" in md
