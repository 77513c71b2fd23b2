"""Series: history packed as doubles, compared by value."""

from __future__ import annotations

import sys
from array import array

import numpy as np
import pytest

from scaler.core.state import Series, pack_floats


@pytest.mark.parametrize(
    "given",
    [
        (1.0, 2.5),
        [1.0, 2.5],
        np.array([1.0, 2.5]),
        np.array([1, 2.5], dtype=np.float32),
        array("d", [1.0, 2.5]),
    ],
    ids=["tuple", "list", "numpy", "numpy-float32", "array"],
)
def test_pack_floats_accepts_every_sequence_of_numbers(given: object) -> None:
    packed = pack_floats(given)  # type: ignore[arg-type]
    assert isinstance(packed, array) and packed.typecode == "d" and list(packed) == [1.0, 2.5]


def test_pack_floats_shares_an_existing_array() -> None:
    a = array("d", [1.0])
    assert pack_floats(a) is a


def test_series_is_packed_and_compares_by_value() -> None:
    s = Series(tuple(float(t) for t in range(240)), tuple(range(240)))
    assert s == Series(np.arange(240.0), list(range(240)))
    assert s != Series(np.arange(240.0), np.zeros(240))
    # 240 points: 8 bytes each plus the array header, against 32 a point as a tuple of floats
    assert sys.getsizeof(s.values) < 240 * 8 + 128


def test_series_needs_as_many_times_as_values() -> None:
    with pytest.raises(ValueError, match="as many times as values"):
        Series((0.0, 15.0), (1.0,))
