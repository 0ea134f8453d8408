"""Dance quality metrics, faithful to the published evaluation code.

Everything takes joint positions ``(T, 24, 3)`` in metres (SMPL-24, AIST++ order, Y-up)
at a stated ``fps``, or ``Motion`` clips for ``evaluate``.

=================  =====================================================================
metric             definition and source (see each module for the exact formula)
=================  =====================================================================
FID_k, Div_k       72-d kinetic features (``kinetic.py``): Bailando (CVPR 2022),
                   lisiyao21/Bailando ``utils/features/kinetic.py``, ``metrics_new.py``
FID_g, Div_g       32-d geometric / "manual" features (``geometric.py``): Bailando
                   ``utils/features/manual_new.py`` after Mueller et al. 2005
                   (Bailando's code names FID_g ``fid_m``)
BAS                beat alignment (``bas.py``), two variants: Bailando's (mean over
                   music beats) and FACT's (mean over motion beats; google-research/mint)
PFC                physical foot contact (``physics.py``): EDGE (CVPR 2023),
                   Stanford-TML/EDGE ``eval/eval_pfc.py``
foot skating       LODGE (CVPR 2024) ``calc_foot_skating_ratio`` (``physics.py``)
control errors     trajectory / 2D keypoint error at constrained frames (``control.py``),
                   the paper's Table 4
=================  =====================================================================

Protocols. Results depend strongly on them, so ``evaluate`` and the CLI take one:

``"bailando"``: the released code, bit for bit, for every published number.
  * FID_k / FID_g / Div / BAS as Bailando's AIST++ table (which OpenDance's Table 1 copies
    for the ground truth: FID_k 17.10, FID_g 10.60, BAS 0.2374): clips at **60 FPS**, the
    **first 1200 frames (20 s)** of each dance for FID / Div (BAS uses whole clips),
    all **24 SMPL joints** in metres from SMPL forward kinematics, the first frame's
    root moved to the origin ("zero start"); kinetic frame time hard-coded 1/60 s with
    the acceleration precedence slip; geometric velocity tests with a hard-coded
    1/120 s; features normalised by the ground-truth set's mean / std (population)
    + 1e-10; FID with sample covariances.
    Bailando's reference ("gt") set is AIST++ ground-truth dances processed the same way.
  * BAS: sigma 3 frames at 60 FPS (50 ms); Bailando smooths speed with sigma 5 frames.
    FACT's (AI Choreographer, ICCV 2021) variant uses order-10 minima at 60 FPS and, for
    generated dances, skips the 120 seed frames (2 s); we score the whole clip. Both
    codes take music beats from librosa's beat tracker on the music features' frames;
    pass those beat times (seconds) to reproduce them.
  * PFC as EDGE: 30 FPS, DT = 1/30, ankles + toes (7, 8, 10, 11), x 10000, each saved
    dance scored whole and averaged over dances. EDGE's ``test.py`` chains 5 s windows
    (2.5 s stride) into dances of ``--out_length`` seconds (default 30); the clip length
    behind the paper's AIST++ table (ground truth 1.332, EDGE 1.536) is not restated in
    the code, and the per-clip normalisation by the largest root acceleration makes
    PFC depend on clip length: state the length you used.
  * Foot skating as LODGE: 30 FPS, first-frame grounding, 8 cm / 5 cm contact heights,
    1 cm per frame slide threshold, its |mean(dx, dz)| tangent.

``"default"``: ours, physically consistent, for our own comparisons over time.
  * Features at each clip's own rate (the project runs at 30 FPS), whole clips, real
    frame times (1/fps) everywhere, corrected acceleration; the same normalisation and FID,
    except that each ground-truth std is floored at 0.01 (a feature constant over the ground
    truth would otherwise divide by 1e-10 and blow FID up to 1e16).
  * BAS: same formulas, distances in frames at the clip's rate (sigma 3 frames = 100 ms
    at 30 FPS; FACT's order scaled to round(10 * fps / 60)).
  * PFC: EDGE's formula at 30 FPS (there is nothing to correct; other rates are
    resampled to 30 FPS).
  * Foot skating: ground = lowest toe over the clip; contact = toe within 5 cm of it (no
    ankle test); sliding = toe horizontal speed over 0.3 m/s, at the clip's own rate.

Numbers from the two protocols are not comparable with each other; report which one.
"""

from opendance.training.metrics.bas import beat_align_score, motion_beats
from opendance.training.metrics.control import keypoint_error, keypoints_2d, trajectory_error
from opendance.training.metrics.dance import (
    beat_phase_locking,
    dance_report,
    reference_scores,
    reference_stats,
)
from opendance.training.metrics.evaluate import PROTOCOL_SPECS, evaluate
from opendance.training.metrics.fid import diversity, fid, frechet_distance, normalise
from opendance.training.metrics.geometric import manual_features
from opendance.training.metrics.kinetic import kinetic_features
from opendance.training.metrics.physics import foot_skating_ratio, pfc

__all__ = [
    "PROTOCOL_SPECS",
    "beat_align_score",
    "beat_phase_locking",
    "dance_report",
    "diversity",
    "evaluate",
    "fid",
    "foot_skating_ratio",
    "frechet_distance",
    "keypoint_error",
    "keypoints_2d",
    "kinetic_features",
    "manual_features",
    "motion_beats",
    "normalise",
    "pfc",
    "reference_scores",
    "reference_stats",
    "trajectory_error",
]
