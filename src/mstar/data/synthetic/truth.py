"""Latent per-case truth of the synthetic cohort: the causes every observed modality is drawn from.

Per case: cancer type, TP53 marker status, a continuous risk (type and marker shift it), histologic
grade and tumour fraction, tumour size, and survival drawn from an exponential model whose hazard grows
with risk, with independent censoring (~40 %).

The risk is ``type offset + 0.6 * TP53 + z`` with ``z ~ N(0, 1)``, and ``z`` is split into two independent
halves, ``z/2 + e`` and ``z/2 - e`` with ``e ~ N(0, 1/4)``: the slides (grade, tumour fraction) follow the
first (``risk_slide``), the RNA proliferation module the second (``risk_rna``). Each modality sees the type
and TP53 but only half of the rest, so a model given both can rank survival better than either alone.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from mstar.data.synthetic.types import CANCER_TYPES, cancer_codes

BASELINE_HAZARD_PER_MONTH = 1 / 72.0  # with the censoring below: ~40 % censored, median ~22 months
RISK_HAZARD_COEF = 1.0
CENSOR_MAX_MONTHS = 110.0
SCANNERS = {"40x": (0.25, (1, 4, 16)), "20x": (0.5, (1, 4))}


@dataclass
class SlideTruth:
    slide_id: str
    scanner: str          # "40x" | "20x"
    mpp: float            # level-0 µm/px
    downsamples: tuple[int, ...]
    seed: int
    has_pen: bool


@dataclass
class CaseTruth:
    case_id: str
    cancer_type: str
    marker: int           # 1 = TP53 mutant
    risk: float
    risk_slide: float     # type offset + 0.6 TP53 + the half of z the slides show
    risk_rna: float       # type offset + 0.6 TP53 + the half of z the RNA shows
    grade: int            # 1..3
    tumour_fraction: float
    size_cm: float
    survival_months: float
    status: int           # 1 = death observed, 0 = censored
    split: str            # train | val | test
    has_report: bool
    has_rna: bool
    slides: list[SlideTruth] = field(default_factory=list)

    def to_json(self) -> dict:
        return asdict(self)


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def _stratified_splits(labels: list[str], rng: np.random.Generator, fractions=(0.6, 0.2, 0.2)) -> list[str]:
    """Assign train/val/test within each label so that every split holds every label when possible."""
    out = [""] * len(labels)
    for label in sorted(set(labels)):
        idx = [i for i, lab in enumerate(labels) if lab == label]
        rng.shuffle(idx)
        n = len(idx)
        n_val = max(1, round(fractions[1] * n)) if n >= 3 else 0
        n_test = max(1, round(fractions[2] * n)) if n >= 3 else 0
        for j, i in enumerate(idx):
            out[i] = "test" if j < n_test else "val" if j < n_test + n_val else "train"
    return out


def draw_cohort_truth(n_cases: int, n_types: int, seed: int, multi_slide_rate: float = 0.1,
                      no_report_rate: float = 0.12, no_rna_rate: float = 0.12) -> list[CaseTruth]:
    """Draw the latent truth of ``n_cases`` cases (deterministic in ``seed``)."""
    rng = np.random.default_rng(seed)
    codes = cancer_codes(n_types)
    types = [codes[i % n_types] for i in range(n_cases)]
    rng.shuffle(types)
    splits = _stratified_splits(types, rng)
    # Stratified uniforms (one per 1/n stratum, shuffled): the same marginals as plain uniforms, but small
    # cohorts land close to the intended censoring rate instead of anywhere between 35 % and 60 %.
    event_u = (rng.permutation(n_cases) + rng.random(n_cases)) / n_cases
    censor_u = (rng.permutation(n_cases) + rng.random(n_cases)) / n_cases
    cases: list[CaseTruth] = []
    slide_seed = np.random.SeedSequence(seed).spawn(1)[0]
    for i, code in enumerate(types):
        marker = int(rng.random() < 0.45)
        shared = CANCER_TYPES[code].hazard_offset + 0.6 * marker
        z = float(rng.normal())
        risk = z + shared
        e = float(np.random.default_rng([seed, 3, i]).normal(0.0, 0.5))  # own stream: other draws unchanged
        risk_slide, risk_rna = shared + z / 2 + e, shared + z / 2 - e
        grade = int(1 + (risk_slide > -0.35) + (risk_slide > 0.75))
        tumour_fraction = float(np.clip(_sigmoid(0.2 + 1.1 * (risk_slide + rng.normal(0, 0.35))), 0.12, 0.88))
        size_cm = float(np.round(1.2 + 2.2 * _sigmoid(risk_slide) + rng.gamma(2.0, 0.25), 1))
        hazard = BASELINE_HAZARD_PER_MONTH * np.exp(RISK_HAZARD_COEF * risk)
        event_time = -np.log1p(-event_u[i]) / hazard
        censor_time = 3.0 + (CENSOR_MAX_MONTHS - 3.0) * censor_u[i]
        status = int(event_time <= censor_time)
        months = float(np.round(max(0.1, min(event_time, censor_time)), 2))
        case_id = f"SYN-{i + 1:04d}"
        n_slides = 2 if rng.random() < multi_slide_rate else 1
        slides = []
        for k in range(n_slides):
            scanner = "40x" if rng.random() < 0.5 else "20x"
            mpp, downs = SCANNERS[scanner]
            if scanner == "20x" and rng.random() < 0.5:
                mpp = 0.499  # real scanners are rarely exactly nominal
            child = slide_seed.spawn(1)[0]
            slides.append(SlideTruth(slide_id=f"{case_id}-DX{k + 1}", scanner=scanner, mpp=mpp,
                                     downsamples=downs, seed=int(child.generate_state(1)[0]),
                                     has_pen=False))
        cases.append(CaseTruth(
            case_id=case_id, cancer_type=code, marker=marker, risk=round(risk, 4),
            risk_slide=round(risk_slide, 4), risk_rna=round(risk_rna, 4), grade=grade,
            tumour_fraction=round(tumour_fraction, 4), size_cm=size_cm, survival_months=months, status=status,
            split=splits[i], has_report=bool(rng.random() >= no_report_rate),
            has_rna=bool(rng.random() >= no_rna_rate), slides=slides))
    # Ink on a third of the slides, and always on the first one so every cohort exercises pen removal.
    all_slides = [s for c in cases for s in c.slides]
    for j, s in enumerate(all_slides):
        s.has_pen = j == 0 or bool(rng.random() < 0.33)
    return cases
