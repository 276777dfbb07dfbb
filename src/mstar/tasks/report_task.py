"""`mstar train report` and `mstar generate`: report generation from slide features (HistGen-style)."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd
import torch

from mstar.data.bags import BagStore
from mstar.data.embeddings import cases_seen, warn_unrecorded
from mstar.data.feature_dirs import resolve_feature_dir
from mstar.data.manifest import read_manifest
from mstar.data.reports import read_reports, report_key
from mstar.errors import MstarError, some
from mstar.eval.results import point_entry, write_metrics_json, write_predictions_csv
from mstar.run.checkpoint import load_checkpoint, save_checkpoint
from mstar.run.fingerprint import environment_rank, file_digest
from mstar.run.folder import open_run
from mstar.tasks.report_config import GenerateConfig, ReportConfig
from mstar.utils.atomic import write_text_atomic

if TYPE_CHECKING:
    from mstar.models.report.vocab import Vocabulary

log = logging.getLogger(__name__)


def _load(cfg: ReportConfig):
    """``(features, split_of, dim, label_of, case_of)`` of the manifest's slides, from one read of it."""
    table = read_manifest(cfg.manifest).table
    if "split" not in table:
        raise MstarError(f"{cfg.manifest}: report generation needs a fixed train/val/test split column")
    slides = [(s, split) for ss, split in zip(table["slides"], table["split"]) for s in ss]
    store = BagStore(resolve_feature_dir(cfg.features), [s for s, _ in slides], [[s] for s, _ in slides],
                     skip_missing=cfg.skip_missing)
    features = {s: store.bag(s) for s in store.cases}
    split_of = {s: split for s, split in slides if s in features}
    label_of = ({s: str(label) for ss, label in zip(table["slides"], table["label"]) for s in ss}
                if "label" in table else {})
    case_of = {s: str(case) for case, ss in zip(table["case"], table["slides"]) for s in ss}
    return features, split_of, store.dim, label_of, case_of


def clinical_truth(references: dict[str, str], labels: dict[str, str]) -> dict[str, object]:
    """The truth of the clinical check per slide: the manifest label as the true class and the TP53 status
    its reference states; the reference text alone (class and status read from it) without labels."""
    from mstar.eval.clinical import extract_marker

    if not labels:
        return dict(references)
    return {k: {"cancer_type": labels.get(k), "marker": extract_marker(v)} for k, v in references.items()}


def model_args_for(cfg: ReportConfig, vocab: Vocabulary, train_items: list) -> dict:
    """``cfg.model_args``, with ``max_len`` (tokens per report, ``<bos>``/``<eos>`` included) set to the
    longest training report when not given: a fixed length cut reports of other cohorts short (their numbers
    spelled by digits are several tokens each), and the brevity penalty of BLEU then punished every one."""
    args = dict(cfg.model_args)
    if "max_len" not in args and train_items:
        args["max_len"] = max(len(vocab.encode(it.report)) for it in train_items)
    return args


def _embeddings(cfg: ReportConfig):
    """The ``mstar embed`` file the neighbours are found in, or None (pooled features)."""
    from mstar.data.embeddings import read_cohort_embeddings

    return read_cohort_embeddings(cfg.neighbour_embeddings) if cfg.neighbour_embeddings else None


def neighbour_bank(train_items: list, embeddings=None):
    """The training reports for the consensus re-ranking, found by pooled features or, given an ``mstar
    embed`` file (:class:`~mstar.data.embeddings.CohortEmbeddings`), by their stage-1 report embeddings."""
    from mstar.models.report.consensus import NeighbourBank
    from mstar.models.report.vocab import clean_report

    texts = [clean_report(it.report) for it in train_items]
    if embeddings is None:
        return NeighbourBank.build([it.features for it in train_items], texts)
    return NeighbourBank.from_embeddings(embeddings, [it.slide_id for it in train_items], texts)


def check_not_pretrained_on(embeddings, heldout: list[str], case_of: dict[str, str]) -> None:
    """Stop when the stage-1 model behind ``embeddings`` was trained on the cases of held-out (val/test)
    slides (``case_of``: the manifest's case of each slide): it saw their reports, so retrieving for them
    would score leaked text. A model whose list is missing or incomplete gets a warning."""
    if embeddings is None:
        return
    seen = embeddings.trained_on(heldout, case_of)
    if seen:
        raise MstarError(f"{embeddings.path}: its stage-1 model was trained on {len(seen)} of this run's "
                         f"val/test slides (e.g. {', '.join(seen[:3])}); pretrain stage 1 on this manifest's "
                         "training split only")
    warn_unrecorded(embeddings.path, embeddings.train_cases, embeddings.train_cases_complete)


def slide_reports(path, reports: dict[str, str], slides: list[str],
                  case_of: dict[str, str]) -> dict[str, str]:
    """Each slide's report: keyed by the slide id, else by its case (one report per case, as TCGA's, serves
    every slide of the case). A file that names none of the slides is one line showing both kinds of id."""
    if not reports:
        raise MstarError(f"{path}: the reports file holds no reports; it should map slide or case ids to "
                         "report texts")
    keys = {s: report_key(s, case_of.get(s, s), reports) for s in slides}
    out = {s: reports[key] for s, key in keys.items() if key is not None}
    if slides and not out:
        cases = ", ".join(case_of.get(s, s) for s in slides[:2])
        raise MstarError(f"{path}: no report for any of the {len(slides)} slides (its ids start "
                         f"{', '.join(list(reports)[:2])}; the manifest's slides {', '.join(slides[:2])}, "
                         f"cases {cases}); key the reports by slide or case id")
    return out


def stage1_init_checkpoint(cfg: ReportConfig, heldout: list[str], case_of: dict[str, str]) -> dict:
    """The ``--stage1`` checkpoint (read before the run folder, so an unreadable one writes nothing) and
    ``{"checkpoint", "saw_heldout"}`` for the run's summary. A model trained on held-out (val/test) cases is
    a warning, not an error: only its patch projection is copied, which saw those slides with their reports
    (mSTAR pretrains on the cohorts it evaluates), so the test figures may be optimistic."""
    from mstar.models.upstream import read_checkpoint

    blob = read_checkpoint(cfg.stage1)
    meta = blob.get("meta") if isinstance(blob, dict) else None
    meta = meta if isinstance(meta, dict) else {}
    cases = meta.get("train_cases")
    seen = cases_seen(cases, {s: [case_of.get(s, s)] for s in heldout})
    if seen:
        log.warning("%s: this stage-1 model was trained on %d of this run's val/test slides (e.g. %s); its "
                    "patch projection initialises the report model, so test figures may be optimistic",
                    cfg.stage1, len(seen), ", ".join(seen[:3]))
    else:
        warn_unrecorded(cfg.stage1, cases, bool(meta.get("train_cases_complete", True)))
    return {"blob": blob, "summary": {"checkpoint": str(cfg.stage1), "saw_heldout": len(seen),
                                      "train_cases_recorded": cases is not None}}


def prepare_neighbours(cfg: ReportConfig, items: dict[str, list], case_of: dict[str, str]):
    """``(bank, {split: {slide: query}})`` for the consensus re-ranking of the val and test items (no
    queries when ``consensus_k`` is 0), after the checks on ``neighbour_embeddings``: the stage-1 model must
    not have seen a held-out case (:func:`check_not_pretrained_on`; ``case_of``: the manifest's), and a file
    embedded from another reports file is flagged."""
    embeddings = _embeddings(cfg)
    if embeddings is not None:
        if embeddings.reports_digest not in ("", file_digest(Path(cfg.reports))):
            log.warning("%s was embedded from another reports file than %s: its report vectors may not be "
                        "of these texts", embeddings.path, cfg.reports)
        check_not_pretrained_on(embeddings, [it.slide_id for sp in ("val", "test") for it in items[sp]],
                                case_of)
    bank = neighbour_bank(items["train"], embeddings)
    queries = {split: bank.queries({it.slide_id: it.features for it in items[split]}, embeddings)
               for split in ("val", "test")} if cfg.consensus_k else {}
    return bank, queries


def train_report(cfg: ReportConfig, overwrite: bool = False, progress: bool = False) -> dict:
    """Train, select by validation BLEU-4, evaluate on test (with the template baseline) and save.

    A finished run with the same settings and inputs is reported (``finished_before``), not retrained.
    """
    from mstar.eval.clinical import clinical_accuracy, load_classes
    from mstar.eval.report_baseline import baseline_reports
    from mstar.eval.text_metrics import report_generation_metrics
    from mstar.models.report import ReportGenerator, Vocabulary
    from mstar.models.report.consensus import rerank_reports
    from mstar.models.report.inference import generate_reports
    from mstar.models.report.vocab import clean_report
    from mstar.tasks.report_train import build_items, fit_report_model

    cfg.validate()
    folder = open_run(cfg, overwrite)
    if folder.finished:
        return {"run": str(folder.path), "finished_before": True,
                **json.loads((folder.path / "summary.json").read_text())}
    start = time.perf_counter()
    torch.manual_seed(cfg.seed)
    reports = read_reports(cfg.reports)
    classes = load_classes(cfg.classes)  # a malformed classes file stops before training
    features, split_of, dim, label_of, case_of = _load(cfg)  # case_of: the manifest's case of each slide
    reports = slide_reports(cfg.reports, reports, list(split_of), case_of)
    items, counts = {}, {}
    for split in ("train", "val", "test"):
        ids = [s for s, sp in split_of.items() if sp == split]
        items[split], counts[split] = build_items(features, reports, ids)
    if not items["train"]:
        train = counts["train"]
        raise MstarError(f"{cfg.reports}: no training slide has a non-empty report ({train['empty_report']} "
                         f"empty, {train['missing_report']} missing); the generator learns from them")
    # before the run folder and the epochs: a stage-1 model that saw held-out cases, or a slide missing
    # from its embeddings file, stops here; so does an unreadable or mismatched --stage1 checkpoint
    bank, queries = prepare_neighbours(cfg, items, case_of)
    vocab = Vocabulary.build([it.report for it in items["train"]], min_freq=cfg.min_freq,
                             numbers=cfg.number_tokens)
    model = ReportGenerator(len(vocab), in_dim=dim, **model_args_for(cfg, vocab, items["train"]))
    stage1_init = None
    if cfg.stage1:
        from mstar.models.report.init import init_from_stage1

        init = stage1_init_checkpoint(cfg, [it.slide_id for sp in ("val", "test") for it in items[sp]],
                                      case_of)
        init_from_stage1(model, init["blob"], name=str(cfg.stage1))
        stage1_init = init["summary"]
    resumable = folder.resumable
    run = folder.start(cfg)
    last = run / "checkpoints" / "last.ckpt"  # the resume point (at most every checkpoint_every_s)
    if environment_rank() == 0:  # under DDP the other ranks train alongside; rank 0 writes
        if not resumable:
            last.unlink(missing_ok=True)
        vocab.save(run / "vocab.json")
    fit = fit_report_model(model, items["train"], items["val"], vocab, epochs=cfg.epochs, lr=cfg.lr,
                           weight_decay=cfg.weight_decay, gamma=cfg.gamma, batch_size=cfg.batch_size,
                           grad_clip_value=cfg.grad_clip_value, beam_size=cfg.val_beam_size or cfg.beam_size,
                           val_every=cfg.val_every, seed=cfg.seed, settings=cfg.training_settings(), run=run,
                           progress=progress,
                           resume_from=last, checkpoint_every_s=cfg.checkpoint_every_s)
    if not fit.is_global_zero:
        return {"run": str(run), "finished_before": False}
    model.cpu()
    from mstar.data.feature_dirs import folder_identity

    identity = folder_identity(resolve_feature_dir(cfg.features))  # what `generate` checks new features by
    save_checkpoint(run / "model.pt", {"model_state_dict": model.state_dict(),
                                       "info": {"config": model.config, "features": identity}})
    metrics, rows, summary = {}, [], {"best_epoch": fit.best_epoch, "world_size": fit.world_size,
                                      "skipped": counts,
                                      "consensus": {"k": cfg.consensus_k, "space": bank.space,
                                                    "source": bank.source}}
    if stage1_init:
        summary["stage1_init"] = stage1_init
    train_texts = [it.report for it in items["train"]]
    bank.save(run / "neighbours.pt")
    for split in ("val", "test"):
        if not items[split]:
            continue
        # references, generated reports and the baseline go through the same normalisation (HistGen's
        # cleaning; generated text is already in that form, numbers rejoined by the vocabulary)
        refs = {it.slide_id: clean_report(it.report) for it in items[split]}
        generated = generate_reports(model, vocab, items[split], beam_size=cfg.beam_size,
                                     length_penalty=cfg.length_penalty)
        generator = {k: clean_report(v) for k, v in generated.items()}
        hyps = rerank_reports(generator, queries.get(split, {}), bank, cfg.consensus_k)
        baseline = {k: clean_report(v) for k, v in baseline_reports(train_texts, list(refs)).items()}
        truth = clinical_truth({it.slide_id: it.report for it in items[split]}, label_of)
        variants = [(split, hyps), (f"{split}_baseline", baseline)]
        if cfg.consensus_k:  # the generator alone, to show what the re-ranking adds
            variants.append((f"{split}_generator", generator))
        for name, texts in variants:
            scores = report_generation_metrics(texts, refs, meteor=cfg.meteor, n_resamples=cfg.bootstrap,
                                               seed=cfg.seed)
            metrics[name] = dict(scores.ci or {  # bootstrap 0: the values without intervals
                k: point_entry(v, len(refs)) for k, v in scores.scores.items()})
            clinical = clinical_accuracy(texts, truth, classes=classes)
            metrics[name].update(clinical.ci(cfg.bootstrap, cfg.seed))
            summary[name] = {**scores.scores, **clinical.summary(), "notes": [*scores.notes, *clinical.notes],
                             "implementation": scores.implementation}
        rows += [{"split": split, "slide": k, "generated": as_decoded(hyps[k], generator[k], generated[k]),
                  "generator": generated[k], "baseline": baseline[k], "reference": v}
                 for k, v in refs.items()]
    write_predictions_csv(run / "predictions.csv", pd.DataFrame(rows))
    summary["seconds"] = round(time.perf_counter() - start, 1)
    write_text_atomic(run / "summary.json", json.dumps(summary, indent=1, default=str))
    write_metrics_json(run / "metrics.json", metrics, meta={"selection": "validation BLEU-4", **summary})
    from mstar.eval.plots import plot_training_curves

    plot_training_curves(pd.DataFrame(fit.history), run / "figures" / "training_curves.png")
    last.unlink(missing_ok=True)  # model.pt holds the chosen epoch; the resume point is no longer needed
    if last.parent.is_dir() and not any(last.parent.iterdir()):
        last.parent.rmdir()  # no empty checkpoints/ left in a finished run
    folder.finish()
    return {"run": str(run), "finished_before": False, **summary}


def as_decoded(picked: str, cleaned: str, decoded: str) -> str:
    """The report to show: the generator's text as decoded (``<unk>`` visible; the cleaning used for scoring
    would turn it into a plain "unk") when the consensus kept it, else the training report it picked."""
    return decoded if picked == cleaned else picked


def load_report_model(run: str | Path):
    """``(model, vocabulary, settings, features identity)`` of a finished report run (the identity of its
    training features: recorded in ``model.pt``, else read from its features folder, else empty)."""
    from mstar.data.feature_dirs import folder_identity
    from mstar.models.report import ReportGenerator, Vocabulary

    run = Path(run)
    if not (run / "model.pt").is_file() or not (run / "config.yaml").is_file():
        raise MstarError(f"{run}: no trained report model (model.pt, config.yaml); pass runs/report/<name>")
    cfg = ReportConfig.load(run / "config.yaml")
    vocab = Vocabulary.load(run / "vocab.json")
    blob = load_checkpoint(run / "model.pt", weights_only=False, what="report model",
                           hint="; train the run again (--overwrite)")
    model = ReportGenerator(**blob["info"]["config"])
    model.load_state_dict(blob["model_state_dict"])
    identity = blob["info"].get("features")
    if identity is None:  # runs from before it was recorded
        try:
            identity = folder_identity(resolve_feature_dir(cfg.features))
        except (MstarError, OSError):
            identity = {}
    return model.eval(), vocab, cfg, identity


def generate_for_slides(run: str | Path, slide_ids: list[str], features: str | Path | None = None,
                        beam_size: int | None = None, embeddings: str | Path | None = None) -> dict[str, str]:
    """The reports of ``slide_ids`` with a trained run's model, re-ranked by its neighbour bank as in its
    evaluation (``consensus_k``; runs from before the bank existed give the generator's reports). A run
    whose neighbours are found by stage-1 embeddings reads the slides' embeddings from ``embeddings``
    (default: the run's ``neighbour_embeddings`` file)."""
    from mstar.data.embeddings import read_cohort_embeddings
    from mstar.data.feature_dirs import check_same_encoder, feature_file, folder_identity
    from mstar.features.io import load_features
    from mstar.models.report.consensus import NeighbourBank, rerank_reports
    from mstar.models.report.inference import generate_for_slide
    from mstar.models.report.vocab import clean_report

    model, vocab, cfg, trained = load_report_model(run)
    folder = resolve_feature_dir(features or cfg.features)
    check_same_encoder(folder, folder_identity(folder), trained,
                       "pass --features made with the encoder the report model was trained on")
    bank_path = Path(run) / "neighbours.pt"
    bank = NeighbourBank.load(bank_path) if cfg.consensus_k and bank_path.is_file() else None
    stage1 = bank is not None and bank.space == "stage1"
    if embeddings and not stage1:
        raise MstarError(f"{run}: this run does not find its neighbours by stage-1 embeddings (consensus_k "
                         f"{cfg.consensus_k}, {bank.space if bank else 'no'} neighbour bank): drop "
                         "--embeddings")
    paths = {s: feature_file(folder, s) for s in slide_ids}  # every slide's features first, then embeddings
    missing = [s for s, path in paths.items() if path is None]
    if missing:
        unknown = some([repr(m) for m in missing], 1)
        raise MstarError(f"unknown slide id {unknown}: no features for it in {folder}; check the "
                         "slide ids, or pass --features with their folder")
    queries = {}
    if stage1:  # every slide's embedding is looked up before any report is generated
        if not embeddings and not Path(bank.source).is_file():
            raise MstarError(f"{bank.source}: the embeddings file this run's neighbours were found in is "
                             "gone; pass --embeddings FILE (`mstar embed` of these slides with the same "
                             "stage-1 model)")
        queries = bank.queries(dict.fromkeys(slide_ids), read_cohort_embeddings(embeddings or bank.source))
    out = {}
    for slide_id in slide_ids:
        bag = {slide_id: torch.as_tensor(load_features(paths[slide_id])[0]).float()}
        if bag[slide_id].shape[-1] != model.config["in_dim"]:
            raise MstarError(f"{paths[slide_id]}: {bag[slide_id].shape[-1]}-d patch features, but this run's "
                             f"model reads {model.config['in_dim']}-d ones ({cfg.features}); pass --features "
                             "made with the same encoder")
        decoded = generate_for_slide(model, vocab, bag, slide_id, beam_size=beam_size or cfg.beam_size,
                                     length_penalty=cfg.length_penalty)
        text = cleaned = clean_report(decoded)
        if bank is not None:
            query = queries if stage1 else bank.queries(bag)
            text = rerank_reports({slide_id: text}, query, bank, cfg.consensus_k)[slide_id]
        out[slide_id] = as_decoded(text, cleaned, decoded)
    return out


def generate_for_run(run: str | Path, slide_id: str, features: str | Path | None = None,
                     beam_size: int | None = None, embeddings: str | Path | None = None) -> str:
    """The report of one slide with a trained run's model (see :func:`generate_for_slides`)."""
    return generate_for_slides(run, [slide_id], features, beam_size, embeddings)[slide_id]


def generate(cfg: GenerateConfig, overwrite: bool = False) -> dict:
    """Generate the reports of ``cfg.slides`` (default: every slide of the features folder) with a trained
    run; write ``generated.csv`` (slide, report) into ``<out>/generate/<name>/``.

    Returns:
        ``{"run", "reports": {slide: text}}``.
    """
    from mstar.data.feature_dirs import feature_slides

    cfg.validate()
    folder = open_run(cfg, overwrite)
    if folder.finished:
        table = pd.read_csv(folder.path / "generated.csv", keep_default_na=False)
        return {"run": str(folder.path), "reports": dict(zip(table["slide"], table["report"])),
                "finished_before": True}
    settings = ReportConfig.load(Path(cfg.run) / "config.yaml")  # the run's (its model is loaded once, below)
    features = resolve_feature_dir(cfg.features or settings.features)
    slides = list(cfg.slides) or feature_slides(features)
    reports = generate_for_slides(cfg.run, slides, features, cfg.beam_size, cfg.embeddings)
    run = folder.start(cfg)
    write_predictions_csv(run / "generated.csv",
                          pd.DataFrame({"slide": list(reports), "report": list(reports.values())}))
    folder.finish()
    return {"run": str(run), "reports": reports}
