"""tutorial_utils.judge's share interval: the 95 % Wilson score interval the notebooks print beside a judged share."""
from __future__ import annotations

import pytest

from tutorial_utils.judge import format_share, share_interval


@pytest.mark.parametrize("k, n, low, high", [
    (0, 10, 0.0, 0.2775), (10, 10, 0.7225, 1.0), (5, 10, 0.2366, 0.7634),     # Wilson's interval, by hand
    (17, 20, 0.6396, 0.9476), (180, 200, 0.8506, 0.9345), (1, 1, 0.2065, 1.0)])
def test_share_interval_is_wilsons(k, n, low, high):
    lo, hi = share_interval(k, n)
    assert lo == pytest.approx(low, abs=5e-4) and hi == pytest.approx(high, abs=5e-4)


def test_the_interval_contains_the_share_and_narrows_with_n():
    for n in (5, 20, 200):
        for k in range(n + 1):
            lo, hi = share_interval(k, n)
            assert 0 <= lo <= k / n <= hi <= 1
    assert share_interval(100, 200)[1] - share_interval(100, 200)[0] < share_interval(10, 20)[1] - share_interval(10, 20)[0]


@pytest.mark.parametrize("k, n", [(3, 0), (-1, 5), (6, 5), (1.5, 4), (True, 4)])
def test_impossible_counts_are_refused_with_the_reason(k, n):
    with pytest.raises(ValueError, match="share_interval needs"):
        share_interval(k, n)


def test_format_share_prints_the_share_and_its_interval():
    assert format_share(17, 20) == "17/20 = 85 % (95 % interval 64-95 %)"
