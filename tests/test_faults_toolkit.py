"""The fault-injection toolkit itself (``support.faults``): plans fire when
told, wrappers alter exactly what they say and pass everything else through."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from support.faults import (
    FaultPlan,
    FaultyBackend,
    FaultyGenerator,
    FaultySink,
    FaultySource,
    InjectedFault,
    resample_linear,
)

from opendance.realtime.sources import ArraySource


class FakeClock:
    def __init__(self):
        self.t = 100.0

    def __call__(self):
        return self.t


def test_plan_windows_limits_and_manual_cues():
    clk = FakeClock()
    plan = FaultPlan(clock=clk).at("a", 1.0, 0.5).at("b", 2.0, None, limit=2)
    plan.start()
    assert not plan.active("a")
    clk.t += 1.2
    assert plan.active("a") and not plan.active("b")
    clk.t += 0.5
    assert not plan.active("a")
    clk.t += 1.0
    assert plan.active("b") and plan.active("b") and not plan.active("b")      # limit 2
    plan.inject("c")
    assert plan.active("c")
    plan.clear("c")
    assert not plan.active("c")
    plan.inject("d", duration_s=1.0)
    clk.t += 1.01
    assert not plan.active("d")
    assert plan.hits == {"a": 1, "b": 2, "c": 1}


def _source(plan, **kw):
    audio = (np.sin(np.arange(16000) * 0.05) * 0.5).astype(np.float32)
    src = FaultySource(ArraySource(audio, 16000, realtime=False, block_size=400), plan, **kw)
    src.start()
    return src


@pytest.mark.parametrize("kind", ["silence", "clip", "overflow", "nan", "rate"])
def test_source_faults_alter_blocks(kind):
    plan = FaultPlan()
    src = _source(plan)
    clean = src.read()
    plan.inject(kind)
    b = src.read()
    x = b.samples
    if kind == "silence":
        assert not x.any()
    elif kind == "clip":
        assert np.abs(x).max() == 1.0 and np.isfinite(x).all()
    elif kind == "overflow":
        assert np.abs(x).max() > 1.0
    elif kind == "nan":
        assert np.isnan(x).any() and np.isinf(x).any()
    else:
        assert len(x) == 2 * len(clean.samples) and b.sample_rate == 32000 and src.sample_rate == 16000
    plan.clear()
    assert np.isfinite(src.read().samples).all()


def test_source_vanish_raises_and_stall_returns_nothing():
    plan = FaultPlan()
    src = _source(plan)
    plan.inject("vanish")
    with pytest.raises(OSError, match="vanished"):
        src.read()
    plan.clear()
    plan.inject("stall")
    assert src.read(timeout_s=0.01) is None
    plan.clear()
    assert src.read() is not None


def test_resample_linear_keeps_the_signal():
    x = np.sin(np.linspace(0, 2 * np.pi, 100)).astype(np.float32)
    y = resample_linear(x, 2.0)
    assert len(y) == 200 and abs(y.max() - x.max()) < 1e-2


class _Gen:
    fps, frames_per_token, context_frames = 30.0, 4, 8

    def generate(self, request):
        from opendance.engine.api import GenerationResult
        from opendance.motion import Motion
        return GenerationResult(Motion(np.tile(np.eye(3, dtype=np.float32), (4, 24, 1, 1)),
                                       np.zeros((4, 3), np.float32), 30.0), state=None)


def test_generator_faults_and_passthrough():
    plan = FaultPlan()
    g = FaultyGenerator(_Gen(), plan, stall_s=0.0)
    assert g.context_frames == 8 and g.fps == 30.0
    assert np.isfinite(g.generate(None).motion.rotations).all()
    plan.inject("raise")
    with pytest.raises(InjectedFault):
        g.generate(None)
    plan.clear()
    plan.inject("nan")
    assert np.isnan(g.generate(None).motion.rotations).all()


def test_backend_poisons_every_branch():
    from opendance.engine.mct import MCTLogits

    class B:
        name = "fake"

        def logits(self, inputs):
            return MCTLogits(torch.zeros(1, 4, 8), torch.zeros(1, 4, 8), torch.zeros(1, 4, 8))

    plan = FaultPlan()
    be = FaultyBackend(B(), plan)
    assert be.name == "fake" and torch.isfinite(be.logits(None).motion).all()
    plan.inject("nan_logits")
    out = be.logits(None)
    assert all(torch.isnan(t).any() for t in out.as_tuple())
    plan.clear()
    plan.inject("inf_logits")
    out = be.logits(None)
    assert all(torch.isinf(t).any() for t in out.as_tuple())


def test_sink_fault_raises_and_does_not_forward():
    got = []

    class S:
        def send(self, f):
            got.append(f)

    plan = FaultPlan()
    s = FaultySink(S(), plan)
    s.send(1)
    plan.inject("send_error")
    with pytest.raises(OSError):
        s.send(2)
    assert got == [1] and s.sent == 1
