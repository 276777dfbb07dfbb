"""Beam search (greedy = width 1) with hard trigram blocking, independent of any model.

The model is seen only through ``step_fn(prefix, owner) -> logprobs``: ``prefix`` ``(M, t + 1)`` holds
``<bos>`` and the ``t`` tokens of each live hypothesis, ``owner`` ``(M,)`` the batch item each hypothesis
belongs to, and the result ``(M, V)`` the log-probabilities of the next token. A hypothesis scores the
sum of its token log-probabilities (HistGen's default: no length penalty).

Per step and batch item the ``2 * beam_size`` best extensions are ranked; an ``<eos>`` extension ranked
within the first ``beam_size`` is a finished report, the best non-``<eos>`` extensions (up to
``beam_size``) stay live; at ``max_len`` the ``beam_size`` best extensions finish as they are. An item
stops once its best finished score is at least its best live score (log-probabilities are ≤ 0, so no
live hypothesis can overtake it; with a length penalty the live score is divided by the largest penalty
first). Without a length penalty width 1 is therefore exactly greedy decoding.

Trigram blocking: a token that would repeat a trigram already in the hypothesis gets log-probability
``-inf`` (HistGen applies a soft ``ln(1/4)`` penalty per repeat, and only when decoding greedily).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

StepFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def blocked_trigrams(seqs: torch.Tensor, vocab_size: int) -> torch.Tensor:
    """Tokens that would repeat a trigram of each sequence.

    Args:
        seqs: ``(M, t)`` generated tokens (no ``<bos>``).
        vocab_size: ``V``.

    Returns:
        ``(M, V)`` bool, True where appending the token repeats a trigram already in the sequence.
    """
    m, t = seqs.shape
    if t < 3:
        return torch.zeros(m, vocab_size, dtype=torch.bool, device=seqs.device)
    a, b = seqs[:, -2:-1], seqs[:, -1:]  # (M, 1) each: the prefix of the next trigram
    match = (seqs[:, :-2] == a) & (seqs[:, 1:-1] == b)  # (M, t - 2): earlier trigrams sharing it
    counts = torch.zeros(m, vocab_size, device=seqs.device)
    counts.scatter_add_(1, seqs[:, 2:], match.float())  # (M, V)
    return counts > 0


def has_repeated_trigram(tokens: Sequence) -> bool:
    """True when some trigram occurs twice in ``tokens``."""
    grams = [tuple(tokens[i:i + 3]) for i in range(len(tokens) - 2)]
    return len(grams) != len(set(grams))


@torch.no_grad()
def beam_search(step_fn: StepFn, batch_size: int, *, bos_id: int, eos_id: int, beam_size: int = 3,
                max_len: int = 100, block_trigrams: bool = True, banned: Sequence[int] = (),
                length_penalty: float = 0.0, device: torch.device | str | None = None) -> list[list[int]]:
    """Highest-scoring report per batch item found by beam search.

    Args:
        step_fn: Next-token log-probabilities (see the module docstring).
        batch_size: Number of batch items ``B``.
        bos_id: Token fed first.
        eos_id: Token that ends a report (not included in the output).
        beam_size: Beam width; 1 is greedy decoding.
        max_len: Most tokens generated per report, ``<eos>`` included.
        block_trigrams: Forbid repeating a trigram.
        banned: Tokens never generated (e.g. ``<pad>``, ``<bos>``).
        length_penalty: Wu et al.'s alpha: a finished report of ``L`` tokens (``<eos>`` included) is ranked
            by ``score / ((5 + L) / 6) ** alpha`` (upstream's ``wu_<alpha>``; 0 = HistGen's run: none).
        device: Device of the hypothesis tensors (default CPU).

    Returns:
        ``B`` token lists without ``<bos>``/``<eos>``.
    """
    if beam_size < 1 or max_len < 1:
        raise ValueError("beam_size and max_len must be ≥ 1")
    k = beam_size

    def norm(score: float, length: int) -> float:
        return score / ((5 + length) / 6) ** length_penalty

    bound = ((5 + max_len) / 6) ** length_penalty  # a live score can gain at most this factor
    owner = torch.arange(batch_size, device=device)  # (M,)
    seqs = torch.zeros(batch_size, 0, dtype=torch.long, device=device)  # (M, t)
    scores = torch.zeros(batch_size, device=device)  # (M,)
    finished: list[list[tuple[float, list[int]]]] = [[] for _ in range(batch_size)]
    for t in range(max_len):
        prefix = torch.cat([torch.full_like(owner, bos_id)[:, None], seqs], dim=1)  # (M, t + 1)
        logp = step_fn(prefix, owner).float().to(scores.device)  # (M, V)
        vocab = logp.shape[1]
        if banned:
            logp[:, list(banned)] = float("-inf")
        if block_trigrams:
            logp = logp.masked_fill(blocked_trigrams(seqs, vocab), float("-inf"))
        cand = scores[:, None] + logp  # (M, V)
        keep_rows, keep_toks, keep_scores = [], [], []
        for item in owner.unique().tolist():
            rows = (owner == item).nonzero().squeeze(1)  # (m,)
            flat = cand[rows].reshape(-1)  # (m * V,)
            vals, idx = flat.topk(min(2 * k, flat.numel()))
            live: list[tuple[int, int, float]] = []
            for rank, (val, i) in enumerate(zip(vals.tolist(), idx.tolist())):
                if val == float("-inf") or len(live) == k:
                    break
                row, tok = int(rows[i // vocab]), i % vocab
                if tok == eos_id or t == max_len - 1:
                    if rank < k:
                        finished[item].append((norm(val, t + 1), seqs[row].tolist() + [tok]))
                else:
                    live.append((row, tok, val))
            best_done = max((s for s, _ in finished[item]), default=float("-inf"))
            if live and (not finished[item] or live[0][2] / bound > best_done):
                for row, tok, val in live:
                    keep_rows.append(row), keep_toks.append(tok), keep_scores.append(val)
        if not keep_rows:
            break
        rows_t = torch.tensor(keep_rows, device=seqs.device)
        seqs = torch.cat([seqs[rows_t], torch.tensor(keep_toks, device=seqs.device)[:, None]], dim=1)
        owner, scores = owner[rows_t], torch.tensor(keep_scores, device=seqs.device)
    best = [max(done, key=lambda d: d[0])[1] if done else [] for done in finished]
    return [seq[:-1] if seq and seq[-1] == eos_id else seq for seq in best]
