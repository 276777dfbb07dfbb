"""The HistGen-style report generator: slide encoder + shared cross-modal memory + report decoder."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from mstar.errors import MstarError
from mstar.models.report.decoder import ReportDecoder
from mstar.models.report.decoding import beam_search
from mstar.models.report.encoder import SlideEncoder
from mstar.models.report.memory import CrossModalMemory
from mstar.models.report.vocab import BOS_ID, EOS_ID, PAD_ID

DEFAULTS: dict[str, Any] = {  # HistGen as run by mSTAR (scripts/train_TCGA.sh)
    "in_dim": 1024, "d_vf": 2048, "d_model": 512, "d_ff": 512, "n_heads": 8, "num_layers": 3,
    "encoder_layers": 2, "region_size": 96, "cmm_size": 2048, "cmm_dim": 512, "topk": 512,
    "prototype_num": 512, "dropout": 0.1, "drop_prob_lm": 0.5, "max_len": 100,
}


def left_align(feats: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Move each bag's real patches to the front (stable), padding to the back."""
    order = torch.sort((~mask).to(torch.int8), dim=1, stable=True).indices  # (B, N)
    feats = torch.gather(feats, 1, order[..., None].expand(-1, -1, feats.shape[-1]))  # (B, N, D)
    return feats, torch.gather(mask, 1, order)


class ReportGenerator(nn.Module):
    """Patch features → report tokens (HistGen: wsi_mapping, HAT encoder, CMN memory, 3-layer decoder).

    Args:
        vocab_size: Size of the report vocabulary (specials included).
        **config: Overrides of :data:`DEFAULTS` (``in_dim``, ``d_vf``, ``d_model``, ``d_ff``, ``n_heads``,
            ``num_layers``, ``encoder_layers``, ``region_size``, ``cmm_size``, ``cmm_dim``, ``topk``,
            ``prototype_num``, ``dropout``, ``drop_prob_lm``, ``max_len``).
    """

    def __init__(self, vocab_size: int, **config: Any) -> None:
        super().__init__()
        unknown = set(config) - set(DEFAULTS)
        if unknown:
            raise MstarError(f"unknown report-model option(s): {', '.join(sorted(unknown))}")
        cfg = {**DEFAULTS, **config}
        self.config: dict[str, Any] = {"vocab_size": int(vocab_size), **cfg}
        self.max_len = int(cfg["max_len"])
        self.memory = CrossModalMemory(cfg["d_model"], cfg["n_heads"], cfg["cmm_size"], cfg["cmm_dim"],
                                       cfg["topk"], cfg["dropout"])
        self.encoder = SlideEncoder(cfg["in_dim"], cfg["d_vf"], cfg["d_model"], cfg["n_heads"], cfg["d_ff"],
                                    cfg["region_size"], cfg["encoder_layers"], cfg["prototype_num"],
                                    cfg["dropout"], cfg["drop_prob_lm"])
        self.decoder = ReportDecoder(vocab_size, cfg["d_model"], cfg["n_heads"], cfg["d_ff"],
                                     cfg["num_layers"], cfg["dropout"])
        for module in (self.encoder.att_embed, self.encoder.context, self.encoder.hat, self.decoder):
            for p in module.parameters():  # upstream: xavier_uniform on the Transformer's matrices
                if p.dim() > 1:
                    nn.init.xavier_uniform_(p)

    def encode(self, feats: torch.Tensor,
               mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Region vectors ``(B, R, d)`` and region mask ``(B, R)`` of bags ``(B, N, D)``."""
        if feats.dim() != 3 or feats.shape[-1] != self.config["in_dim"]:
            raise MstarError(f"patch features must be (B, N, {self.config['in_dim']}); "
                             f"got {tuple(feats.shape)}")
        if mask is None:
            mask = torch.ones(feats.shape[:2], dtype=torch.bool, device=feats.device)
        mask = mask.bool()
        if not bool(mask.any(dim=1).all()):
            raise MstarError("a slide has no patch features (empty bag); it cannot get a report")
        feats, mask = left_align(feats, mask)
        return self.encoder(feats, mask, self.memory)

    def forward(self, feats: torch.Tensor, mask: torch.Tensor | None, tokens: torch.Tensor) -> torch.Tensor:
        """Teacher-forced logits.

        Args:
            feats: ``(B, N, D)`` patch features.
            mask: ``(B, N)`` bool, True on real patches (None: all real).
            tokens: ``(B, T)`` decoder input, ``<bos>`` first.

        Returns:
            ``(B, T, V)`` logits of the next token at each position.
        """
        regions, region_mask = self.encode(feats, mask)
        return self.decoder(tokens, regions, region_mask, self.memory)

    @torch.no_grad()
    def generate(self, feats: torch.Tensor, mask: torch.Tensor | None = None, beam_size: int = 3,
                 max_len: int | None = None, block_trigrams: bool = True,
                 length_penalty: float = 0.0) -> list[list[int]]:
        """Reports by beam search (width 1 = greedy), in eval mode (the mode is restored afterwards).

        Args:
            feats: ``(B, N, D)`` patch features.
            mask: ``(B, N)`` bool, True on real patches (None: all real).
            beam_size: Beam width (HistGen: 3).
            max_len: Most tokens per report, ``<eos>`` included (default: the model's ``max_len``).
            block_trigrams: Never repeat a trigram.
            length_penalty: Wu et al.'s alpha for ranking finished reports (0: none, as HistGen's run).

        Returns:
            ``B`` token-id lists (no ``<bos>``/``<eos>``); decode them with the vocabulary.
        """
        was_training = self.training
        self.eval()
        try:
            regions, region_mask = self.encode(feats, mask)

            def step(prefix: torch.Tensor, owner: torch.Tensor) -> torch.Tensor:
                logits = self.decoder(prefix, regions[owner], region_mask[owner], self.memory)  # (M, t, V)
                return F.log_softmax(logits[:, -1].float(), dim=-1)  # (M, V)

            return beam_search(step, feats.shape[0], bos_id=BOS_ID, eos_id=EOS_ID, beam_size=beam_size,
                               max_len=max_len or self.max_len, block_trigrams=block_trigrams,
                               banned=(PAD_ID, BOS_ID), length_penalty=length_penalty, device=feats.device)
        finally:
            self.train(was_training)
