import pytest

from mstar.data.manifest import read_manifest, slide_ids
from mstar.errors import MstarError


def _write(tmp_path, text, name="m.csv"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_classification_schema_with_multi_slide_cases(tmp_path):
    m = read_manifest(_write(tmp_path, "case,slide,label,fold\nA,a1;a2,LUAD,train\nB,b1,LUSC,val\n"
                                       "C,c1,LUAD,test\n"))
    assert m.kind == "classification" and m.split_names() == ["fixed"]
    assert m.table["slides"].tolist() == [["a1", "a2"], ["b1"], ["c1"]]
    assert m.table["split"].tolist() == ["train", "val", "test"] and m.classes == ["LUAD", "LUSC"]


def test_cross_validation_fold_columns(tmp_path):
    m = read_manifest(_write(tmp_path, "case,slide,label,fold1,fold2\nA,a,x,train,test\nB,b,y,test,train\n"))
    assert m.split_names() == ["fold1", "fold2"] and m.split_of("fold2").tolist() == ["test", "train"]


def test_survival_schema_and_split_aliases(tmp_path):
    m = read_manifest(_write(tmp_path, "Study,ID,Event,Status,WSI,split\nS,P1,12.5,1,s1.pt;s2.pt,train\n"
                                       "S,P2,30,0,s3.pt,validation\nS,P3,3,1,s4.pt,test\n"))
    assert m.kind == "survival" and m.table["split"].tolist() == ["train", "val", "test"]
    assert m.table["slides"][0] == ["s1", "s2"] and m.table["event"].tolist() == [True, False, True]


def test_multimodal_survival_keeps_the_rna_column(tmp_path):
    m = read_manifest(_write(tmp_path, "Study,ID,Event,Status,WSI,RNA,split\nS,P1,1,1,a.pt,P1.csv,val\n"))
    assert m.rna_column == "rna" and m.table["rna"][0] == "P1.csv"


@pytest.mark.parametrize("text, message", [
    ("foo,bar\n1,2\n", "unrecognised columns"),
    ("Study,ID,Event,WSI,split\nS,P,3,a.pt,train\n", r"a survival manifest needs the column\(s\) Status"),
    ("Study,ID,Evnt,Status,WSI,split\nS,P,3,1,a.pt,train\n", r"needs the column\(s\) Event \(has"),
    ("case,slide,label\nA,a,x\n", "no split column"),
    ("case,slide,label,fold\nA,a,x,holdout\n", "unknown values"),
    ("Study,ID,Event,Status,WSI,split\nS,P,abc,1,a.pt,train\n", "must be numeric"),
    ("Study,ID,Event,Status,WSI,split\nS,P,3,2,a.pt,train\n", "Status must be 0"),
    ("case,slide,label,fold\nA,a,x,train\nA,b,x,test\n", "appear twice"),
    ("case,slide,label,fold\nA,,x,train\n", "name no slide"),
    ("case;slide;label;fold\nA;a;x;train\n", r"looks ';'-separated; save it with commas"),
    # missing-value spellings are never a class (pandas and spreadsheets write NaN, NA, ...)
    ("case,slide,label,fold\nA,a,x,train\nB,b,NaN,train\nC,c,N/A,test\n",
     r"empty or missing label in column 'label', CSV rows \[3, 4\] \(N/A, NaN\); drop those rows"),
    ("case,slide,label,fold\nA,a,x,train\nB,b, ,train\n", r"missing label .* rows \[3\]; drop"),
    # one slide under two cases (here in val and test) would be scored twice
    ("case,slide,label,fold\nA,a,x,val\nB,b;a,x,test\n", "slide a is listed for cases A and B; a"),
    ("Study,ID,Event,Status,WSI,split\nS,P,3,1,a.pt,train\nS,Q,inf,1,b.pt,test\n",
     r"negative, missing or infinite values in CSV rows \[3\]"),
])
def test_bad_manifests_name_the_problem(tmp_path, text, message):
    with pytest.raises(MstarError, match=message):
        read_manifest(_write(tmp_path, text))


def test_na_and_none_may_be_classes_and_readers_without_labels_take_any(tmp_path, caplog):
    text = "case,slide,label,fold\nA,a,None,train\nB,b;b.h5,Low,train\nC,c,NA,test\n"
    m = read_manifest(_write(tmp_path, text))  # invasion None/Low/...: a class, with a warning
    assert m.classes == ["Low", "NA", "None"] and m.table["slides"][1] == ["b", "b"]  # b twice in one case
    assert "NA and None in column 'label' (CSV rows [2, 4]) is read as a class" in caplog.text
    unlabelled = _write(tmp_path, "case,slide,label\nA,a,NaN\nB,b,\n", "cases.csv")  # predict --cases
    assert read_manifest(unlabelled, require_split=False, require_label=False).table["case"].tolist() == [
        "A", "B"]


def test_slide_ids_strip_feature_suffixes():
    assert slide_ids("TCGA-1.abc.pt; TCGA-2.h5") == ["TCGA-1.abc", "TCGA-2"]


def test_synthetic_manifests_parse(tiny_cohort):
    import json

    truth = json.loads((tiny_cohort / "truth.json").read_text())["cases"]
    expected = {"diagnosis": 9, "molecular": 9, "survival": 9,
                "multimodal_survival": sum(c["has_rna"] for c in truth)}  # only cases with RNA
    for name, n in expected.items():
        m = read_manifest(tiny_cohort / "manifests" / f"{name}.csv")
        assert len(m.table) == n
        assert set(m.table["split"]) <= {"train", "val", "test"}
