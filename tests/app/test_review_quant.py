"""The numeric rules behind the review views: traffic lights, the int8 grid, clipping, summaries."""

from __future__ import annotations

import numpy as np
import pytest

from app.review.quant import (
    INT8,
    UINT8,
    clip_bounds,
    clipped_fraction,
    grid_levels,
    quant_range,
    sqnr_level,
    summarise,
)


@pytest.mark.parametrize(
    ("db", "level"),
    [(35.0, "good"), (30.0, "good"), (25.0, "fair"), (19.9, "poor"), (None, "none"), (float("nan"), "none")],
)
def test_traffic_light(db, level):
    assert sqnr_level(db) == level


def test_quant_range_from_zero_point_and_observed_range():
    assert quant_range({"act_zero_point": 130, "act_scale": 0.1}) == UINT8
    assert quant_range({"act_zero_point": -3, "act_scale": 0.1}) == INT8
    relu = {"act_zero_point": 0, "act_scale": 6.0 / 255, "act_min": 0.0, "act_max": 6.0}
    assert quant_range(relu) == UINT8
    symmetric = {"act_zero_point": 0, "act_scale": 4.0 / 127.5, "act_min": -3.5, "act_max": 4.0}
    assert quant_range(symmetric) == INT8
    assert quant_range({"act_qmin": -127, "act_qmax": 127, "act_zero_point": 0}) == (-127, 127)


def test_grid_is_thinned_by_powers_of_two():
    levels, step = grid_levels(0.1, 128, *UINT8, max_lines=64)
    assert step == 4 and len(levels) == 64
    assert levels[0] == pytest.approx(-12.8)
    levels, step = grid_levels(0.1, 0, -8, 7, max_lines=64)
    assert step == 1 and len(levels) == 16


def test_clipped_fraction_splits_straddling_bins():
    edges = np.array([0.0, 1.0, 2.0, 3.0, 4.0])
    counts = np.array([10.0, 10.0, 10.0, 10.0])
    assert clipped_fraction(counts, edges, 0.0, 4.0) == 0.0
    assert clipped_fraction(counts, edges, 0.5, 3.0) == pytest.approx(15.0 / 40.0)
    lo, hi = clip_bounds(0.5, 2, 0, 255)
    assert (lo, hi) == (-1.0, 126.5)


def test_summaries_of_per_channel_values():
    assert summarise(0.5) == "0.5"
    assert summarise([0.1, 0.3, 0.2]) == "0.1 … 0.3 (3 channels)"
    assert summarise([0, 0, 0]) == "0 (all 3 channels)"
    assert summarise({"min": 0.001, "max": 0.004, "channels": 64}) == "0.001 … 0.004 (64 channels)"
    assert summarise(None) == "—"
