"""The procedural dance corpus: a music synthesizer with exact beats (``music``), a
library of parametric moves defined in beats (``moves``), analytic two-bone leg IK
(``ik``), a choreography grammar that follows song structure (``choreography``), text
descriptions (``text``) and the corpus writer (``corpus``)."""
