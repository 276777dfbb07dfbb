"""Supporting knowledge per slide: the knowledge file's statements ranked by a stage-1 model.

Each statement is embedded by the stage-1 text encoder (into the space where slides and reports were
aligned). A slide's score for a statement is the mean of two cosine similarities: with the slide's stage-1
embedding, and the mean over the slide's top evidence tiles of each tile's projected feature. The file is read
when `mstar predict` starts, so adding a class or a concept changes the citations without retraining. For a
classification run, statements tagged with other classes than the slide's predicted one are not cited.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from mstar.data.feature_dirs import check_same_encoder
from mstar.data.knowledge import Knowledge, read_knowledge
from mstar.errors import MstarError


@dataclass
class KnowledgeRanker:
    """Statements, their embeddings ``(S, E)`` and the stage-1 model that scores slides against them."""

    knowledge: Knowledge
    model: object
    statement_emb: torch.Tensor
    top: int = 3
    evidence_tiles: int = 8

    @classmethod
    def open(cls, path: str, stage1: str, top: int = 3, identity: dict | None = None) -> KnowledgeRanker:
        """Read ``path`` and embed its statements with the stage-1 checkpoint ``stage1``; refused when
        ``identity`` (the predicting run's features) names another patch encoder than it was pretrained on."""
        from mstar.zeroshot.loading import load_model

        knowledge = read_knowledge(path)
        if not knowledge.statements:
            raise MstarError(f"{path}: no statements to cite (add class descriptions or concepts)")
        model, meta = load_model(stage1, device="cpu")
        check_same_encoder("the run's features", identity or {}, meta.get("features") or {},
                           "pass the stage-1 checkpoint pretrained on the run's patch encoder",
                           f"--stage1 {stage1} was pretrained on")
        with torch.no_grad():
            texts = [s.statement for s in knowledge.statements]
            emb = F.normalize(model.encode_text(texts).float(), dim=-1)  # (S, E)
        return cls(knowledge, model, emb, top)

    @torch.no_grad()
    def scores(self, feats: torch.Tensor, tile_scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Cosine similarity of every statement ``(S,)`` with the slide embedding and with its top evidence
        tiles (mean), for one bag ``feats`` ``(N, D)`` and its per-tile evidence ``(N,)``."""
        from mstar.zeroshot.embed import project_patches

        if feats.shape[1] != self.model.in_dim:
            raise MstarError(f"the stage-1 model takes {self.model.in_dim}-d features, the slide has "
                             f"{feats.shape[1]}-d; use a stage-1 model trained on the run's features")
        x = feats.float()
        slide = F.normalize(self.model.encode_slide(x[None]).float(), dim=-1)[0]  # (E,)
        top = torch.as_tensor(np.argsort(-np.asarray(tile_scores))[: self.evidence_tiles].copy())
        tiles = project_patches(self.model, x[top])  # (k, E)
        return (self.statement_emb @ slide).numpy(), (tiles @ self.statement_emb.T).mean(0).numpy()

    def cite(self, feats: torch.Tensor, tile_scores: np.ndarray, predicted: str | None = None) -> list[dict]:
        """The ``top`` statements for one slide, best first, with their sources and similarities.

        ``predicted``: the slide's predicted class. When the knowledge file knows it, statements about other
        classes only (a concept tagged ``classes: [BRCA]``, another class's description) are not cited:
        the evidence for a LUSC prediction never quotes a breast-cancer statement. Untagged statements are
        always candidates."""
        by_slide, by_tiles = self.scores(feats, tile_scores)
        total = (by_slide + by_tiles) / 2
        statements = self.knowledge.statements
        if predicted is not None and predicted in self.knowledge.classnames:
            total = np.where([not s.classes or predicted in s.classes for s in statements], total, -np.inf)
        out = []
        for i in np.argsort(-total)[: self.top]:
            if not np.isfinite(total[i]):
                break
            s = self.knowledge.statements[i]
            out.append({"concept": s.concept, "statement": s.statement, "source": s.source,
                        "classes": list(s.classes), "score": float(total[i]),
                        "slide_similarity": float(by_slide[i]), "tile_similarity": float(by_tiles[i])})
        return out
