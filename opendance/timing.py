"""Project-wide time constants, defined once.

``MOTION_FPS``: the internal motion rate (frames per second); model tokens, music feature
rows and the procedural dancer all run at it, and outputs are interpolated from it.
``BEATS_PER_BAR``: the bar of the beat grid (4/4), for the synthesizer, the dancers and
the bar phase sent to the rigs.
"""

MOTION_FPS: int = 30
BEATS_PER_BAR: int = 4
