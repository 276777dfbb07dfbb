from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from mstar.models.report.decoding import beam_search, blocked_trigrams, has_repeated_trigram

EOS, BOS = 0, 9  # toy vocabulary: 0 = <eos>, 1..V-1 words; <bos> only ever appears in the prefix


def toy_step(vocab: int, seed: int = 0):
    """Deterministic pseudo-random next-token log-probabilities given the whole prefix and the owner."""

    def step(prefix: torch.Tensor, owner: torch.Tensor) -> torch.Tensor:
        rows = []
        for p, o in zip(prefix.tolist(), owner.tolist()):
            rng = np.random.default_rng([seed, o, *p])
            rows.append(rng.normal(0, 2, vocab))
        return torch.log_softmax(torch.tensor(np.array(rows), dtype=torch.float32), dim=-1)

    return step


def sequence_logprob(step, seq, owner=0):
    total = 0.0
    for t, tok in enumerate(seq):
        prefix = torch.tensor([[BOS, *seq[:t]]])
        total += float(step(prefix, torch.tensor([owner]))[0, tok])
    return total


def exhaustive_best(step, vocab, max_len, block=False, owner=0):
    """Best complete report: ends with <eos> at any length ≤ max_len, or fills max_len without it."""
    best, best_seq = -np.inf, None
    for length in range(1, max_len + 1):
        for body in itertools.product(range(1, vocab), repeat=length - 1):
            candidates = [[*body, EOS]] + ([[*body, w] for w in range(1, vocab)] if length == max_len else [])
            for seq in candidates:
                if block and has_repeated_trigram([s for s in seq if s != EOS]):
                    continue
                score = sequence_logprob(step, seq, owner)
                if score > best:
                    best, best_seq = score, seq
    return best, [s for s in best_seq if s != EOS]


@pytest.mark.parametrize("block", [False, True])
def test_wide_beam_equals_exhaustive_search(block):
    vocab, max_len = 3, 5
    step = toy_step(vocab, seed=3)
    wide = beam_search(step, 2, bos_id=BOS, eos_id=EOS, beam_size=vocab ** max_len, max_len=max_len,
                       block_trigrams=block)
    for owner in (0, 1):
        score, seq = exhaustive_best(step, vocab, max_len, block, owner)
        assert wide[owner] == seq
        full = seq + ([EOS] if len(seq) < max_len else [])
        assert sequence_logprob(step, full, owner) == pytest.approx(score, abs=1e-5)


def greedy_reference(step, max_len):
    seq = []
    for _ in range(max_len):
        tok = int(step(torch.tensor([[BOS, *seq]]), torch.tensor([0]))[0].argmax())
        if tok == EOS:
            break
        seq.append(tok)
    return seq


def test_width_one_is_greedy():
    for seed in range(5):
        step = toy_step(5, seed)
        got = beam_search(step, 1, bos_id=BOS, eos_id=EOS, beam_size=1, max_len=8, block_trigrams=False)
        assert got[0] == greedy_reference(step, 8)


def test_beam_recovers_a_sequence_greedy_misses():
    # step 1: "1" (0.6) beats "2" (0.4); after "1" every continuation is uniform (0.25 each, <eos> incl.),
    # after "2" <eos> is certain: best report "2" (0.4) > any "1 ..." (0.6 * 0.25 = 0.15).
    def step(prefix, owner):
        out = []
        for p in prefix.tolist():
            probs = [0.0, 0.6, 0.4, 0.0] if len(p) == 1 else [0.25] * 4 if p[1] == 1 else [1.0, 0, 0, 0]
            out.append(probs)
        return torch.tensor(out).clamp_min(1e-12).log()

    greedy = beam_search(step, 1, bos_id=BOS, eos_id=EOS, beam_size=1, max_len=4)
    beam = beam_search(step, 1, bos_id=BOS, eos_id=EOS, beam_size=3, max_len=4)
    assert greedy[0][0] == 1 and beam[0] == [2]


def test_trigram_blocking_never_repeats_a_trigram():
    # a decoder that loves the cycle 1 2 3 1 2 3 ... and rarely ends
    def step(prefix, owner):
        out = torch.full((prefix.shape[0], 5), -6.0)
        out[:, EOS] = -12.0
        for i, p in enumerate(prefix.tolist()):
            nxt = p[-1] + 1 if p[-1] in (1, 2) else 1
            out[i, nxt] = 0.0
        return torch.log_softmax(out, dim=-1)

    free = beam_search(step, 1, bos_id=BOS, eos_id=EOS, beam_size=3, max_len=12, block_trigrams=False)
    assert free[0][:6] == [1, 2, 3, 1, 2, 3] and has_repeated_trigram(free[0])
    for width in (1, 3):
        got = beam_search(step, 2, bos_id=BOS, eos_id=EOS, beam_size=width, max_len=12)
        assert all(not has_repeated_trigram(seq) for seq in got)
        assert len(got[0]) >= 4


def test_blocked_trigrams_mask():
    seqs = torch.tensor([[5, 6, 7, 5, 6], [1, 2, 3, 4, 5]])
    mask = blocked_trigrams(seqs, 8)
    assert mask[0].nonzero().flatten().tolist() == [7]  # "5 6 7" seen, prefix "5 6" again
    assert not mask[1].any()
    assert not blocked_trigrams(seqs[:, :2], 8).any()


def test_length_penalty_prefers_longer_reports():
    # <eos> is the single most likely token at every step, but continuing is likely overall
    def step(prefix, owner):
        probs = torch.tensor([0.4, 0.3, 0.3, 0.0]) if prefix.shape[1] < 6 else torch.tensor([1.0, 0, 0, 0])
        return probs.clamp_min(1e-12).log().expand(prefix.shape[0], -1)

    plain = beam_search(step, 1, bos_id=BOS, eos_id=EOS, beam_size=3, max_len=8, block_trigrams=False)
    longer = beam_search(step, 1, bos_id=BOS, eos_id=EOS, beam_size=3, max_len=8, block_trigrams=False,
                         length_penalty=5.0)
    assert plain[0] == [] and len(longer[0]) > 0


def test_beam_search_rejects_bad_arguments():
    with pytest.raises(ValueError):
        beam_search(toy_step(3), 1, bos_id=BOS, eos_id=EOS, beam_size=0)
