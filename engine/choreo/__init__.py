"""The procedural choreographer: parametric moves, leg IK, joint limits, whole dances."""
