"""Negated findings in report text: a small NegEx-style rule (after Chapman et al., J Biomed Inform 2001).

A *pre-negation cue* (``no``, ``not``, ``without``, ``negative for``, ``free of``, ``absence of``,
``absent``, ``no evidence of``) negates the words after it: up to :data:`PRE_WINDOW` words, never past its
clause, a bracket or a colon, and stopping before ``is``/``are``/``was``/``were`` or a participle that
closes the noun phrase (``identified``, ``seen``, ``noted``, ``present``, ``detected``, ``found``). A
*post-negation cue* (``not identified``, ``not seen``, ``not present``, ``not detected``, ``not found``,
``not evident``, ``not favoured``, ``absent``, ``ruled out``, ``excluded``) negates up to
:data:`POST_WINDOW` words before it, stopping at a comma or colon, at words that affirm (``with``,
``present``, ``identified``, ``seen``, ...) and at the clause start; a term it negates must be followed by
nothing but a verb (``is``, ``are``, ...) or ``component``/``features``/``areas`` before the cue
("features of adenocarcinoma are not seen", "small cell carcinoma component is not identified").
Clauses end at a sentence end (``. ! ?`` before a space or the text end, a newline), at ``;`` and before
``but``, ``however``, ``although``, ``though``, ``whereas``, ``except``, ``nevertheless``, ``apart from``,
``aside from``. Pseudo-negations (``no special type``, ``not otherwise
specified``, ``no change``, ``not only``, ``cannot be ruled out``, ``not excluded``, ...) negate nothing.

Words are matched case-insensitively as whole words (letters/digits, joined by ``-``, ``.`` or ``'``), so the
rules read raw reports and HistGen-cleaned text (:func:`mstar.data.report_text.clean_report`) alike; cleaned
text has lost its commas and semicolons, so raw text gives the tighter clauses.

Public API:

- :func:`is_negated` ``(sentence, term) -> bool``: is the term mentioned only in negated form?
- :func:`drop_negated` ``(text) -> str``: the text without its negated clause parts (the rest verbatim).
- :func:`sentences` ``(text) -> list[str]``: the sentences of a text, verbatim (they join back to it).

Examples::

    is_negated("No component of small cell carcinoma is identified.", "small cell carcinoma")  # True
    is_negated("Features of adenocarcinoma are not seen.", "adenocarcinoma")                 # True
    is_negated("Invasive carcinoma of no special type.", "invasive carcinoma")               # False
    drop_negated("Adenocarcinoma without necrosis. Negative for mesothelioma.")  # "Adenocarcinoma."
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["POST_CUES", "POST_WINDOW", "PRE_CUES", "PRE_WINDOW", "PSEUDO", "drop_negated", "is_negated",
           "sentences"]

PRE_CUES = ("no evidence of", "no signs of", "no sign of", "negative for", "free of", "absence of", "without",
            "absent", "no", "not")
POST_CUES = ("not identified", "not seen", "not present", "not detected", "not found", "not evident",
             "not favoured", "not favored", "absent", "ruled out", "excluded")
PSEUDO = ("no special type", "not otherwise specified", "no change", "no significant change", "no increase",
          "no interval change", "no longer", "not only", "not necessarily", "not certain",
          "without difficulty", "not ruled out", "not be ruled out", "cannot be ruled out", "not excluded",
          "not be excluded", "cannot be excluded")
PRE_WINDOW = 6    # words after a pre-negation cue that it negates
POST_WINDOW = 5   # words before a post-negation cue that it negates
_PRE_STOPS = frozenset({"is", "are", "was", "were", "identified", "seen", "noted", "present", "detected",
                        "found"})
_POST_STOPS = frozenset({"with", "present", "identified", "seen", "noted", "shows", "showing", "reveals",
                         "demonstrates", "confirmed"})
_PREDICATIVE = (("negative", "for"), ("free", "of"))  # "margins free of tumor": the subject goes too
# what may stand between a mention and a post-negation cue that negates it ("X [component] is not seen")
_FILLER = frozenset({"is", "are", "was", "were", "be", "been", "being", "has", "have", "had", "also",
                     "definitely", "clearly", "entirely", "completely", "therefore", "thus", "component",
                     "components", "elements", "features", "areas", "foci"})
_AUXILIARIES = frozenset({"is", "are", "was", "were", "has", "have", "had", "does", "do", "did", "be"})
_VERB_GROUP = frozenset({"is", "are", "was", "were", "be", "been", "being", "identified", "seen", "noted",
                         "present", "detected", "found", "evident", "not", "also", "definitely", "clearly"})
_CONJUNCTIONS = ("but", "however", "although", "though", "whereas", "except", "nevertheless", "apart from",
                 "aside from")

_WORD = re.compile(r"[^\W_]+(?:[-.'’][^\W_]+)*")
_SENTENCE_END = re.compile(r"[.!?]+(?=\s|$)\s*|\n\s*")
_CLAUSE_BREAK = re.compile(r";|\b(?:" + "|".join(c.replace(" ", r"\s+") for c in _CONJUNCTIONS) + r")\b",
                           re.IGNORECASE)
_TERMINATOR = re.compile(r"[.!?]*\s*\Z")
_DANGLING = re.compile(r"^(?:[\s,;:\-]|(?:and|or|" + "|".join(_CONJUNCTIONS) + r")\b)+|"
                       r"(?:[\s,;:\-]|\b(?:and|or|" + "|".join(_CONJUNCTIONS) + r"))+$", re.IGNORECASE)


def _split(phrases: tuple[str, ...]) -> list[tuple[str, ...]]:
    return sorted((tuple(p.split()) for p in phrases), key=len, reverse=True)  # longest first


_PRE, _POST, _PSEUDO = _split(PRE_CUES), _split(POST_CUES), _split(PSEUDO)


def sentences(text: str) -> list[str]:
    """The sentences of ``text``, each with its end mark and the whitespace after it (they join back to
    ``text``). A sentence ends at ``.``, ``!`` or ``?`` before whitespace or the text end (so "3.4 cm" does
    not end one), or at a newline."""
    out, start = [], 0
    for m in _SENTENCE_END.finditer(text):
        if m.end() > start:
            out.append(text[start:m.end()])
            start = m.end()
    if start < len(text):
        out.append(text[start:])
    return out


@dataclass
class _Words:
    """The words of one sentence: lower-case text, character spans and clause numbers."""

    words: list[str]
    spans: list[tuple[int, int]]
    clause: list[int]
    text: str

    @classmethod
    def of(cls, text: str) -> _Words:
        breaks = [m.start() for m in _CLAUSE_BREAK.finditer(text)]
        words, spans, clause = [], [], []
        for m in _WORD.finditer(text):
            words.append(m.group().lower().replace("’", "'"))
            spans.append(m.span())
            clause.append(sum(b <= m.start() for b in breaks))
        return cls(words, spans, clause, text)

    def find(self, phrase: tuple[str, ...]) -> list[int]:
        """Start indices of ``phrase`` (whole words, one clause)."""
        n = len(phrase)
        return [i for i in range(len(self.words) - n + 1)
                if tuple(self.words[i:i + n]) == phrase and self.clause[i] == self.clause[i + n - 1]]

    def cues(self, phrases: list[tuple[str, ...]]) -> list[tuple[int, int]]:
        """Non-overlapping ``[start, end)`` word ranges of the cues, outside pseudo-negations."""
        taken = [False] * len(self.words)
        for p in _PSEUDO:
            for i in self.find(p):
                taken[i:i + len(p)] = [True] * len(p)
        out = []
        for p in phrases:
            for i in self.find(p):
                if not any(taken[i:i + len(p)]):
                    taken[i:i + len(p)] = [True] * len(p)
                    out.append((i, i + len(p)))
        return sorted(out)

    def pre_scope(self, cue: tuple[int, int]) -> range:
        """Word indices a pre-negation cue negates."""
        end = cue[1]
        while (end < min(cue[1] + PRE_WINDOW, len(self.words)) and self.clause[end] == self.clause[cue[0]]
               and self.words[end] not in _PRE_STOPS
               and not any(c in self.text[self.spans[end - 1][1]:self.spans[end][0]] for c in "()[]:")):
            end += 1
        return range(cue[1], end)

    def post_scope(self, cue: tuple[int, int]) -> range:
        """Word indices a post-negation cue negates."""
        start = cue[0]
        while start > max(cue[0] - POST_WINDOW, 0):
            k = start - 1
            gap = self.text[self.spans[k][1]:self.spans[start][0]]
            if (self.clause[k] != self.clause[cue[0]] or self.words[k] in _POST_STOPS
                    or any(c in gap for c in ",:")):
                break
            start = k
        return range(start, cue[0])


def is_negated(sentence: str, term: str) -> bool:
    """Whether ``term`` is mentioned in ``sentence`` only in negated form.

    Args:
        sentence: A sentence (or a longer text: it is split into sentences and clauses).
        term: A finding, e.g. ``"small cell carcinoma"`` (matched as whole words, case-insensitively;
            punctuation inside it is ignored).

    Returns:
        True when the term occurs and every occurrence lies in the scope of a negation cue of its clause;
        False when it does not occur or at least one mention is affirmed.
    """
    phrase = tuple(w.lower() for w in _WORD.findall(term))
    if not phrase:
        return False
    seen = False
    for sent in sentences(sentence):
        w = _Words.of(sent)
        starts = w.find(phrase)
        if not starts:
            continue
        seen = True
        pre = [w.pre_scope(c) for c in w.cues(_PRE)]
        post_cues = w.cues(_POST)
        post = [(c, w.post_scope(c)) for c in post_cues]
        for s in starts:
            end = s + len(phrase)
            negated_after = any(end - 1 in scope and all(x in _FILLER for x in w.words[end:cue[0]])
                                for cue, scope in post)
            if not any(s in scope for scope in pre) and not negated_after:
                return False
    return seen


def _balanced(body: str) -> str:
    """``body`` without brackets whose partner was cut away."""
    pairs, stack, drop = {")": "(", "]": "["}, [], set()
    for i, ch in enumerate(body):
        if ch in "([":
            stack.append(i)
        elif ch in pairs:
            if stack and body[stack[-1]] == pairs[ch]:
                stack.pop()
            else:
                drop.add(i)
    drop.update(stack)
    return "".join(ch for i, ch in enumerate(body) if i not in drop)


def _tidy(body: str) -> str:
    body = _balanced(body)
    body = re.sub(r"\(\s*\)|\[\s*\]", "", body)
    body = re.sub(r"\s+([,;:])", r"\1", " ".join(body.split()))
    body = re.sub(r"([,;:])(?:\s*[,;:])+", r"\1", body)
    return _DANGLING.sub("", body)


def drop_negated(text: str) -> str:
    """``text`` without its negated clause parts; everything else is kept verbatim.

    In each sentence the words a cue negates (its scope, see the module docstring) are removed together
    with the cue, with the verb that closes a pre-negated phrase ("no necrosis is seen") and with the
    subject of a predicative cue ("margins are free of tumor", "consultation was not requested"):
    "Adenocarcinoma without necrosis." → "Adenocarcinoma."; a sentence left without words goes entirely
    ("Negative for mesothelioma." → ""). Only sentences that lose something are re-spaced (single spaces,
    no dangling comma, bracket or conjunction); the others are returned character for character.

    Args:
        text: Report text (raw or cleaned).

    Returns:
        The text with negated findings removed.
    """
    out = []
    for sent in sentences(text):
        end = _TERMINATOR.search(sent)
        body, tail = sent[:end.start()], sent[end.start():]
        w = _Words.of(body)
        cut = []
        for cue in w.cues(_PRE):
            scope = w.pre_scope(cue)
            if scope:
                last = scope[-1] + 1
                while (last < len(w.words) and w.words[last] in _VERB_GROUP
                       and w.clause[last] == w.clause[cue[0]]):
                    last += 1  # "no necrosis [is seen]"
                first = cue[0]
                if (tuple(w.words[cue[0]:cue[1]]) in _PREDICATIVE
                        or (w.words[cue[0]] == "not" and cue[0] > 0 and w.words[cue[0] - 1] in _AUXILIARIES)):
                    first = w.post_scope(cue).start  # "margins are free of tumor", "x was not requested"
                cut.append((w.spans[first][0], w.spans[last - 1][1]))
        for cue in w.cues(_POST):
            scope = w.post_scope(cue)
            if scope:
                cut.append((w.spans[scope[0]][0], w.spans[cue[1] - 1][1]))
        if not cut:
            out.append(sent)
            continue
        kept, pos = [], 0
        for a, b in sorted(cut):
            if a > pos:
                kept.append(body[pos:a])
            pos = max(pos, b)
        kept.append(body[pos:])
        body = _tidy(" ".join(kept))
        if _WORD.search(body):
            out.append(body + tail)
    result = "".join(out)
    return result if text[-1:].isspace() else result.rstrip()
