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
