"""The prefill plan: the worker's guaranteed time, checked against a frame-by-frame simulation."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from rtvc.latency import LatencyBreakdown, plan_prefill


def simulated_worst_slack(block: int, period: int, prefill: int) -> int:
    """Brute force over `period` consecutive blocks (every alignment of blocks against callbacks):
    callback k carries frames [kP, kP + P); a block can be worked on after the callback that brings its
    last frame and must be done before the callback that plays its first frame."""
    b = np.arange(period)
    k_ready = ((b + 1) * block - 1) // period
    k_play = (b * block + prefill) // period
    return int(((k_play - k_ready) * period).min())


@given(
    block=st.integers(min_value=16, max_value=2400),
    period=st.sampled_from([32, 64, 128, 256, 441, 480, 512, 1024]),
    headroom=st.integers(min_value=0, max_value=1000),
)
@settings(max_examples=150, deadline=None)
def test_plan_guarantees_the_headroom_and_is_minimal(block, period, headroom):
    plan = plan_prefill(block, period, headroom)
    assert plan.prefill >= block
    sim = simulated_worst_slack(block, period, plan.prefill)
    assert sim == plan.slack
    assert sim >= max(headroom, 1)
    if plan.prefill > block:  # one frame less would break the guarantee
        assert simulated_worst_slack(block, period, plan.prefill - 1) < max(headroom, 1)


def test_separate_streams_add_one_period():
    a = plan_prefill(960, 256, 192)
    b = plan_prefill(960, 256, 192, separate_streams=True)
    assert b.prefill == a.prefill + 256 and b.slack == a.slack


def test_breakdown_adds_up():
    lat = LatencyBreakdown(48000, device_in=128, block=480, converter=0, prefill=160, device_out=128)
    assert lat.total == 896
    assert lat.to_dict()["ms"]["total"] == round(896 / 48, 3)
    assert lat.describe().startswith("18.7 ms")
