from __future__ import annotations

import json

import pytest

from mstar.errors import MstarError
from mstar.models.report.vocab import BOS_ID, EOS_ID, PAD_ID, UNK_ID, Vocabulary, clean_report, tokenize


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
    assert vocab.itos[4:] == [".", "seen", "tumor"]  # "absent" occurs once
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
    assert json.loads(path.read_text())["words"] == [".", "a", "b"]


def test_load_rejects_other_json(tmp_path):
    path = tmp_path / "x.json"
    path.write_text('{"words": []}')
    with pytest.raises(MstarError, match="not a report vocabulary"):
        Vocabulary.load(path)
    with pytest.raises(MstarError, match="cannot read"):
        Vocabulary.load(tmp_path / "missing.json")
