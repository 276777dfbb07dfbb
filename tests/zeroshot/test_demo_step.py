import pytest

pytestmark = pytest.mark.slow  # shares a ~30 s trained stage-1 fixture


def test_demo_step_returns_the_key_numbers(trained_checkpoint, zs_cohort, tmp_path):
    from mstar.demo.stage1_steps import step_zero_few_shot

    out = step_zero_few_shot(tmp_path, trained_checkpoint, zs_cohort["manifest"], zs_cohort["features"],
                             reports=zs_cohort["reports"], rna=zs_cohort["rna"], shots=(1, 8), runs=3,
                             bootstrap=100)
    zs = out["zero_shot"]
    assert zs["slide"]["value"] > zs["chance"] + 0.3 and zs["chosen_j"] in (1, 5, 10, 50, 100)
    assert set(out["few_shot"]) == {"text_prototypes", "simpleshot", "linear_probe"}
    assert sorted(out["few_shot"]["linear_probe"]) == [1, 8]
    for d in ("slide_to_report", "slide_to_gene", "slide_to_slide"):
        assert out["retrieval"][d]["r5"] >= out["retrieval"][d]["chance"], d
    assert out["retrieval"]["slide_to_report"]["r5"] > out["retrieval"]["slide_to_report"]["chance"] + 0.2
    assert "zero-shot bal. acc." in out["summary"] and "slide->report R@5" in out["summary"]
    assert (tmp_path / "zeroshot" / "demo" / "metrics.json").exists()
    assert (tmp_path / "fewshot" / "demo" / "runs.csv").exists()
    assert (tmp_path / "retrieval" / "demo" / "metrics.json").exists()
