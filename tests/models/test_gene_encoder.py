"""Gene encoders: binning, masking, exact checkpoint reload, and learning cancer type from synthetic RNA."""

from __future__ import annotations

import pytest
import torch

from mstar.data.rna import match_genes
from mstar.data.synthetic.rna import expression_table
from mstar.data.synthetic.truth import draw_cohort_truth
from mstar.errors import MstarError
from mstar.models.gene_encoder import GeneEncoder, SNNGeneEncoder

SMALL = dict(proj_dim=16, dim=32, heads=2, dim_head=16, nb_features=32)


@pytest.fixture(scope="module")
def cohort():
    """~260 synthetic cases with RNA (3 cancer types): values, mask and type labels, case order."""
    cases = draw_cohort_truth(300, 3, seed=0)
    table = expression_table(cases, seed=0).T
    m = match_genes(table, list(table.columns))
    types = sorted({c.cancer_type for c in cases})
    label = {c.case_id: types.index(c.cancer_type) for c in cases}
    return torch.tensor(m.values), torch.tensor(m.mask), torch.tensor([label[c] for c in m.cases]), m.genes


def test_bins_are_per_gene_quantiles_and_missing_is_bin_zero():
    enc = GeneEncoder(["A", "B"], n_bins=2, **SMALL)
    train = torch.tensor([[float(i), 10.0 * i] for i in range(10)])  # medians 4.5 and 45
    enc.fit(train)
    torch.testing.assert_close(enc.bin_edges, torch.tensor([[4.5], [45.0]]))
    values = torch.tensor([[4.0, 50.0], [5.0, 40.0], [9.0, float("nan")]])
    mask = torch.tensor([[True, True], [True, False], [True, True]])
    assert enc.tokens(values, mask).tolist() == [[1, 2], [2, 0], [2, 0]]  # NaN counts as missing


def test_unfitted_or_misshaped_inputs_are_clear_errors():
    enc = GeneEncoder(["A", "B"], **SMALL)
    with pytest.raises(MstarError, match="not fitted"):
        enc(torch.zeros(1, 2))
    enc.fit(torch.rand(4, 2))
    with pytest.raises(MstarError, match=r"\(B, 2\) in vocabulary order"):
        enc(torch.zeros(1, 3))
    with pytest.raises(MstarError, match="unique"):
        GeneEncoder(["A", "A"])
    with pytest.raises(MstarError, match="pool"):
        GeneEncoder(["A"], pool="max")


def test_masked_genes_are_dropped_from_attention(cohort):
    values, mask, _, genes = cohort
    torch.manual_seed(0)
    full = GeneEncoder(genes, **SMALL).fit(values, mask).eval()
    drop = 7
    keep = [i for i in range(len(genes)) if i != drop]
    short = GeneEncoder([genes[i] for i in keep], **SMALL)
    state = {k: v for k, v in full.state_dict().items() if k != "_extra_state"}
    state["gene_emb.weight"] = state["gene_emb.weight"][keep]
    state["bin_edges"] = state["bin_edges"][keep]
    short.load_state_dict({**state, "_extra_state": short.get_extra_state()})
    short.eval()
    masked = mask[:8].clone()
    masked[:, drop] = False
    x = values[:8].clone()
    with torch.no_grad():
        got = full(x, masked)
        x[:, drop] = 1e6  # whatever a masked gene holds does not matter
        again = full(x, masked)
        want = short(values[:8, keep], mask[:8, keep])
    torch.testing.assert_close(again, got)
    # Equal up to FAVOR+'s 1e-4 kernel stabiliser (taken over all keys by performer-pytorch).
    torch.testing.assert_close(got, want, rtol=1e-3, atol=1e-3)


def test_checkpoint_reloads_exactly(cohort, tmp_path):
    values, mask, _, genes = cohort
    for enc in (GeneEncoder(genes, pool="mean", binding="sum", **SMALL), SNNGeneEncoder(genes, proj_dim=16)):
        enc.fit(values, mask).eval()
        torch.save({"gene_encoder." + k: v for k, v in enc.state_dict().items()}, tmp_path / "ckpt.pt")
        state = torch.load(tmp_path / "ckpt.pt", weights_only=True)
        again = type(enc).from_state_dict(state, prefix="gene_encoder.").eval()
        assert again.config == enc.config and again.vocabulary == genes
        torch.testing.assert_close(again(values[:5], mask[:5]), enc(values[:5], mask[:5]), rtol=0, atol=0)
        with pytest.raises(MstarError, match="another gene vocabulary"):
            type(enc)(list(reversed(genes))).load_state_dict(enc.state_dict(), strict=False)


def test_gene_embeddings_can_be_given_and_frozen():
    vectors = torch.randn(3, 32)
    enc = GeneEncoder(["A", "B", "C"], gene_embeddings=vectors, freeze_gene_embeddings=True, **SMALL)
    torch.testing.assert_close(enc.gene_emb.weight, vectors)
    assert not enc.gene_emb.weight.requires_grad and enc.bin_emb.weight.requires_grad
    with pytest.raises(MstarError, match="set dim to the Gene2Vec width"):
        GeneEncoder(["A", "B", "C"], gene_embeddings=torch.randn(3, 5), **SMALL)


@pytest.fixture
def one_thread():
    """Small ops: one intra-op thread is faster than two that spin against each other on a busy CPU."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _train_and_score(enc, head, values, mask, labels, steps, lr):
    n_train = 200
    enc.fit(values[:n_train], mask[:n_train])
    opt = torch.optim.AdamW([*enc.parameters(), *head.parameters()], lr=lr)
    for _ in range(steps):
        idx = torch.randint(0, n_train, (32,))
        loss = torch.nn.functional.cross_entropy(head(enc(values[idx], mask[idx])), labels[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    enc.eval()
    with torch.no_grad():
        pred = head(enc(values[n_train:], mask[n_train:])).argmax(1)
    return (pred == labels[n_train:]).float().mean().item()


def test_performer_encoder_learns_cancer_type(cohort, one_thread):
    values, mask, labels, genes = cohort
    torch.manual_seed(0)
    enc = GeneEncoder(genes, n_bins=7, **SMALL)
    accuracy = _train_and_score(enc, torch.nn.Linear(16, 3), values, mask, labels, steps=60, lr=3e-3)
    assert accuracy > 0.9


def test_snn_encoder_learns_cancer_type(cohort, one_thread):
    values, mask, labels, genes = cohort
    torch.manual_seed(0)
    enc = SNNGeneEncoder(genes, proj_dim=16, hidden=(64, 64))
    accuracy = _train_and_score(enc, torch.nn.Linear(16, 3), values, mask, labels, steps=40, lr=1e-3)
    assert accuracy > 0.9
