"""Consensus neighbours found by stage-1 embeddings: training reports nearest to a slide's embedding."""

import json

import h5py
import numpy as np
import pytest
import torch

from mstar.data.embeddings import read_cohort_embeddings
from mstar.errors import MstarError
from mstar.models.report.consensus import NeighbourBank, consensus_pick, rerank_reports

REPORTS = {"t0": "adenocarcinoma grade 2 .", "t1": "adenocarcinoma grade 3 .", "t2": "small cell carcinoma .",
           "t3": "small cell carcinoma ki67 high ."}


def write_embeddings(path, slide_ids, slide, report, checkpoint="stage1.pt", train_cases=None, case_ids=None,
                     digest="sha256:model-a", reports_digest=None):
    """An ``mstar embed`` file (its layout: mstar.pretrain.stage1_embed); case ids default to slide ids."""
    text = h5py.string_dtype()
    with h5py.File(path, "w") as f:
        f.create_dataset("slide_id", data=np.array(slide_ids, dtype=object), dtype=text)
        f.create_dataset("case_id", data=np.array(case_ids or slide_ids, dtype=object), dtype=text)
        f.create_dataset("slide", data=np.asarray(slide, np.float32))
        f.create_dataset("report", data=np.asarray(report, np.float32))
        f.attrs["checkpoint"] = checkpoint
        if digest:
            f.attrs["checkpoint_digest"] = digest
        if reports_digest:
            f.attrs["reports_digest"] = reports_digest
        if train_cases is not None:
            f.attrs["train_cases"] = json.dumps(list(train_cases))
    return path


@pytest.fixture
def embeddings(tmp_path):
    # 4-d space: axis 0 = adenocarcinoma, axis 1 = small cell. Training reports lie on their class axis
    # (t1 and t3 a little off); the test slide "q" points at small cell although its *slide* embedding is
    # nowhere near any training slide's (slide vectors of training slides sit on axes 2-3): only the
    # cross-modal rule (slide -> report) finds the small-cell reports.
    ids = ["t0", "t1", "t2", "t3", "q", "r"]
    slide = [[0, 0, 1, 0], [0, 0, 1, 0.1], [0, 0, 0, 1], [0, 0, 0.1, 1], [0.1, 1, 0, 0], [1, 0, 0, 0]]
    report = [[1, 0, 0, 0], [1, 0.2, 0, 0], [0, 1, 0, 0], [0.2, 1, 0, 0],
              [np.nan] * 4, [np.nan] * 4]
    return read_cohort_embeddings(write_embeddings(tmp_path / "embeddings.h5", ids, slide, report))


def test_neighbours_are_the_training_reports_nearest_to_the_slide_embedding(embeddings, tmp_path):
    ids = ["t0", "t1", "t2", "t3"]
    bank = NeighbourBank.from_embeddings(embeddings, ids, [REPORTS[s] for s in ids])
    assert bank.space == "stage1" and bank.model == "sha256:model-a"
    bags = {"q": torch.zeros(3, 7), "r": torch.zeros(3, 7)}  # patch features are not used
    queries = bank.queries(bags, embeddings)
    assert torch.allclose(queries["q"].norm(), torch.tensor(1.0))
    assert bank.nearest(queries["q"], 2) == [3, 2]  # the small-cell reports, nearest first
    assert bank.nearest(queries["r"], 2) == [0, 1]  # the adenocarcinoma reports
    out = rerank_reports({"q": "adenocarcinoma grade 2 .", "r": "small cell carcinoma ."}, queries, bank, 2)
    assert out == {"q": consensus_pick("adenocarcinoma grade 2 .", [REPORTS["t3"], REPORTS["t2"]]),
                   "r": consensus_pick("small cell carcinoma .", [REPORTS["t0"], REPORTS["t1"]])}
    assert "small cell" in out["q"] and "adenocarcinoma" in out["r"]
    bank.save(tmp_path / "bank.pt")
    again = NeighbourBank.load(tmp_path / "bank.pt")
    assert (again.space, again.source, again.model) == ("stage1", str(embeddings.path.resolve()),
                                                        "sha256:model-a")
    assert torch.equal(again.vectors, bank.vectors)


def test_missing_vectors_and_other_models_are_one_line_errors(embeddings, tmp_path):
    with pytest.raises(MstarError, match=r"1 training slides have no report embedding \(e.g. q\)"):
        NeighbourBank.from_embeddings(embeddings, ["t0", "q"], ["a", "b"])
    bank = NeighbourBank.from_embeddings(embeddings, ["t0", "t2"], ["a", "b"])
    with pytest.raises(MstarError, match="1 slides to report on have no slide embedding \\(e.g. new\\)"):
        bank.queries({"new": torch.zeros(2, 3)}, embeddings)
    with pytest.raises(MstarError, match="pass the `mstar embed` file"):
        bank.queries({"q": torch.zeros(2, 3)}, None)
    other = read_cohort_embeddings(write_embeddings(tmp_path / "other.h5", ["q"], [[1, 0, 0, 0]],
                                                    [[1, 0, 0, 0]], digest="sha256:model-b"))
    with pytest.raises(MstarError, match="embedded with another stage-1 model"):
        bank.queries({"q": torch.zeros(2, 3)}, other)
    # the same model under another path spelling is the same model (its content digest)
    moved = read_cohort_embeddings(write_embeddings(tmp_path / "moved.h5", ["q"], [[0, 1, 0, 0]],
                                                    [[0, 1, 0, 0]], checkpoint="./elsewhere/stage1.pt"))
    assert torch.allclose(bank.queries({"q": None}, moved)["q"], torch.tensor([0.0, 1, 0, 0]))
    small = read_cohort_embeddings(write_embeddings(tmp_path / "small.h5", ["q"], [[1, 0]], [[1, 0]]))
    with pytest.raises(MstarError, match="stage-1 embeddings of width 2 do not match the run's neighbour"):
        bank.nearest(bank.queries({"q": torch.zeros(1, 3)}, small)["q"], 2)


def test_reading_a_file_that_is_not_an_embeddings_file(tmp_path):
    with pytest.raises(MstarError, match="no such embeddings file"):
        read_cohort_embeddings(tmp_path / "none.h5")
    (tmp_path / "text.h5").write_text("not hdf5")
    with pytest.raises(MstarError, match="cannot read the embeddings file"):
        read_cohort_embeddings(tmp_path / "text.h5")
    with h5py.File(tmp_path / "other.h5", "w") as f:
        f.create_dataset("features", data=np.zeros((2, 3)))
    with pytest.raises(MstarError, match="not an `mstar embed` file"):
        read_cohort_embeddings(tmp_path / "other.h5")


def test_the_cases_the_stage1_model_was_trained_on_are_read(tmp_path):
    path = write_embeddings(tmp_path / "e.h5", ["a", "b", "c"], np.eye(3), np.eye(3), train_cases=["a", "c"])
    emb = read_cohort_embeddings(path)
    assert emb.train_cases == {"a", "c"} and emb.trained_on(["b", "c", "zz"]) == ["c"]
    # the caller's manifest names the case of a slide the file knows only by its slide id
    assert emb.trained_on(["b", "zz"], case_of={"zz": "a"}) == ["zz"]
    assert read_cohort_embeddings(write_embeddings(tmp_path / "f.h5", ["a"], [[1.0]], [[1.0]])).trained_on(
        ["a"]) == []  # not recorded: nothing to check against


def test_a_report_shared_by_several_slides_is_one_neighbour(embeddings):
    # t0 and t1 carry the same case-level report: one bank entry, so it cannot outvote the others
    bank = NeighbourBank.from_embeddings(embeddings, ["t0", "t1", "t2"], ["same .", "same .", "other ."])
    assert bank.reports == ["same .", "other ."] and bank.vectors.shape == (2, 4)
    assert torch.allclose(bank.vectors[1], embeddings.lookup("report", ["t2"], "x")[0])


def test_banks_of_earlier_versions_load_as_pooled_banks(tmp_path):
    torch.save({"vectors": torch.eye(2), "reports": ["a", "b"]}, tmp_path / "old.pt")
    old = NeighbourBank.load(tmp_path / "old.pt")
    assert old.space == "pooled" and old.reports == ["a", "b"] and old.model == ""
    torch.save({"vectors": torch.eye(2), "reports": ["a", "b"], "space": "nope"}, tmp_path / "bad.pt")
    with pytest.raises(MstarError, match="unknown neighbour space 'nope'"):
        NeighbourBank.load(tmp_path / "bad.pt")
