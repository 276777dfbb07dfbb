"""Preparing real pathology reports (raw OCR of the GDC report PDFs) for a text encoder.

Three steps, each counted so a run can say what it did to its text:

1. **OCR clean-up** (:func:`clean_ocr`): page markers (``--- Page 2 ---``), ``UUID:`` lines, TCGA barcodes,
   barcode residue (runs of ``I``/``l``/``1``/``|`` left by the PDFs' barcode stripes: ``IIIII1111``),
   redaction marks (``Redacted``, ``[REDACTED]``, ``XXXX``), repeated headers and footers (``SURGICAL
   PATHOLOGY REPORT``, ``Final Report``, ``Page 1 of 3``, ``Electronically signed ...``, rules of
   ``=``/``-``), symbol soup (tokens that are mostly OCR symbols) and lines that are mostly non-letters are
   removed; words hyphenated across a line break are joined;
   whitespace is collapsed.
2. **One text per patient** (:func:`one_per_patient`): the rows of a patient that are the same document
   (token-set Jaccard >= ``duplicate_jaccard``, e.g. one PDF OCR'd by two sources) count once, keeping the
   longest cleaned version (the least OCR loss); distinct documents (a biopsy and a resection) are all kept,
   longest first, joined by a blank line. Why: duplicates add no information but would become near-identical
   pairs in a contrastive batch, while distinct reports describe different specimens of the same patient.
3. **Section-aware truncation** (:func:`prioritise_sections`): the text is cut at known section headers and
   the sections are reordered (diagnosis, synoptic summary and comments first; microscopic; specimen, clinical
   history; other text; gross/macroscopic description last), then cut to ``max_tokens`` so that what a
   token-limited encoder reads is the diagnosis, not the gross description.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field

_PAGE = re.compile(r"-{2,}\s*Page\s+\d+\s*-{2,}", re.I)
_UUID = re.compile(r"[QU]UID\s*[:;.]?\s*(?:[0-9A-Za-z.]{1,14}\s*-\s*){2,6}[0-9A-Za-z]{1,14}"  # OCR'd groups
                   r"|\b[QU]UID\s*[:;.]?\s*[0-9A-Fa-f]{6,}[0-9A-Fa-f.\- ]*"
                   r"|UUID[\s:;.\-]*\S*", re.I)  # a garbled rest: the marker and its first token
_BARCODE = re.compile(r"\bT[CO]GA[-*\s]{0,3}\w{2}[-*\s]{0,3}\w{4}(?:\s{0,2}[-.]\s{0,2}\w{2,4}){0,4}\b", re.I)
_GLUED_RESIDUE = re.compile(r"[I|l]{5,}(?=[A-Z])")  # barcode strokes glued to the next word: IIIIIIPART
_REDACTED = re.compile(r"\[?(?:redacted|redaction)\]?|\bX{3,}\b|\*{3,}|#{3,}", re.I)
_HEADERS = re.compile(
    r"\b(?:surgical pathology report|final report|pathology report|page\s+[\dIl]+\s+of\s+[\dIl]+|"
    r"electronically signed(?: out)?(?: by)?|printed(?: on| by)?\s*:?|report status\s*:?\s*final)\b",
    re.I)
_RESIDUE_TOKEN = re.compile(r"[Il1|!i'`^.,:;_\-~*]+")
_LETTERS = re.compile(r"[A-Za-z]")
_PLAIN = set("()/%.,:;-+=<>#&x°")  # punctuation of real report text (counts, sizes, grades)
_RULE = re.compile(r"[=_~\-]{4,}")
_HYPHEN = re.compile(r"([a-z]{2,})-\s*\n\s*([a-z]{2,})")
_SPACE = re.compile(r"[ \t\f\v\u00a0]+")

# section headers, most diagnostic first: (priority, regex)
SECTIONS: tuple[tuple[int, str], ...] = (
    (0, r"(?:final\s+)?(?:pathologic(?:al)?\s+|histologic\s+|surgical\s+pathology\s+)?diagnos[ie]s"),
    (0, r"synoptic(?:\s+report)?|(?:tumou?r\s+)?summary|cancer\s+case\s+summary"),
    (1, r"comments?|note|interpretation|impression"),
    (2, r"microscopic(?:\s+description)?|microscopy"),
    (3, r"specimens?(?:\s+(?:submitted|received|type))?|clinical\s+(?:history|information|notes|data)|"
        r"operative\s+diagnos[ie]s|(?:pre|post)\s*-?\s*op(?:erative)?\s+diagnos[ie]s|history"),
    (5, r"gross(?:\s+description)?|macroscopic(?:\s+description)?|intra-?operative\s+consultation|"
        r"frozen\s+section"),
)
OTHER_PRIORITY = 4
_SECTION = re.compile(r"(?:^|(?<=[.:;]))[ \t]*(" + "|".join(f"(?:{p})" for _, p in SECTIONS)
                      + r")[ \t]*(?:[:;\-]|$)", re.I | re.M)  # a header ends with : ; - or its line
_SECTION_ANYWHERE = re.compile(r"\b(" + "|".join(f"(?:{p})" for _, p in SECTIONS) + r")[ \t]*:", re.I)


@dataclass
class PrepCounts:
    """What preparation did, summed over the reports it saw."""

    rows: int = 0
    no_case: int = 0                     # rows without a case id (not usable)
    patients: int = 0
    empty_rows: int = 0                  # rows with (nearly) no text after clean-up
    page_markers: int = 0
    uuid_lines: int = 0
    barcodes: int = 0
    barcode_residue: int = 0
    redactions: int = 0
    headers: int = 0
    hyphenations: int = 0
    noise_lines: int = 0
    noise_tokens: int = 0
    duplicate_rows: int = 0              # rows dropped as another OCR of the same document
    multi_report_patients: int = 0       # patients with several distinct documents (joined)
    reordered: int = 0                   # texts whose sections were reordered
    truncated: int = 0                   # texts cut to the token budget
    empty_patients: list[str] = field(default_factory=list)

    def summary(self) -> str:
        """One line for the console."""
        return (f"reports: {self.rows} rows ({self.no_case} without a case id) -> {self.patients} patients "
                f"({len(self.empty_patients)} empty after clean-up, {self.empty_rows} empty rows); removed "
                f"{self.barcode_residue} barcode residues, "
                f"{self.barcodes} barcodes, {self.uuid_lines} UUIDs, {self.redactions} redaction marks, "
                f"{self.headers} headers, {self.page_markers} page markers, {self.noise_lines} noise lines "
                f"and "
                f"{self.noise_tokens} symbol tokens; "
                f"joined {self.hyphenations} hyphenations; {self.duplicate_rows} duplicate OCR rows dropped, "
                f"{self.multi_report_patients} patients with several reports joined; {self.reordered} "
                f"reordered diagnosis-first, {self.truncated} cut to the token budget")

    def as_dict(self) -> dict:
        out = asdict(self)
        out["empty_patients"] = len(self.empty_patients)
        return out


def _sub(pattern: re.Pattern, text: str, repl: str = " ") -> tuple[str, int]:
    return pattern.subn(repl, text)


def _drop_residue(line: str, counts: PrepCounts) -> str:
    """A line without barcode residue (a run of 3+ tokens made of ``I l 1 | !`` and punctuation, or one such
    token of 5+ characters; "grade I", "stage III" survive) and without tokens of mostly symbols."""
    tokens = line.split(" ")
    residue = [bool(_RESIDUE_TOKEN.fullmatch(t)) and any(c in "Il1|i" for c in t) for t in tokens]
    drop = [len(t) >= 4 and sum(not (c.isalnum() or c in _PLAIN) for c in t) >= 0.3 * len(t)
            for t in tokens]  # OCR symbol soup
    counts.noise_tokens += sum(drop)
    i = 0
    while i < len(tokens):
        if not residue[i]:
            i += 1
            continue
        j = i
        while j < len(tokens) and residue[j]:
            j += 1
        if j - i >= 3 or any(len(tokens[k]) >= 5 for k in range(i, j)):
            drop[i:j] = [True] * (j - i)
            counts.barcode_residue += 1
        i = j
    return " ".join(t for t, d in zip(tokens, drop) if not d) if any(drop) else line


def clean_ocr(text: str, counts: PrepCounts | None = None) -> str:
    """One OCR'd report with the artefacts listed in the module docstring removed (its lines kept)."""
    counts = counts if counts is not None else PrepCounts()
    text = str(text or "").replace("\r", "\n")
    text, n = _HYPHEN.subn(r"\1\2", text)
    counts.hyphenations += n
    for pattern, name in ((_PAGE, "page_markers"), (_UUID, "uuid_lines"), (_REDACTED, "redactions"),
                          (_BARCODE, "barcodes"), (_HEADERS, "headers")):
        text, n = _sub(pattern, text)
        setattr(counts, name, getattr(counts, name) + n)
    text = _RULE.sub(" ", text)
    text, n = _GLUED_RESIDUE.subn(" ", text)
    counts.barcode_residue += n
    kept = []
    for line in text.split("\n"):
        line = _drop_residue(_SPACE.sub(" ", line).strip(), counts)
        if not line:
            continue
        letters = len(_LETTERS.findall(line))
        if letters < 3 or letters < 0.5 * len(line.replace(" ", "")):
            counts.noise_lines += 1
            continue
        kept.append(line)
    return re.sub(r" +([.,;:])", r"\1", "\n".join(kept)).strip()  # lines kept: section headers start them


def _tokens(text: str) -> set[str]:
    return {w for w in re.findall(r"[a-z]{3,}", text.lower())}


def jaccard(a: str, b: str) -> float:
    """Token-set Jaccard similarity of two texts (words of 3+ letters)."""
    ta, tb = _tokens(a), _tokens(b)
    return len(ta & tb) / len(ta | tb) if ta and tb else 0.0


def one_per_patient(texts: Iterable[str], counts: PrepCounts | None = None,
                    duplicate_jaccard: float = 0.5) -> str:
    """The patient's distinct documents, longest first, joined by a blank line (see the module docstring)."""
    counts = counts if counts is not None else PrepCounts()
    kept: list[str] = []
    for text in sorted((t for t in texts if t), key=len, reverse=True):
        if any(jaccard(text, k) >= duplicate_jaccard for k in kept):
            counts.duplicate_rows += 1
            continue
        kept.append(text)
    if len(kept) > 1:
        counts.multi_report_patients += 1
    return "\n\n".join(kept)


def split_sections(text: str) -> list[tuple[int, str]]:
    """``(priority, text)`` of every section, in document order (the text before the first header has
    ``OTHER_PRIORITY``). A header starts a line or follows a sentence end; in capitals it may stand anywhere
    (one-line OCR)."""
    found = list(_SECTION.finditer(text))
    marks = {m.start(1): m.group(1) for m in found}
    inside = [(m.start(1), m.end(1)) for m in found]
    marks.update({m.start(1): m.group(1) for m in _SECTION_ANYWHERE.finditer(text)  # mid-line: capitals
                  if m.group(1).isupper() and not any(a <= m.start(1) < b for a, b in inside)})
    marks = sorted(marks.items())
    if not marks:
        return [(OTHER_PRIORITY, text)]
    out = []
    if text[:marks[0][0]].strip():
        out.append((OTHER_PRIORITY, text[:marks[0][0]].strip()))
    for (start, header), (end, _) in zip(marks, [*marks[1:], (len(text), "")]):
        priority = next(p for p, pattern in SECTIONS if re.fullmatch(pattern, header.strip(), re.I))
        out.append((priority, text[start:end].strip()))
    return out


def approx_tokens(text: str) -> int:
    """Word-piece count estimate of a BERT tokenizer (1.35 pieces per whitespace word, measured on TCGA
    reports with the MiniLM tokenizer; punctuation counts separately)."""
    return int(1.35 * len(text.split()) + 0.5)


def prioritise_sections(text: str, max_tokens: int | None = None, counts: PrepCounts | None = None,
                        count_tokens: Callable[[str], int] = approx_tokens) -> str:
    """The sections ordered diagnosis-first (stable within a priority), cut to ``max_tokens``."""
    counts = counts if counts is not None else PrepCounts()
    sections = split_sections(text)
    ordered = sorted(sections, key=lambda s: s[0])
    if [s for _, s in ordered] != [s for _, s in sections]:
        counts.reordered += 1
    out = " ".join(" ".join(s.split()) for _, s in ordered)
    if max_tokens is None or count_tokens(out) <= max_tokens:
        return out
    counts.truncated += 1
    words = out.split()
    n = max(1, int(len(words) * max_tokens / max(count_tokens(out), 1)))
    while n > 1 and count_tokens(" ".join(words[:n])) > max_tokens:
        n = int(n * 0.95)
    return " ".join(words[:n])


def prepare_reports(rows: Iterable[tuple[str, str]], max_tokens: int | None = None,
                    min_chars: int = 30) -> tuple[dict[str, str], PrepCounts]:
    """``{case: prepared text}`` from ``(case, raw OCR text)`` rows, and what was done.

    Patients whose cleaned text is shorter than ``min_chars`` get ``""`` (a missing report downstream).
    """
    counts = PrepCounts()
    by_case: dict[str, list[str]] = {}
    for case, raw in rows:
        counts.rows += 1
        if case is None or (isinstance(case, float) and case != case) or not str(case).strip():
            counts.no_case += 1
            continue
        text = clean_ocr(raw, counts)
        if len(text) < min_chars:
            counts.empty_rows += 1
            text = ""
        by_case.setdefault(str(case), []).append(text)
    out = {}
    for case, texts in by_case.items():
        text = one_per_patient(texts, counts)
        if len(text) < min_chars:
            counts.empty_patients.append(case)
            out[case] = ""
            continue
        out[case] = prioritise_sections(text, max_tokens, counts)
    counts.patients = len(by_case)
    return out, counts
