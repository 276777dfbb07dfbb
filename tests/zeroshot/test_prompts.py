import json

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F

from mstar.errors import MstarError
from mstar.zeroshot.prompts import check_labels, class_embeddings, read_prompts


def _write(path, doc):
    path.write_text(json.dumps(doc))
    return path


def _fake_encoder(dim=6):
    """Deterministic text → vector map whose norms differ a lot between texts (so the order of
    normalising and averaging matters)."""
    def encode(texts):
        rows = []
        for t in texts:
            g = torch.Generator().manual_seed(sum(map(ord, t)) * 7 + len(t))
            rows.append(torch.randn(dim, generator=g) * (1 + len(t) % 5) ** 2)
        return torch.stack(rows)
    return encode


def test_packaged_prompts_match_the_synthetic_report_wording():
    from mstar.data.synthetic.types import CANCER_TYPES

    p = read_prompts("synthetic_cancer_type")
    assert p.classes == ["BRCA", "LUSC", "KIRC"]
    for code, names in p.classnames.items():
        assert names == list(CANCER_TYPES[code].names)
    assert all("CLASSNAME" in t for t in p.templates)
    assert p.texts("KIRC")[1] == p.templates[1].replace("CLASSNAME", CANCER_TYPES["KIRC"].names[0])


def test_class_embedding_is_mean_of_normalised_then_renormalised(tmp_path):
    path = _write(tmp_path / "p.json", {"0": {"classnames": {"a": ["alpha", "first letter"], "b": "beta"},
                                              "templates": ["CLASSNAME.", "an image of CLASSNAME",
                                                            "x CLASSNAME y"]}})
    prompts = read_prompts(path)
    encode = _fake_encoder()
    w = class_embeddings(encode, prompts, batch_size=2)  # batches split across synonyms
    assert w.shape == (2, 6)
    texts_a = [t.replace("CLASSNAME", s) for s in ["alpha", "first letter"]
               for t in ["CLASSNAME.", "an image of CLASSNAME", "x CLASSNAME y"]]
    expected = F.normalize(F.normalize(encode(texts_a), dim=-1).mean(0), dim=-1)
    assert torch.allclose(w[0], expected, atol=1e-6)
    assert torch.allclose(w.norm(dim=1), torch.ones(2), atol=1e-6)
    raw_mean = F.normalize(encode(texts_a).mean(0), dim=-1)  # the wrong order gives another vector
    assert not torch.allclose(w[0], raw_mean, atol=1e-3)
    # class order can be requested
    w_ba = class_embeddings(encode, prompts, classes=["b", "a"])
    assert torch.allclose(w_ba[1], w[0], atol=1e-6)


@pytest.mark.parametrize("doc, message", [
    ({"0": {"templates": ["CLASSNAME."]}}, "classnames"),
    ({"0": {"classnames": {"a": ["x"], "b": ["y"]}, "templates": ["no placeholder"]}}, "lacks the CLASSNAME"),
    ({"0": {"classnames": {"a": ["x"]}, "templates": ["CLASSNAME."]}}, "at least 2"),
    ({"0": {"classnames": {"a": [], "b": ["y"]}, "templates": ["CLASSNAME."]}}, "classnames['a']"),
    ({"1": {}, "2": {}}, "several prompt sets"),
    ([], "expected"),
])
def test_bad_prompt_files_are_clear_errors(tmp_path, doc, message):
    path = _write(tmp_path / "bad.json", doc)
    with pytest.raises(MstarError, match="bad.json") as err:
        read_prompts(path)
    assert message in str(err.value)


def test_invalid_json_and_unknown_name(tmp_path):
    (tmp_path / "x.json").write_text("{not json")
    with pytest.raises(MstarError, match="not valid JSON"):
        read_prompts(tmp_path / "x.json")
    with pytest.raises(MstarError, match="not found.*synthetic_cancer_type"):
        read_prompts("no_such_prompts")


def test_prompt_manifest_mismatch_both_ways(tmp_path):
    prompts = read_prompts("synthetic_cancer_type")
    check_labels(prompts, ["KIRC", "BRCA", "LUSC", "BRCA"], "m.csv")  # same set: fine
    with pytest.raises(MstarError, match=r"prompt class\(es\) \['KIRC'\] are not labels of m.csv"):
        check_labels(prompts, ["BRCA", "LUSC"], "m.csv")
    with pytest.raises(MstarError,
                       match=r"m.csv: label\(s\) \['LUAD'\] have no entry in .*prompts_synthetic"):
        check_labels(prompts, ["BRCA", "LUSC", "KIRC", "LUAD"], "m.csv")


@pytest.mark.parametrize("labels, message", [
    (["BRCA", "LUSC"], "are not labels of"),
    (["BRCA", "LUSC", "KIRC", "LUAD"], "have no entry in"),
])
def test_commands_check_prompts_before_loading_anything(tmp_path, labels, message):
    from mstar.zeroshot.config import FewShotConfig, ZeroShotConfig
    from mstar.zeroshot.few_shot import few_shot
    from mstar.zeroshot.zero_shot import zero_shot

    rows = [{"case": f"c{i}", "slide": f"s{i}", "label": lab, "fold": "test"} for i, lab in enumerate(labels)]
    pd.DataFrame(rows).to_csv(tmp_path / "m.csv", index=False)
    (tmp_path / "feats").mkdir()
    (tmp_path / "feats" / "s0.h5").write_bytes(b"")
    kw = dict(stage1=str(tmp_path / "missing.pt"), prompts="synthetic_cancer_type",
              manifest=str(tmp_path / "m.csv"), features=str(tmp_path / "feats"), out=str(tmp_path / "runs"))
    for fn, cls in ((zero_shot, ZeroShotConfig), (few_shot, FewShotConfig)):  # the checkpoint does not
        with pytest.raises(MstarError, match=message):                           # even exist: the mismatch
            fn(cls(**kw))                                                        # is found first


def test_manifest_without_split_is_all_test(tmp_path):
    from mstar.zeroshot.cohort import load_eval_cohort

    pd.DataFrame({"case_id": ["a", "b"], "slide_id": ["s1", "s2;s3.svs"], "label": ["y", "x"]}).to_csv(
        tmp_path / "m.csv", index=False)
    cohort = load_eval_cohort(tmp_path / "m.csv", ["x", "y"])
    assert cohort.table["split"].tolist() == ["test", "test"]
    assert cohort.table["slides"].tolist() == [["s1"], ["s2", "s3"]]
    assert np.array_equal(cohort.table["y"], [1, 0])
