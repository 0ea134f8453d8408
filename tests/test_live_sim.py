"""The live engine on a simulated clock (``support.live_sim``), as the dance board's live
dancers use it: it plays the whole song, on the beat, the same way every time."""

from __future__ import annotations

import numpy as np
from support.live_sim import simulate_live

from opendance.engine.fallback_groove import GrooveGenerator
from opendance.realtime.test_signals import make_track
from opendance.training.metrics import dance as dm


def test_the_live_groove_plays_the_whole_song_on_the_beat():
    track = make_track(10.0, 120, "drums", seed=4)
    run = simulate_live(track.audio, track.sample_rate, GrooveGenerator())
    assert run.motion.n_frames == 300 and run.motion.fps == 30.0
    assert 0.0 < run.first_frame_s < 1.5
    assert run.counts["model"] >= 10 and run.counts["fallback"] == 0
    assert run.locked_share > 0.6
    kb = dm.kinematic_beat_times(run.motion.joints(), 30.0)
    plv, _ = dm.phase_locking(kb[kb > 4.0], track.beat_times_s[track.beat_times_s > 3.5])
    assert plv > 0.6
    again = simulate_live(track.audio, track.sample_rate, GrooveGenerator())
    np.testing.assert_array_equal(again.motion.rotations, run.motion.rotations)   # no wall time in it


def test_a_busy_machine_does_not_change_the_simulated_dance():
    """Where a grid redo splices its motion in depends on what the scheduler takes a chunk to
    cost; the simulation fixes that cost, so a generator that takes longer (a loaded
    machine) dances the same frames."""
    import time

    class Slow(GrooveGenerator):
        def __init__(self):
            super().__init__()
            self.rng = np.random.default_rng(0)

        def generate(self, request):
            time.sleep(float(self.rng.uniform(0.02, 0.08)))
            return super().generate(request)

    track = make_track(12.0, [(0.0, 110.0), (6.0, 132.0)], "drums", seed=2)   # the grid moves at 6 s
    fast = simulate_live(track.audio, track.sample_rate, GrooveGenerator())
    slow = simulate_live(track.audio, track.sample_rate, Slow())
    assert fast.counts.get("regrid", 0) > 0                  # redos were spliced in
    np.testing.assert_array_equal(slow.motion.rotations, fast.motion.rotations)
