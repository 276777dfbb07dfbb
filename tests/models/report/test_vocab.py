from __future__ import annotations

import json

import pytest

from mstar.errors import MstarError
from mstar.models.report.vocab import (
    BOS_ID,
    EOS_ID,
    NUMBER_TOKENS,
    PAD_ID,
    UNK_ID,
    Vocabulary,
    clean_report,
    number_pieces,
    tokenize,
)


def test_clean_report_follows_histgen_rules():
    raw = ("FINAL DIAGNOSIS: Right breast, lumpectomy: ductal carcinoma, invasive, poorly differentiated "
           "(grade 3). p53 immunostain: wild-type pattern.\nThe tumor measures 3.5 cm.")
    assert clean_report(raw) == ("final diagnosis right breast lumpectomy ductal carcinoma invasive poorly "
                                 "differentiated grade 3 . p53 immunostain wild-type pattern . "
                                 "the tumor measures 3.5 cm .")


def test_clean_report_edge_cases():
    assert clean_report("") == "" and clean_report("  ...  ") == ""
    # list enumerators go, but a grade number before a sentence end stays (HistGen would drop it)
    assert clean_report("1. Tumor, grade 2. 2. Margins free.") == "tumor grade 2 . margins free ."
    assert clean_report("50% of \"cells\" [x] {y} <z> a/b it's a__b") == "50 of cells x y z ab its ab ."
    assert clean_report("Ki-67: 20%; size 2.3 cm.") == "ki-67 20 size 2.3 cm ."
    assert clean_report(clean_report("A b. C d.")) == clean_report("A b. C d.")  # idempotent


def test_tokenize_keeps_sentence_points():
    assert tokenize("A b. C.") == ["a", "b", ".", "c", "."]


def test_vocabulary_min_frequency_and_specials():
    vocab = Vocabulary.build(["tumor seen.", "tumor absent.", "tumor seen."], min_freq=2)
    assert vocab.itos[:4] == ["<pad>", "<bos>", "<eos>", "<unk>"]
    assert [w for w in vocab.itos[4:] if w not in NUMBER_TOKENS] == [".", "seen", "tumor"]  # "absent": once
    assert set(NUMBER_TOKENS) <= set(vocab.itos)  # digits and units whatever min_freq
    assert (PAD_ID, BOS_ID, EOS_ID, UNK_ID) == (0, 1, 2, 3)
    assert vocab.encode("Tumor absent.") == [BOS_ID, vocab.stoi["tumor"], UNK_ID, vocab.stoi["."], EOS_ID]


def test_encode_decode_round_trip_and_truncation():
    reports = ["The tumor measures 2.3 cm. Margins are free.", "Margins are free. The tumor is small."]
    vocab = Vocabulary.build(reports, min_freq=1)
    for r in reports:
        assert vocab.decode(vocab.encode(r)) == clean_report(r)
    ids = vocab.encode(reports[0], max_len=4)
    assert len(ids) == 5 and ids[0] == BOS_ID and ids[-1] == EOS_ID  # 3 tokens + <eos> = max_len
    assert vocab.decode([BOS_ID, vocab.stoi["the"], PAD_ID, vocab.stoi["tumor"], EOS_ID, vocab.stoi["cm"]]) \
        == "the tumor"


def test_save_load(tmp_path):
    vocab = Vocabulary.build(["b a c. a b."], min_freq=2)
    path = tmp_path / "vocab.json"
    vocab.save(path)
    loaded = Vocabulary.load(path)
    assert loaded.itos == vocab.itos and loaded.min_freq == 2
    blob = json.loads(path.read_text())
    assert blob["format"] == "mstar-report-vocab/2" and blob["words"] == vocab.itos[4:]
    assert [w for w in blob["words"] if w not in NUMBER_TOKENS] == [".", "a", "b"]


def test_load_rejects_other_json(tmp_path):
    path = tmp_path / "x.json"
    path.write_text('{"words": []}')
    with pytest.raises(MstarError, match="not a report vocabulary"):
        Vocabulary.load(path)
    with pytest.raises(MstarError, match="cannot read"):
        Vocabulary.load(tmp_path / "missing.json")


def test_numbers_are_spelled_by_digits_and_never_unknown():
    # min_freq 10 (HistGen's) and training reports that never contain a digit
    train = ["The tumour measures several cm. Some of the nodes are free."] * 12
    vocab = Vocabulary.build(train, min_freq=10)
    assert not any(ch.isdigit() for r in train for ch in r)
    text = "tumour measures 3.4 cm; 2 of 11 nodes"
    ids = vocab.encode(text)
    assert UNK_ID not in ids
    assert vocab.tokens(text) == ["tumour", "measures", "3", "@@.", "@@4", "cm", "2", "of", "1", "@@1",
                                  "nodes", "."]
    assert vocab.decode(ids) == clean_report(text) == "tumour measures 3.4 cm 2 of 11 nodes ."
    whole_words = Vocabulary.build(train, min_freq=10, numbers=False)  # HistGen's vocabulary
    assert whole_words.encode(text).count(UNK_ID) == 3  # 3.4, 2, 11


def test_number_pieces_and_mixed_words():
    assert number_pieces("3.4") == ["3", "@@.", "@@4"] and number_pieces("11") == ["1", "@@1"]
    assert number_pieces("ki-67") == ["ki-", "@@6", "@@7"] and number_pieces("tumour") == ["tumour"]
    assert number_pieces("3.4cm") == ["3", "@@.", "@@4", "@@cm"]
    frequent = Vocabulary.build(["ki-67 20 . block a3 ."] * 3, min_freq=3)
    assert frequent.tokens("ki-67 20") == ["ki-67", "2", "@@0", "."]  # a frequent mixed word stays whole
    assert "20" not in frequent.stoi  # plain numbers never do
    rare = Vocabulary.build(["ki-67 20 ."] * 2, min_freq=3)
    assert rare.tokens("ki-67") == ["ki-", "@@6", "@@7", "."]
    # "ki-" is rare: unknown, but its digits survive; glued units and mm2 are always known
    assert rare.decode(rare.encode("Ki-67 3.4cm, 1.25 x 0.5 mm2")) == "<unk>67 3.4cm 1.25 x 0.5 mm2 <unk>"
    both = Vocabulary.build(["ki-67 20 . pt2 n0 . size 3-4 cm ."], min_freq=1)
    for text in ("Ki-67: 20%; size 3-4 cm.", "pT2 N0 (0/11), 1.25 x 0.5 mm2"):
        assert both.decode(both.encode(text)) == clean_report(text)


def test_decode_drops_stray_points_and_leading_glue():
    vocab = Vocabulary.build(["grade 3 ."], min_freq=1)
    s = vocab.stoi
    assert vocab.decode([s["grade"], s["3"], s["@@."], s["."], EOS_ID]) == "grade 3 ."
    assert vocab.decode([s["@@4"], s["@@."], s["@@5"], s["grade"]]) == "4.5 grade"
    assert vocab.decode([s["@@."], s["grade"]]) == "grade"


def test_old_whole_word_vocabularies_still_load_and_encode_whole_words(tmp_path):
    path = tmp_path / "vocab.json"  # as mstar-report-vocab/1 saved it
    path.write_text(json.dumps({"format": "mstar-report-vocab/1", "min_freq": 3,
                                "specials": ["<pad>", "<bos>", "<eos>", "<unk>"],
                                "words": [".", "2.3", "cm", "measures", "the", "tumor"]}))
    old = Vocabulary.load(path)
    assert not old.numbers and len(old) == 10 and old.min_freq == 3
    ids = old.encode("The tumor measures 2.3 cm. It measures 4.1 cm.")
    assert ids[1:6] == [old.stoi[w] for w in ("the", "tumor", "measures", "2.3", "cm")] and UNK_ID in ids
    assert old.decode(ids) == "the tumor measures 2.3 cm . <unk> measures <unk> cm ."
    old.save(tmp_path / "again.json")  # written back in its own format
    assert json.loads((tmp_path / "again.json").read_text())["format"] == "mstar-report-vocab/1"
    tampered = json.loads(path.read_text()) | {"format": "mstar-report-vocab/2", "glue": "@@"}
    path.write_text(json.dumps(tampered))
    with pytest.raises(MstarError, match="token ids would not be"):
        Vocabulary.load(path)
