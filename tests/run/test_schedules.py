import math

import pytest

from mstar.run.schedules import warmup_cosine


def test_warmup_then_cosine_to_the_floor():
    assert warmup_cosine(0, 100, 10, 0.1) == pytest.approx(0.1)
    assert warmup_cosine(9, 100, 10, 0.1) == pytest.approx(1.0)
    assert warmup_cosine(10, 100, 10, 0.1) == pytest.approx(1.0)
    assert warmup_cosine(55, 100, 10, 0.1) == pytest.approx(0.1 + 0.9 * 0.5)
    assert warmup_cosine(100, 100, 10, 0.1) == pytest.approx(0.1)
    assert warmup_cosine(500, 100, 10, 0.1) == pytest.approx(0.1)  # after the end: the floor


def test_no_warmup_and_zero_floor_is_the_plain_half_cosine():
    for step in (0, 13, 50, 99, 100):
        assert warmup_cosine(step, 100, 0) == pytest.approx(0.5 * (1 + math.cos(math.pi * step / 100)))
