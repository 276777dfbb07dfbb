import json

import pytest

from mstar.data.prompts import read_classnames, read_prompts
from mstar.errors import MstarError


def test_classnames_need_no_templates_and_one_class_is_enough(tmp_path):
    path = tmp_path / "classes.json"
    path.write_text(json.dumps({"0": {"classnames": {"MESO": ["mesothelioma", " pleural mesothelioma "]}}}))
    assert read_classnames(path) == {"MESO": ["mesothelioma", "pleural mesothelioma"]}
    with pytest.raises(MstarError, match="zero-shot needs at least 2"):
        read_prompts(path)
    path.write_text(json.dumps({"0": {"classnames": {"MESO": []}}}))
    with pytest.raises(MstarError, match=r"classes.json: classnames\['MESO'\]"):
        read_classnames(path)


def test_packaged_sets_and_the_zeroshot_names_are_the_same_reader():
    from mstar.zeroshot import prompts as zs

    assert zs.read_prompts is read_prompts and zs.read_classnames is read_classnames
    assert list(read_classnames("synthetic_cancer_type")) == ["BRCA", "LUSC", "KIRC"]
    assert len(read_classnames("tcga_cohorts")) == 10
    with pytest.raises(MstarError, match="not found"):
        read_classnames("no_such_set")


def test_zero_shot_with_a_plain_class_mapping_asks_for_templates_in_one_line(tmp_path):
    path = tmp_path / "classes.json"
    path.write_text(json.dumps({"LUAD": ["adenocarcinoma"], "LUSC": ["squamous cell carcinoma"]}))
    assert read_classnames(path) == {"LUAD": ["adenocarcinoma"], "LUSC": ["squamous cell carcinoma"]}
    expected = (r"classes.json: prompt set '0' has class names but no templates, and zero-shot needs them: "
                r"write \{\"0\": .*\"templates\": \[\"an H&E image of CLASSNAME\.\", \.\.\.\]\}\}")
    with pytest.raises(MstarError, match=expected) as err:
        read_prompts(path)
    assert "\n" not in str(err.value)
    path.write_text(json.dumps({"0": {"classnames": {"A": ["a"], "B": ["b"]}, "templates": []}}))
    with pytest.raises(MstarError, match="'templates' must be a non-empty list"):  # present but empty
        read_prompts(path)
