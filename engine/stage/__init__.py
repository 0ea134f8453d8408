"""The output stage: motion made fit for a stage before it reaches any sink.

``OutputStage`` (``engine.stage.stage``) chains smoothing, contact detection, the stage
anchor and foot locking; ``StagedMotionBuffer`` runs it on the live path; ``rig`` adapts
the root height for VMC rigs that keep their own proportions. See ``docs/stage.md``.
"""

from opendance.engine.stage.stage import OutputStage, StageConfig, StagedMotionBuffer, ground_offset_m

__all__ = ["OutputStage", "StageConfig", "StagedMotionBuffer", "ground_offset_m"]
