"""Behaviour of the fusion models beyond parity: padding masks, batches, MOTCat chunks, CMTA alignment loss,
gradients, the registry and input errors. Small inputs (24-d patches, 6 tiny signature groups)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mstar.errors import MstarError
from mstar.models import create_model
from mstar.models.fusion import FusionOutput, MOTCat, fusion_survival_loss, split_chunks
from mstar.models.losses import nll_surv_loss

D, SIZES = 24, (3, 4, 5, 6, 7, 8)
NAMES = ("mcat", "motcat", "porpoise", "cmta", "snn", "abmil_surv", "late_fusion")
PATH_MODELS = tuple(n for n in NAMES if n != "snn")


def _model(name: str, seed: int = 0, **kw) -> torch.nn.Module:
    torch.manual_seed(seed)
    if name == "cmta":
        kw.setdefault("dim", 64)  # 32 Nystrom landmarks instead of 128: same code, far less CPU time
    return create_model(name, path_dim=D, omic_sizes=SIZES, n_bins=4, **kw).eval()


def _inputs(batch: int = 2, n: int = 12, seed: int = 1):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, n, D, generator=gen)
    omics = [torch.randn(batch, s, generator=gen) for s in SIZES]
    return x, omics


def _close(a: torch.Tensor, b: torch.Tensor, atol: float = 2e-6) -> None:
    torch.testing.assert_close(a, b, atol=atol, rtol=1e-5)


@pytest.mark.parametrize("name", PATH_MODELS)
def test_padding_does_not_change_outputs(name):
    model = _model(name)
    x, omics = _inputs()
    mask = torch.ones(2, 12, dtype=torch.bool)
    mask[0, 7:] = False
    x[0, 7:] = float("nan")  # padding content must not leak
    with torch.no_grad():
        out = model(x, mask, omics)
        alone = [model(x[:1, :7], None, [g[:1] for g in omics]), model(x[1:], None, [g[1:] for g in omics])]
    assert isinstance(out, FusionOutput) and out.logits.shape == (2, 4) and out.survival.risk.shape == (2,)
    for b, ref in enumerate(alone):
        _close(out.logits[b], ref.logits[0])
        _close(out.survival.S[b], ref.survival.S[0])
        for key, emb in ref.embeddings.items():
            _close(out.embeddings[key][b], emb[0])
    assert torch.isfinite(out.logits).all()
    if "coattn" in out.attention:  # (B, 1, G, N)
        coattn = out.attention["coattn"]
        _close(coattn[0, ..., :7], alone[0].attention["coattn"][0])
        pad = coattn[0, ..., 7:]
        assert (pad == float("-inf")).all() if name == "mcat" else (pad == 0).all()
    if name == "porpoise":
        assert (out.attention["path"][0, 7:] == float("-inf")).all()


@pytest.mark.parametrize("name", ("mcat", "porpoise", "cmta"))
def test_a_batch_gives_each_case_its_batch_of_one_output(name):
    model = _model(name)
    x, omics = _inputs(batch=2, n=9)
    with torch.no_grad():
        out = model(x, None, omics)
        for b in range(2):
            _close(out.logits[b], model(x[b : b + 1], None, [g[b : b + 1] for g in omics]).logits[0])


@pytest.mark.parametrize("name", PATH_MODELS)
def test_one_patch_bags_and_float64_omics_work(name):
    x, omics = _inputs(batch=1, n=1)
    with torch.no_grad():
        out = _model(name)(x, None, [g.double() for g in omics])
    assert (out.logits.shape == (1, 4) and out.logits.dtype == torch.float32
            and torch.isfinite(out.logits).all())


def test_chunks_follow_the_upstream_split():
    model = MOTCat(path_dim=D, omic_sizes=SIZES, chunk_size=4).eval()
    assert [c.tolist() for c in model.chunk_indices(3)] == [[0, 1, 2]]  # < chunk_size: one chunk, input order
    for n in (4, 9, 10, 17):
        chunks = model.chunk_indices(n)
        sizes = [len(a) for a in np.array_split(np.arange(n), n // 4 + 1)]
        assert [len(c) for c in chunks] == sizes
        assert sorted(torch.cat(chunks).tolist()) == list(range(n))
    perm = torch.randperm(10)
    assert torch.equal(torch.cat(split_chunks(perm, 4)), perm)
    with pytest.raises(MstarError, match="permutation"):
        model.chunk_indices(3, perm=torch.tensor([0, 0, 1]))


def test_motcat_chunks_batches_and_averages():
    model = _model("motcat", chunk_size=4)
    x, omics = _inputs(n=10)
    mask = torch.ones(2, 10, dtype=torch.bool)
    mask[1, 3:] = False  # bag 1: 3 real patches -> one chunk; bag 0: 10 -> 3 chunks
    with torch.no_grad():
        out = model(x, mask, omics)
        again = model(x, mask, omics)  # eval: the shuffle is seeded (chunk_seed), so outputs repeat
        perm = model.chunk_indices(10, torch.Generator().manual_seed(model.chunk_seed))
        alone = model(x[:1], None, [g[:1] for g in omics], perms=[torch.cat(perm)])
        small = model(x[1:, :3], None, [g[1:] for g in omics])
    assert torch.equal(out.logits, again.logits)
    assert [len(c.S) for c in out.chunks] == [3, 1]
    _close(out.survival.S[0], out.chunks[0].S.mean(0))
    _close(out.survival.risk[0], out.chunks[0].risk.mean())
    _close(out.chunks[0].S, alone.chunks[0].S)
    _close(out.logits[1], small.logits[0])
    coattn = out.attention["coattn"]
    assert (coattn[1, ..., 3:] == 0).all() and (coattn[0] > 0).all()  # each patch in exactly one chunk's plan
    y, c = torch.tensor([1, 3]), torch.tensor([0.0, 1.0])
    by_hand = torch.stack([nll_surv_loss(ch.hazards, ch.S, y[b].repeat(len(ch.S)), c[b].repeat(len(ch.S)))
                           for b, ch in enumerate(out.chunks)]).mean()
    _close(fusion_survival_loss(out, y, c), by_hand)


def test_cmta_aux_loss_is_the_detached_l1_alignment():
    model = _model("cmta").train()
    x, omics = _inputs(n=6)
    out = model(x, None, omics)
    e = out.embeddings
    by_hand = (e["P_hat"] - e["P"]).abs().mean() + (e["G_hat"] - e["G"]).abs().mean()
    _close(out.aux_loss, by_hand)
    grads = torch.autograd.grad(out.aux_loss, [e["P"], e["P_hat"], e["G"], e["G_hat"]], allow_unused=True,
                                retain_graph=True)
    assert grads[0] is None and grads[2] is None  # targets are detached, as upstream
    assert grads[1] is not None and grads[3] is not None
    y, c = torch.tensor([0, 2]), torch.tensor([0.0, 1.0])
    nll = nll_surv_loss(out.survival.hazards, out.survival.S, y, c)
    _close(fusion_survival_loss(out, y, c), nll + out.aux_loss)


@pytest.mark.parametrize("name", NAMES)
def test_gradients_reach_every_used_parameter_in_train_mode(name):
    model = _model(name, chunk_size=4) if name == "motcat" else _model(name)
    model.train()
    x, omics = _inputs(n=7)
    out = model(x, None, omics)
    fusion_survival_loss(out, torch.tensor([0, 3]), torch.tensor([0.0, 1.0])).backward()
    unused = {"classifier_mm.weight", "classifier_mm.bias"}  # Porpoise: in upstream's state_dict, never used
    for key, p in model.named_parameters():
        if key in unused:
            assert p.grad is None
        else:
            assert p.grad is not None and torch.isfinite(p.grad).all(), key
    assert sum(float(p.grad.abs().sum()) for p in model.parameters() if p.grad is not None) > 0


def test_snn_and_late_fusion_take_the_concatenated_groups():
    x, omics = _inputs()
    full = torch.cat(omics, dim=1)
    for name in ("snn", "late_fusion", "porpoise"):
        model = _model(name)
        with torch.no_grad():
            torch.testing.assert_close(model(x, None, omics).logits, model(x, None, full).logits)
    assert _model("snn")(None, None, full).logits.shape == (2, 4)


def test_missing_sizes_and_wrong_omics_are_user_errors():
    for name in ("mcat", "motcat", "cmta", "porpoise", "snn", "late_fusion"):
        with pytest.raises(MstarError, match="omic"):
            create_model(name)
    x, omics = _inputs()
    with pytest.raises(MstarError, match="6 omic groups"):
        _model("mcat")(x, None, omics[:5])
    with pytest.raises(MstarError, match="omic group 2 must be"):
        _model("cmta")(x, None, omics[:2] + [omics[2][:, :2]] + omics[3:])
    with pytest.raises(MstarError, match=r"omic vector \(2, 33\)"):
        _model("porpoise")(x, None, omics[:5])
    with pytest.raises(MstarError, match="D=24"):
        create_model("mcat", path_dim=32, omic_sizes=SIZES)(x, None, omics)


def test_additive_late_fusion_is_the_sum_of_a_slide_and_an_omic_term():
    """fusion='sum': changing the omics moves every bag's logits by the omic term alone, whatever the
    slide."""
    model = _model("late_fusion", fusion="sum", path_width=16, attn_dim=8, omic_width=8)
    x, omics = _inputs()
    other = [o + 1.0 for o in omics]
    with torch.no_grad():
        base, moved = model(x, None, omics).logits, model(x, None, other).logits
        z_a = model.omic_net(torch.cat(omics, 1))
        z_b = model.omic_net(torch.cat(other, 1))
        slide = model.path_head(model.path_net(x).embedding)
    _close(moved - base, model.omic_head(z_b) - model.omic_head(z_a), atol=1e-5)
    _close(base, slide + model.omic_head(z_a), atol=1e-5)
    assert not hasattr(model, "mm") and set(dict(model.named_children())) == {
        "path_net", "omic_net", "path_head", "omic_head"}
    with pytest.raises(MstarError, match="fusion must be"):
        _model("late_fusion", fusion="product")
