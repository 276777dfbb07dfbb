"""Parity with upstream mSTAR MCAT, MOTCat, Porpoise and CMTA on the recorded fixtures (eval, batch of 1)."""

from __future__ import annotations

import pytest
import torch

from mstar.models.fusion import CMTA, MCAT, ABMILSurvival, MOTCat, Porpoise, fusion_survival_loss
from mstar.models.upstream import upstream_to_mil
from tests.models.fusion._recipe import (
    CHUNK_CASES,
    FUSION_WEIGHT_SEEDS,
    MOTCAT_CHUNK_SIZE,
    OMIC_SIZES,
    load_fixture,
    seeded_bag,
    seeded_omic_vector,
    seeded_omics,
    seeded_state_dict,
)

TOL = {"atol": 1e-5, "rtol": 1e-5}


def _seeded(model: torch.nn.Module, name: str) -> torch.nn.Module:
    shapes = {k: v.shape for k, v in model.state_dict().items()}
    model.load_state_dict(seeded_state_dict(shapes, FUSION_WEIGHT_SEEDS[name]), strict=True)
    return model.eval()


@pytest.fixture(scope="module")
def bags():
    return {300: seeded_bag(300), 50: seeded_bag(50)}


def _check_survival(out, ref, n):
    torch.testing.assert_close(out.survival.hazards, ref[f"hazards_{n}"], **TOL)
    torch.testing.assert_close(out.survival.S, ref[f"S_{n}"], **TOL)
    torch.testing.assert_close(out.survival.risk, -ref[f"S_{n}"].sum(dim=1), **TOL)


@pytest.mark.parametrize("name,cls", [("mcat", MCAT), ("motcat", MOTCat)])
def test_mcat_and_motcat_match_upstream(name, cls, bags):
    ref = load_fixture(name)
    model = _seeded(cls(omic_sizes=OMIC_SIZES), name)
    with torch.no_grad():
        for n in (300, 50):
            out = model(bags[n], None, seeded_omics())
            _check_survival(out, ref, n)
            assert torch.equal(out.y_hat, ref[f"Y_hat_{n}"])
            if n == 300:
                assert out.attention["coattn"].shape == (1, 1, 6, 300)
                for key in ("coattn", "path", "omic"):  # MCAT coattn: RAW scores; MOTCat: the transport plan
                    torch.testing.assert_close(out.attention[key], ref[f"{key}_300"], **TOL)
                assert out.chunks is None and out.aux_loss is None


def test_porpoise_matches_upstream_with_vector_or_groups(bags):
    ref = load_fixture("porpoise")
    model = _seeded(Porpoise(omic_dim=200), "porpoise")
    omic = seeded_omic_vector()
    with torch.no_grad():
        for n in (300, 50):
            _check_survival(model(bags[n], None, omic), ref, n)
        out = model(bags[300], None, [omic[:, :120], omic[:, 120:]])  # groups are concatenated in order
    _check_survival(out, ref, 300)
    torch.testing.assert_close(out.attention["path"][0], ref["path_300"], **TOL)


def test_cmta_matches_upstream_outputs_embeddings_and_alignment_loss(bags):
    ref = load_fixture("cmta")
    model = _seeded(CMTA(omic_sizes=OMIC_SIZES), "cmta")
    with torch.no_grad():
        for n in (300, 50):
            out = model(bags[n], None, seeded_omics())
            _check_survival(out, ref, n)
            if n == 300:
                for key in ("P", "P_hat", "G", "G_hat"):
                    torch.testing.assert_close(out.embeddings[key], ref[f"{key}_300"], **TOL)
                torch.testing.assert_close(out.aux_loss, ref["sim_loss_300"], **TOL)


def test_motcat_chunks_replay_upstream_engine(bags):
    """Upstream shuffles, splits into N // chunk + 1 chunks, averages the chunk losses and risks."""
    ref = load_fixture("motcat")
    model = _seeded(MOTCat(omic_sizes=OMIC_SIZES, chunk_size=MOTCAT_CHUNK_SIZE), "motcat")
    perm = ref["chunk_perm_300"]
    chunks = model.chunk_indices(300, perm=perm)
    assert [len(c) for c in chunks] == ref["chunk_sizes_300"].tolist() == [100, 100, 100]
    with torch.no_grad():
        out = model(bags[300], None, seeded_omics(), perms=[perm])
    assert out.chunks is not None and len(out.chunks) == 1
    torch.testing.assert_close(out.chunks[0].hazards, ref["chunk_hazards_300"], **TOL)
    torch.testing.assert_close(out.chunks[0].S, ref["chunk_S_300"], **TOL)
    torch.testing.assert_close(out.survival.risk.double(), ref["chunk_risk_300"].reshape(1), **TOL)
    torch.testing.assert_close(out.survival.S, ref["chunk_S_300"].mean(0, keepdim=True), **TOL)
    for y, c in CHUNK_CASES:
        loss = fusion_survival_loss(out, torch.tensor([y]), torch.tensor([c]))
        torch.testing.assert_close(loss, ref[f"chunk_loss_300_y{y}_c{int(c)}"], atol=1e-6, rtol=1e-6)


def test_abmil_survival_baseline_loads_upstream_attmil_and_matches(bags):
    from tests.models._upstream_recipe import WEIGHT_SEEDS
    from tests.models.test_upstream_parity import _shapes

    model = ABMILSurvival(path_dim=1024, n_bins=4)
    sd = upstream_to_mil(seeded_state_dict(_shapes("survival_attmil"), WEIGHT_SEEDS["survival_attmil"]))
    model.load_state_dict(sd, strict=True)
    ref = load_fixture("survival_attmil")
    with torch.no_grad():
        _check_survival(model.eval()(bags[300]), ref, 300)
