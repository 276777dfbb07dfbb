"""Report-generation metrics through pycocoevalcap (BLEU-1..4, METEOR 1.5, ROUGE-L, CIDEr).

Pre-tokenisation follows HistGen's ``compute_scores``: texts go straight to the scorers, one
generated and one reference string per report, **without** pycocoevalcap's PTBTokenizer (HistGen
scores the strings its own tokenizer decodes: lower case, punctuation removed, sentences joined by
" . "). The only change made here is collapsing whitespace runs (newlines included) to single spaces,
which is the identity on such decoded strings and keeps ROUGE-L (which splits on " ") and the METEOR
jar's line protocol well defined. Clean references the same way as generated texts before scoring.

METEOR needs Java: when ``java`` is not on PATH (or the jar fails to start) METEOR is omitted and the
reason is added to ``notes``; no other METEOR implementation is ever substituted.

Bootstrap CIs (resampling reports) are exact re-evaluations for BLEU (corpus BLEU recomputed from
pycocoevalcap's per-report n-gram statistics), ROUGE-L (a mean of per-report scores) and METEOR (the
jar scores the summed per-report statistics, which is how it aggregates a corpus); CIDEr's interval
keeps the document frequencies of the full reference set (an approximation; the value is exact).
"""

from __future__ import annotations

import shutil
from collections.abc import Hashable, Mapping
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import numpy as np

from mstar.errors import MstarError
from mstar.eval.bootstrap import bootstrap_ci_weighted

BLEU_SMALL, BLEU_TINY = 1e-9, 1e-15  # pycocoevalcap BleuScorer's smoothing constants


def _pkg_version() -> str:
    try:
        return version("pycocoevalcap")
    except PackageNotFoundError:  # pragma: no cover
        return "unknown"


IMPLEMENTATIONS = {
    "bleu": "pycocoevalcap {v} Bleu(4), corpus BLEU, option='closest'",
    "meteor": "METEOR 1.5 (pycocoevalcap {v} meteor-1.5.jar, -l en -norm)",
    "rouge_l": "pycocoevalcap {v} Rouge (ROUGE-L F, beta 1.2), mean over reports",
    "cider": "pycocoevalcap {v} Cider (n 4, sigma 6), IDF from the evaluated references",
}


@dataclass
class ReportScores:
    """Corpus-level report metrics.

    Attributes:
        scores: ``{"bleu_1".."bleu_4", "meteor" (when Java is available), "rouge_l", "cider"}``.
        implementation: Metric family → the exact implementation that produced it.
        notes: Human-readable caveats (e.g. why METEOR is missing).
        ci: ``{metric: {"value","ci_low","ci_high","n"}}`` when a bootstrap was requested.
    """

    scores: dict[str, float]
    implementation: dict[str, str]
    notes: list[str] = field(default_factory=list)
    ci: dict[str, dict[str, Any]] | None = None


def java_available() -> bool:
    """True when a ``java`` executable is on PATH (METEOR 1.5 runs as a jar)."""
    return shutil.which("java") is not None


def _prepare(
    generated: Mapping[Hashable, str], references: Mapping[Hashable, str]
) -> tuple[list[Hashable], dict, dict]:
    missing = set(references) ^ set(generated)
    if missing:
        some = ", ".join(map(str, sorted(missing, key=str)[:5]))
        raise MstarError(f"generated and reference reports must cover the same ids; unmatched: {some}")
    if not generated:
        raise MstarError("no reports to score")
    keys = list(generated)
    gts = {k: [" ".join(str(references[k]).split())] for k in keys}
    res = {k: [" ".join(str(generated[k]).split())] for k in keys}
    return keys, gts, res


def _bleu_statistics(gts: dict, res: dict, keys: list) -> np.ndarray:
    """Per-report ``[testlen, reflen(closest), guess_1..4, correct_1..4]`` from pycocoevalcap's cooking."""
    from pycocoevalcap.bleu.bleu_scorer import BleuScorer

    scorer = BleuScorer(n=4)
    for k in keys:
        scorer += (res[k][0], gts[k])
    rows = []
    for comps in scorer.ctest:
        test_len = comps["testlen"]
        ref_len = min((abs(length - test_len), length) for length in comps["reflen"])[1]
        rows.append([test_len, ref_len, *comps["guess"], *comps["correct"]])
    return np.asarray(rows, dtype=np.float64)  # (N, 10)


def bleu_from_statistics(stats: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Corpus BLEU-1..4 of weighted reports, as pycocoevalcap's ``BleuScorer.compute_score``.

    Args:
        stats: ``(N, 10)`` per-report statistics from the BLEU cooking.
        w: ``(B, N)`` report multiplicities.

    Returns:
        ``(B, 4)`` BLEU-1..4.
    """
    agg = w @ stats  # (B, 10)
    test_len, ref_len, guess, correct = agg[:, 0], agg[:, 1], agg[:, 2:6], agg[:, 6:10]
    precisions = np.cumprod((correct + BLEU_TINY) / (guess + BLEU_SMALL), axis=1)
    bleus = precisions ** (1.0 / np.arange(1, 5))[None, :]
    ratio = (test_len + BLEU_TINY) / (ref_len + BLEU_SMALL)
    penalty = np.where(ratio < 1, np.exp(1 - 1 / ratio), 1.0)
    return bleus * penalty[:, None]


class _MeteorJar:
    """pycocoevalcap's METEOR 1.5 process: per-report statistics and scores of summed statistics."""

    def __init__(self) -> None:
        from pycocoevalcap.meteor.meteor import Meteor

        self.meteor = Meteor()

    def score(self, gts: dict, res: dict) -> float:
        return float(self.meteor.compute_score(gts, res)[0])

    def statistics(self, gts: dict, res: dict, keys: list) -> np.ndarray:
        with self.meteor.lock:
            lines = [self.meteor._stat(res[k][0], gts[k]) for k in keys]
        return np.asarray([[float(x) for x in line.split()] for line in lines])

    def score_statistics(self, summed: np.ndarray) -> float:
        line = " ".join(repr(float(x)) for x in summed)
        with self.meteor.lock:
            self.meteor.meteor_p.stdin.write(f"EVAL ||| {line}\n".encode())
            self.meteor.meteor_p.stdin.flush()
            self.meteor.meteor_p.stdout.readline()  # the segment score
            return float(self.meteor.meteor_p.stdout.readline().strip())  # the aggregate


_JAR: list[_MeteorJar] = []


def _meteor_jar() -> _MeteorJar:
    """The process-wide METEOR jar (starting Java and loading paraphrases takes ~10 s, so it is reused)."""
    if not _JAR or _JAR[0].meteor.meteor_p.poll() is not None:
        _JAR[:] = [_MeteorJar()]
    return _JAR[0]


def report_generation_metrics(
    generated: Mapping[Hashable, str], references: Mapping[Hashable, str], meteor: bool = True,
    n_resamples: int = 0, seed: int = 0, alpha: float = 0.05,
) -> ReportScores:
    """BLEU-1..4, METEOR, ROUGE-L and CIDEr of generated reports against one reference each.

    Args:
        generated: Report id → generated text.
        references: Report id → reference text (same ids).
        meteor: Compute METEOR (skipped with a note when Java is unavailable).
        n_resamples: Bootstrap resamples over reports for CIs (0: no CIs).
        seed: Bootstrap seed.
        alpha: Two-sided level.

    Returns:
        :class:`ReportScores` (corpus values, implementations, notes, and CIs when requested).
    """
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.rouge.rouge import Rouge

    keys, gts, res = _prepare(generated, references)
    v = _pkg_version()
    impl = {k: s.format(v=v) for k, s in IMPLEMENTATIONS.items()}
    notes: list[str] = []
    bleu, _ = Bleu(4).compute_score(gts, res, verbose=0)
    scores = {f"bleu_{i + 1}": float(b) for i, b in enumerate(bleu)}
    jar = None
    if meteor and not java_available():
        notes.append("METEOR omitted: `java` is not on PATH (pycocoevalcap runs meteor-1.5.jar)")
    elif meteor:
        try:
            jar = _meteor_jar()
            scores["meteor"] = jar.score(gts, res)
        except (OSError, ValueError) as err:
            jar = None
            _JAR.clear()
            notes.append(f"METEOR omitted: the METEOR 1.5 jar failed ({err})")
    if "meteor" not in scores:
        impl.pop("meteor")
    rouge, rouge_items = Rouge().compute_score(gts, res)
    cider, cider_items = Cider().compute_score(gts, res)
    scores["rouge_l"], scores["cider"] = float(rouge), float(cider)
    out = ReportScores(scores=scores, implementation=impl, notes=notes)
    if n_resamples > 0:
        out.ci = _bootstrap(gts, res, keys, jar, np.asarray(rouge_items), np.asarray(cider_items),
                            n_resamples, seed, alpha)
        for name, entry in out.ci.items():  # corpus values come from the scorers themselves
            entry["value"] = scores[name]
        notes.append("CIDEr CI keeps the full reference set's document frequencies (approximate)")
    return out


def _bootstrap(gts, res, keys, jar, rouge_items, cider_items, n_resamples, seed, alpha):
    bleu_stats = _bleu_statistics(gts, res, keys)
    meteor_stats = jar.statistics(gts, res, keys) if jar is not None else None

    def stats(w: np.ndarray) -> dict[str, np.ndarray]:
        out = {f"bleu_{i + 1}": col for i, col in enumerate(bleu_from_statistics(bleu_stats, w).T)}
        if meteor_stats is not None:
            out["meteor"] = np.array([jar.score_statistics(row @ meteor_stats) for row in w])
        total = w.sum(axis=1)
        out["rouge_l"] = w @ rouge_items / total
        out["cider"] = w @ cider_items / total
        return out

    return bootstrap_ci_weighted(stats, len(keys), n_resamples, seed, alpha)


def paired_bleu_difference(generated: Mapping[Hashable, str], baseline: Mapping[Hashable, str],
                           references: Mapping[Hashable, str], n_resamples: int = 1000, seed: int = 0,
                           alpha: float = 0.05) -> dict[str, dict[str, Any]]:
    """Corpus BLEU-4 of ``generated`` minus that of ``baseline`` against the same references, with a paired
    percentile bootstrap over reports (both scored on the same resamples, pycocoevalcap's BLEU cooking).

    Returns:
        ``{"bleu4_generated", "bleu4_baseline", "difference"}``, each ``{value, ci_low, ci_high, n}``.
    """
    from mstar.eval.bootstrap import bootstrap_ci_weighted

    keys, gts, res = _prepare(generated, references)
    _, _, base = _prepare(baseline, references)
    stats_g = _bleu_statistics(gts, res, keys)  # (N, 10)
    stats_b = _bleu_statistics(gts, base, keys)  # (N, 10)

    def stats(w: np.ndarray) -> dict[str, np.ndarray]:
        g, b = bleu_from_statistics(stats_g, w)[:, 3], bleu_from_statistics(stats_b, w)[:, 3]
        return {"bleu4_generated": g, "bleu4_baseline": b, "difference": g - b}

    return bootstrap_ci_weighted(stats, len(keys), n_resamples, seed, alpha)
