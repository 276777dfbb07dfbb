"""Report tokeniser and vocabulary: the tokens of HistGen-cleaned reports (:mod:`mstar.data.report_text`) with
separate special tokens, and numbers spelled digit by digit so that every number can be written.

HistGen keeps a word only when it occurs ``min_freq`` (10) times in the training reports, so most numbers
("3.4 cm", "2 of 11 lymph nodes") became ``<unk>``. Here (format ``mstar-report-vocab/2``) a number is
encoded as its digits and decimal points: the first piece as it is, each following piece glued to the one
before by the prefix :data:`GLUE` (``"3.4"`` → ``3 @@. @@4``; ``"11"`` → ``1 @@1``). ``@`` is deleted by
the cleaning, so no report word can start with it and decoding joins the pieces back exactly
(``"3.4 cm"``). A word mixing letters and digits ("ki-67", "pt2", "a3") stays whole when it is frequent
enough, else it is split the same way (``ki- @@6 @@7``). Digits, their glued forms, the glued point and
hyphen and common units (:data:`UNITS`, also glued: "3.4cm") are always in the vocabulary, whatever
``min_freq``. ``%`` never reaches the tokens: HistGen's cleaning deletes it from references and generated
text alike.

Vocabularies saved as ``mstar-report-vocab/1`` (whole words, numbers included) still load and keep
encoding and decoding whole words, so models trained with them are read as they were trained.
"""

from __future__ import annotations

import json
import os
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path

from mstar.data.report_text import clean_report, tokenize
from mstar.errors import MstarError
from mstar.utils.atomic import write_text_atomic

PAD, BOS, EOS, UNK = "<pad>", "<bos>", "<eos>", "<unk>"
SPECIALS = (PAD, BOS, EOS, UNK)
PAD_ID, BOS_ID, EOS_ID, UNK_ID = 0, 1, 2, 3
FORMAT = "mstar-report-vocab/2"      # numbers digit by digit (GLUE pieces)
FORMAT_WORDS = "mstar-report-vocab/1"  # whole words (read, never written)
GLUE = "@@"
DIGITS = tuple("0123456789")
UNITS = ("cm", "mm", "um", "µm", "μm", "nm", "cm2", "mm2", "um2", "µm2", "μm2", "cm3", "mm3", "g", "mg", "kg",
         "ml", "hpf", "x")
NUMBER_TOKENS = tuple(sorted({*DIGITS, *(GLUE + d for d in DIGITS), GLUE + ".", GLUE + "-", *UNITS,
                              *(GLUE + u for u in UNITS)}))
__all__ = ["BOS_ID", "EOS_ID", "FORMAT", "GLUE", "NUMBER_TOKENS", "PAD_ID", "UNITS", "UNK_ID", "Vocabulary",
           "clean_report", "number_pieces", "tokenize"]

_DIGIT = re.compile(r"\d")
_NUMBER = re.compile(r"\d+(?:\.\d+)*")
_PIECE = re.compile(r"\d|\D+")
_STRAY_POINT = re.compile(r"(?<!\d)\.|\.(?!\d)")


def number_pieces(word: str) -> list[str]:
    """A word split at its digits: the first piece as it is, the rest with the :data:`GLUE` prefix.

    ``"3.4"`` → ``["3", "@@.", "@@4"]``; ``"ki-67"`` → ``["ki-", "@@6", "@@7"]``; a word without digits
    is returned whole.
    """
    if not _DIGIT.search(word):
        return [word]
    pieces = _PIECE.findall(word)
    return [pieces[0], *(GLUE + p for p in pieces[1:])]


def _is_number(word: str) -> bool:
    return _NUMBER.fullmatch(word) is not None


class Vocabulary:
    """Tokens of the training reports (frequency ≥ ``min_freq``) plus ``<pad> <bos> <eos> <unk>`` (ids 0-3).

    With ``numbers=True`` (the default; format ``mstar-report-vocab/2``) numbers are spelled digit by digit
    (module docstring) and :data:`NUMBER_TOKENS` (digits, glued digits, point and hyphen, units) are always
    part of it; with ``numbers=False`` (vocabularies of format ``/1``) tokens are whole words.

    Args:
        words: Vocabulary tokens (without the special tokens); stored sorted.
        min_freq: The frequency threshold the tokens were selected with (recorded only).
        numbers: Spell numbers digit by digit.
    """

    def __init__(self, words: Iterable[str], min_freq: int = 1, numbers: bool = True) -> None:
        self.numbers = bool(numbers)
        words = set(words) | (set(NUMBER_TOKENS) if self.numbers else set())
        self.itos: list[str] = [*SPECIALS, *sorted(words - set(SPECIALS))]
        self.stoi: dict[str, int] = {w: i for i, w in enumerate(self.itos)}
        self.min_freq = int(min_freq)

    pad_id, bos_id, eos_id, unk_id = PAD_ID, BOS_ID, EOS_ID, UNK_ID

    @classmethod
    def build(cls, reports: Iterable[str], min_freq: int = 10, numbers: bool = True) -> Vocabulary:
        """Vocabulary of the tokens occurring at least ``min_freq`` times in ``reports`` (HistGen: 10).

        With ``numbers`` a word with digits counts as a whole word when it has letters and occurs
        ``min_freq`` times; otherwise (every plain number, rarer mixed words) its pieces are counted.
        """
        words = Counter(tok for report in reports for tok in tokenize(report))
        if not numbers:
            return cls((w for w, n in words.items() if n >= min_freq), min_freq=min_freq, numbers=False)
        counts: Counter = Counter()
        for word, n in words.items():
            whole = not _DIGIT.search(word) or (not _is_number(word) and (n >= min_freq or word in UNITS))
            for piece in ([word] if whole else number_pieces(word)):
                counts[piece] += n
        return cls((w for w, n in counts.items() if n >= min_freq), min_freq=min_freq)

    def __len__(self) -> int:
        return len(self.itos)

    def tokens(self, text: str) -> list[str]:
        """The tokens of ``text`` this vocabulary encodes: cleaned words, numbers as pieces."""
        words = tokenize(text)
        if not self.numbers:
            return words
        out = []
        for word in words:
            keep = not _DIGIT.search(word) or (word in self.stoi and not _is_number(word))
            out += [word] if keep else number_pieces(word)
        return out

    def encode(self, text: str, max_len: int | None = None) -> list[int]:
        """``[<bos>, tokens..., <eos>]``; ``max_len`` cuts the tokens so that tokens + ``<eos>`` ≤ it."""
        ids = [self.stoi.get(tok, UNK_ID) for tok in self.tokens(text)]
        if max_len is not None:
            ids = ids[: max(0, max_len - 1)]
        return [BOS_ID, *ids, EOS_ID]

    def decode(self, ids: Sequence[int]) -> str:
        """Text of ``ids``: stops at ``<eos>``, skips ``<bos>``/``<pad>``; unknown words stay ``<unk>``.

        Glued pieces join the word before them (``3 @@. @@4`` → ``3.4``); a point that does not end up
        between two digits is dropped, as the cleaning would drop it, so the text is in cleaned form.
        """
        words: list[str] = []
        glued: set[int] = set()
        for i in ids:
            i = int(i)
            if i == EOS_ID:
                break
            if i in (BOS_ID, PAD_ID):
                continue
            if not 0 <= i < len(self.itos):
                raise MstarError(f"token id {i} is outside the vocabulary of {len(self.itos)} tokens")
            tok = self.itos[i]
            if self.numbers and tok.startswith(GLUE):
                if words:
                    words[-1] += tok[len(GLUE):]
                else:
                    words.append(tok[len(GLUE):])
                glued.add(len(words) - 1)
            else:
                words.append(tok)
        if glued:
            words = [_STRAY_POINT.sub("", w) if k in glued else w for k, w in enumerate(words)]
        return " ".join(w for w in words if w)

    def to_json(self) -> dict:
        if not self.numbers:
            return {"format": FORMAT_WORDS, "min_freq": self.min_freq, "specials": list(SPECIALS),
                    "words": self.itos[len(SPECIALS):]}
        return {"format": FORMAT, "min_freq": self.min_freq, "specials": list(SPECIALS), "glue": GLUE,
                "words": self.itos[len(SPECIALS):]}

    def save(self, path: str | os.PathLike) -> None:
        """Write the vocabulary as JSON (atomically)."""
        write_text_atomic(path, json.dumps(self.to_json(), indent=1) + "\n")

    @classmethod
    def load(cls, path: str | os.PathLike) -> Vocabulary:
        """Read a vocabulary written by :meth:`save` (format ``/2``, or ``/1``: whole words)."""
        path = Path(path)
        try:
            blob = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as err:
            raise MstarError(f"{path}: cannot read the report vocabulary ({err})") from err
        if not (isinstance(blob, dict) and blob.get("format") in (FORMAT, FORMAT_WORDS)
                and blob.get("specials") == list(SPECIALS)
                and (blob["format"] == FORMAT_WORDS or blob.get("glue") == GLUE)):
            raise MstarError(f"{path}: not a report vocabulary written by mstar ({FORMAT} or {FORMAT_WORDS})")
        words = blob["words"]
        vocab = cls(words, min_freq=blob.get("min_freq", 1), numbers=blob["format"] == FORMAT)
        if vocab.itos[len(SPECIALS):] != words:
            raise MstarError(f"{path}: the report vocabulary's words are not as mstar saves them (sorted, "
                             "unique, with every number token); the token ids would not be the trained ones")
        return vocab
