"""Report tokeniser and vocabulary: the tokens of HistGen-cleaned reports (:mod:`mstar.data.report_text`) with
separate special tokens.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path

from mstar.data.report_text import clean_report, tokenize
from mstar.errors import MstarError
from mstar.utils.atomic import write_text_atomic

PAD, BOS, EOS, UNK = "<pad>", "<bos>", "<eos>", "<unk>"
SPECIALS = (PAD, BOS, EOS, UNK)
PAD_ID, BOS_ID, EOS_ID, UNK_ID = 0, 1, 2, 3
FORMAT = "mstar-report-vocab/1"
__all__ = ["BOS_ID", "EOS_ID", "PAD_ID", "UNK_ID", "Vocabulary", "clean_report", "tokenize"]


class Vocabulary:
    """Words of the training reports (frequency ≥ ``min_freq``) plus ``<pad> <bos> <eos> <unk>`` (ids 0-3).

    Args:
        words: Vocabulary words (without the special tokens); stored sorted.
        min_freq: The frequency threshold the words were selected with (recorded only).
    """

    def __init__(self, words: Iterable[str], min_freq: int = 1) -> None:
        words = sorted(set(words) - set(SPECIALS))
        self.itos: list[str] = [*SPECIALS, *words]
        self.stoi: dict[str, int] = {w: i for i, w in enumerate(self.itos)}
        self.min_freq = int(min_freq)

    pad_id, bos_id, eos_id, unk_id = PAD_ID, BOS_ID, EOS_ID, UNK_ID

    @classmethod
    def build(cls, reports: Iterable[str], min_freq: int = 10) -> Vocabulary:
        """Vocabulary of the tokens occurring at least ``min_freq`` times in ``reports`` (HistGen: 10)."""
        counts = Counter(tok for report in reports for tok in tokenize(report))
        return cls((w for w, n in counts.items() if n >= min_freq), min_freq=min_freq)

    def __len__(self) -> int:
        return len(self.itos)

    def encode(self, text: str, max_len: int | None = None) -> list[int]:
        """``[<bos>, tokens..., <eos>]``; ``max_len`` cuts the tokens so that tokens + ``<eos>`` ≤ it."""
        ids = [self.stoi.get(tok, UNK_ID) for tok in tokenize(text)]
        if max_len is not None:
            ids = ids[: max(0, max_len - 1)]
        return [BOS_ID, *ids, EOS_ID]

    def decode(self, ids: Sequence[int]) -> str:
        """Text of ``ids``: stops at ``<eos>``, skips ``<bos>``/``<pad>``; unknown words stay ``<unk>``."""
        words = []
        for i in ids:
            i = int(i)
            if i == EOS_ID:
                break
            if i in (BOS_ID, PAD_ID):
                continue
            if not 0 <= i < len(self.itos):
                raise MstarError(f"token id {i} is outside the vocabulary of {len(self.itos)} tokens")
            words.append(self.itos[i])
        return " ".join(words)

    def to_json(self) -> dict:
        return {"format": FORMAT, "min_freq": self.min_freq, "specials": list(SPECIALS),
                "words": self.itos[len(SPECIALS):]}

    def save(self, path: str | os.PathLike) -> None:
        """Write the vocabulary as JSON (atomically)."""
        write_text_atomic(path, json.dumps(self.to_json(), indent=1) + "\n")

    @classmethod
    def load(cls, path: str | os.PathLike) -> Vocabulary:
        """Read a vocabulary written by :meth:`save`."""
        path = Path(path)
        try:
            blob = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as err:
            raise MstarError(f"{path}: cannot read the report vocabulary ({err})") from err
        if not (isinstance(blob, dict) and blob.get("format") == FORMAT
                and blob.get("specials") == list(SPECIALS)):
            raise MstarError(f"{path}: not a report vocabulary written by mstar ({FORMAT})")
        return cls(blob["words"], min_freq=blob.get("min_freq", 1))
