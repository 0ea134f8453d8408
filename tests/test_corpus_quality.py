"""The corpus' quality claims, checked on a few fresh dances with the metrics module:
PFC well under AIST++'s ground truth, BAS at least AIST++'s, near-zero foot skating."""

from __future__ import annotations

import numpy as np

from opendance.engine.choreo.choreography import choreograph
from opendance.training.metrics import evaluate
from opendance.training.synth.music import STYLES, synthesize_song

AISTPP_GT_PFC = 1.332   # OpenDance / EDGE tables, AIST++ ground truth
AISTPP_GT_BAS = 0.2374  # Bailando / OpenDance tables, AIST++ ground truth


def test_fresh_dances_beat_aistpp_ground_truth_on_pfc_and_bas() -> None:
    motions, beats = [], []
    for i, style in enumerate(STYLES):
        song = synthesize_song(style, 30.0, None, seed=500 + i, sample_rate=8000)
        dance = choreograph(song.beat_times_s, song.downbeat_times_s, 30.0, style, 0.6, 500 + i,
                            song.sections)
        motions.append(dance.motion)
        beats.append(song.beat_times_s)
    res = evaluate(motions, motions, beats, protocol="bailando")
    assert res["PFC"] < 0.1 * AISTPP_GT_PFC
    assert res["BAS_bailando"] > AISTPP_GT_BAS
    assert res["foot_skating_ratio"] < 0.02
    # moving the beats half a beat off the dance must lose the alignment
    off = [b + 0.5 * np.median(np.diff(b)) for b in beats]
    shifted = evaluate(motions, motions, off, protocol="bailando")
    assert shifted["BAS_bailando"] < 0.8 * res["BAS_bailando"]
