"""Gene2Vec text vectors: with/without header, unknown genes, malformed lines."""

from __future__ import annotations

import pytest
import torch

from mstar.data.gene2vec import load_gene2vec
from mstar.errors import MstarError


def test_reads_vectors_in_vocabulary_order_with_or_without_header(tmp_path):
    body = "TP53 0.5 -1.0 2.0\nEGFR 1 2 3\nKRAS 0 0 1\n"
    for text in (body, "3 3\n" + body):
        path = tmp_path / "gene2vec.txt"
        path.write_text(text)
        vectors, found = load_gene2vec(path, ["EGFR", "TP53"])
        torch.testing.assert_close(vectors, torch.tensor([[1.0, 2.0, 3.0], [0.5, -1.0, 2.0]]))
        assert found.tolist() == [True, True]


def test_genes_without_a_vector_get_random_ones_and_a_warning(tmp_path):
    path = tmp_path / "gene2vec.txt"
    path.write_text("A 1 0\nB 3 0\n")
    with pytest.warns(UserWarning, match="1 of 3 vocabulary genes have no vector"):
        vectors, found = load_gene2vec(path, ["A", "NEW", "B"])
    assert found.tolist() == [True, False, True]
    assert vectors[1, 0] != 0 and vectors[1, 1] == 0  # scaled by the file's per-dimension std (0 in dim 1)


@pytest.mark.parametrize("text,message", [
    ("A 1 2\nB 1\n", r":2: expected 2 numbers after the gene, found 1"),
    ("A 1 x\n", r":1: expected 'GENE v1 v2 \.\.\.' with numbers"),
    ("Z 1 2\n", "no gene of the vocabulary has a vector"),
])
def test_malformed_files_are_clear_errors(tmp_path, text, message):
    path = tmp_path / "gene2vec.txt"
    path.write_text(text)
    with pytest.raises(MstarError, match=message):
        load_gene2vec(path, ["A", "B"])
    with pytest.raises(MstarError, match="does not exist"):
        load_gene2vec(tmp_path / "missing.txt", ["A"])
