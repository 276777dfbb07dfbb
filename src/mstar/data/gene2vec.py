"""Gene2Vec-format gene vectors (the frozen gene-identity embeddings of scBERT / mSTAR's gene encoder).

Format: an optional first line ``N DIM``, then one line per gene, ``GENE v1 v2 ... vDIM``, whitespace
separated (word2vec text format). Pass the result to ``GeneEncoder(gene_embeddings=..., dim=DIM,
freeze_gene_embeddings=True)``.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import torch
from torch import Tensor

from mstar.errors import MstarError


def load_gene2vec(path: str | os.PathLike, vocabulary: list[str]) -> tuple[Tensor, Tensor]:
    """Read Gene2Vec-format vectors (optional ``N DIM`` header, then ``GENE v1 .. vDIM`` per line).

    Args:
        path: The text file (whitespace separated).
        vocabulary: Genes to return rows for, in order.

    Returns:
        ``(G, DIM)`` float32 vectors and ``(G,)`` bool ``found``. Genes absent from the file get random
        normal vectors with the file's per-dimension std (seed 0) and a warning counts them; upstream kept
        only genes with a vector, i.e. ``[g for g, f in zip(vocabulary, found) if f]``.
    """
    path = Path(path)
    if not path.is_file():
        raise MstarError(f"Gene2Vec file {path} does not exist")
    index = {g: i for i, g in enumerate(vocabulary)}
    rows: dict[int, list[float]] = {}
    dim = None
    with path.open() as fh:
        for lineno, line in enumerate(fh, 1):
            parts = line.split()
            if not parts or (lineno == 1 and len(parts) == 2 and all(p.isdigit() for p in parts)):
                continue
            try:
                vec = [float(v) for v in parts[1:]]
            except ValueError as err:
                raise MstarError(f"{path}:{lineno}: expected 'GENE v1 v2 ...' with numbers") from err
            if dim is None:
                dim = len(vec)
            if len(vec) != dim or dim == 0:
                raise MstarError(f"{path}:{lineno}: expected {dim or 'some'} numbers after the gene, "
                                 f"found {len(vec)}")
            if parts[0] in index:
                rows[index[parts[0]]] = vec
    if not rows:
        raise MstarError(f"{path}: no gene of the vocabulary has a vector; check the gene symbols")
    found = torch.zeros(len(vocabulary), dtype=torch.bool)
    found[list(rows)] = True
    known = torch.tensor(list(rows.values()), dtype=torch.float32)  # (n_found, DIM)
    std = known.std(dim=0) if len(rows) > 1 else torch.ones(dim)
    out = torch.randn(len(vocabulary), dim, generator=torch.Generator().manual_seed(0)) * std
    out[list(rows)] = known
    if not found.all():
        warnings.warn(f"{path}: {int((~found).sum())} of {len(vocabulary)} vocabulary genes have no vector "
                      "and get random ones; drop them from the vocabulary to follow upstream", stacklevel=2)
    return out, found
