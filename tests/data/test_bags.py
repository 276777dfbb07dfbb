"""collate_bags pads bags of different lengths with zeros, converts to float32 and marks real patches."""

import torch

from mstar.data.bags import collate_bags


def test_collate_pads_with_zeros_even_over_garbage_memory():
    a = torch.full((3, 4), 2.0, dtype=torch.float16)
    b = torch.full((5, 4), -1.0, dtype=torch.float16)
    empty = torch.zeros(0, 4, dtype=torch.float16)
    for _ in range(3):  # torch.empty may hand back memory holding earlier values
        x, mask, target, cases = collate_bags([(a, 1, "A"), (b, 0, "B"), (empty, 1, "E")])
    assert x.dtype == torch.float32 and x.shape == (3, 5, 4)
    assert torch.equal(x[0, :3], a.float()) and torch.equal(x[0, 3:], torch.zeros(2, 4))
    assert torch.equal(x[1], b.float())
    assert torch.equal(x[2], torch.zeros(5, 4))
    assert mask.tolist() == [[True] * 3 + [False] * 2, [True] * 5, [False] * 5]
    assert target.tolist() == [1, 0, 1] and cases == ["A", "B", "E"]


def test_the_store_reads_cases_once_or_lazily_with_the_same_bags(tmp_path):
    import numpy as np
    import pytest

    from mstar.data.bags import BagStore
    from mstar.errors import MstarError
    from tests.tasks._bags import write_bag

    rng = np.random.default_rng(0)
    bags = {s: rng.normal(size=(n, 4)).astype(np.float32) for s, n in (("a", 3), ("b", 2), ("c", 0))}
    for s, x in bags.items():
        write_bag(tmp_path / f"{s}.h5", x)
    cases, slides = ["ab", "c", "z"], [["a", "b"], ["c"], ["missing"]]
    with pytest.raises(MstarError, match="no features for 1 slide"):
        BagStore(tmp_path, cases, slides)
    cached = BagStore(tmp_path, cases, slides, skip_missing=True, dtype=torch.float32)
    lazy = BagStore(tmp_path, cases, slides, skip_missing=True, dtype=torch.float32, cache=False)
    for store in (cached, lazy):
        assert store.cases == ["ab", "c"] and store.dropped == ["z"] and store.dim == 4
        assert store.empty_cases() == ["c"]
        assert torch.equal(store.bag("ab"), torch.from_numpy(np.concatenate([bags["a"], bags["b"]])))
    assert cached.coords[0].shape == (5, 2) and cached.slide_of_patch[0].tolist() == [0, 0, 0, 1, 1]
    write_bag(tmp_path / "d.h5", rng.normal(size=(2, 8)))
    for cache in (True, False):
        with pytest.raises(MstarError, match="case d has 8-d features, others 4-d"):
            BagStore(tmp_path, ["ab", "d"], [["a", "b"], ["d"]], cache=cache)
