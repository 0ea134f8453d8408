"""The ``Motion`` container: an SMPL-24 motion clip at a fixed frame rate."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from opendance import rotations as rot
from opendance.skeleton import FOOT_JOINTS, N_JOINTS, Skeleton


@dataclass
class Motion:
    """A clip of SMPL-24 motion.

    Attributes:
        rotations: (T, 24, 3, 3) float32 local rotation matrices (root orientation first).
        trans: (T, 3) float32 metres, world position of the pelvis (EDGE convention, see
            ``opendance.skeleton``). Y-up, character faces +Z at the zero pose.
        fps: frames per second (the project's internal rate is 30).
    """

    rotations: np.ndarray
    trans: np.ndarray
    fps: float = 30.0

    def __post_init__(self) -> None:
        self.rotations = np.ascontiguousarray(self.rotations, dtype=np.float32)
        self.trans = np.ascontiguousarray(self.trans, dtype=np.float32)
        r, t = self.rotations, self.trans
        if r.ndim != 4 or r.shape[1:] != (N_JOINTS, 3, 3):
            raise ValueError(f"rotations must be (T, {N_JOINTS}, 3, 3), got {r.shape}")
        if t.shape != (r.shape[0], 3):
            raise ValueError(f"trans must be ({r.shape[0]}, 3) to match rotations, got {t.shape}")
        if not (np.isfinite(self.fps) and self.fps > 0):
            raise ValueError(f"fps must be a positive number, got {self.fps}")
        if not (np.isfinite(r).all() and np.isfinite(t).all()):
            raise ValueError("motion contains NaN or infinite values")
        self.fps = float(self.fps)

    # ----------------------------------------------------------------- constructors
    @classmethod
    def from_axis_angle(cls, poses: np.ndarray, trans: np.ndarray, fps: float = 30.0) -> Motion:
        """poses: (T, 72) or (T, 24, 3) axis-angle radians; trans: (T, 3) metres."""
        poses = np.asarray(poses, dtype=np.float64)
        if poses.ndim == 2 and poses.shape[1] == N_JOINTS * 3:
            poses = poses.reshape(-1, N_JOINTS, 3)
        if poses.ndim != 3 or poses.shape[1:] != (N_JOINTS, 3):
            raise ValueError(f"axis-angle poses must be (T, 72) or (T, 24, 3), got {poses.shape}")
        return cls(rot.axis_angle_to_matrix(poses), trans, fps)

    @classmethod
    def from_6d(cls, rot6d: np.ndarray, trans: np.ndarray, fps: float = 30.0) -> Motion:
        """rot6d: (T, 24, 6); trans: (T, 3) metres."""
        return cls(rot.sixd_to_matrix(rot6d), trans, fps)

    @classmethod
    def rest(cls, n_frames: int, fps: float = 30.0, height_m: float = 0.0) -> Motion:
        """A still zero pose with the pelvis at ``height_m``."""
        r = np.broadcast_to(np.eye(3, dtype=np.float32), (n_frames, N_JOINTS, 3, 3))
        t = np.zeros((n_frames, 3), np.float32)
        t[:, 1] = height_m
        return cls(r.copy(), t, fps)

    # ----------------------------------------------------------------- views
    @property
    def n_frames(self) -> int:
        return int(self.rotations.shape[0])

    def __len__(self) -> int:
        return self.n_frames

    @property
    def duration_s(self) -> float:
        return self.n_frames / self.fps

    def axis_angle(self) -> np.ndarray:
        """(T, 24, 3) float32 axis-angle radians."""
        return rot.matrix_to_axis_angle(self.rotations).astype(np.float32)

    def quaternions(self) -> np.ndarray:
        """(T, 24, 4) float32 x, y, z, w."""
        return rot.matrix_to_quat(self.rotations).astype(np.float32)

    def rot6d(self) -> np.ndarray:
        """(T, 24, 6) float32."""
        return rot.matrix_to_6d(self.rotations).astype(np.float32)

    def joints(self, skeleton: Skeleton | None = None) -> np.ndarray:
        """(T, 24, 3) float32 world joint positions in metres (NumPy FK)."""
        from opendance.fk_numpy import forward_kinematics
        return forward_kinematics(self.rotations, self.trans, skeleton).astype(np.float32)

    def foot_height_range(self, skeleton: Skeleton | None = None) -> tuple[float, float]:
        """(min, max) over frames of the lowest foot joint's height, metres."""
        low = self.joints(skeleton)[:, list(FOOT_JOINTS), 1].min(axis=1)
        return float(low.min()), float(low.max())

    # ----------------------------------------------------------------- editing
    def slice(self, start: int, stop: int | None = None) -> Motion:
        """Frames [start, stop) as a new Motion (copies)."""
        s = slice(start, stop)
        return Motion(self.rotations[s].copy(), self.trans[s].copy(), self.fps)

    def __getitem__(self, item: slice) -> Motion:
        if not isinstance(item, slice) or item.step not in (None, 1):
            raise TypeError("Motion supports contiguous slicing only, e.g. motion[10:40]")
        return self.slice(item.start or 0, item.stop)

    def sample(self, frame_pos: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Interpolate at fractional frame positions.

        Args:
            frame_pos: (N,) float frame indices, clamped to [0, T-1].
        Returns:
            (N, 24, 3, 3) rotations (slerp) and (N, 3) translations (linear), float32.
        """
        if self.n_frames == 0:
            raise ValueError("cannot sample an empty motion")
        pos = np.clip(np.asarray(frame_pos, dtype=np.float64), 0, self.n_frames - 1)
        i0 = np.floor(pos).astype(np.int64)
        i1 = np.minimum(i0 + 1, self.n_frames - 1)
        a = pos - i0
        q = self.quaternions()
        qs = rot.quat_slerp(q[i0], q[i1], a[:, None])
        trans = self.trans[i0] * (1 - a[:, None]) + self.trans[i1] * a[:, None]
        return rot.quat_to_matrix(qs).astype(np.float32), trans.astype(np.float32)

    def resample(self, fps: float) -> Motion:
        """The same motion at another frame rate (slerp for rotations, linear for root).

        Frames of the new clip sit at times k / fps for k = 0.. while k / fps <= last frame
        time, so 60 -> 30 FPS keeps exactly every other frame.
        """
        if fps <= 0:
            raise ValueError(f"fps must be positive, got {fps}")
        if fps == self.fps or self.n_frames == 0:
            return Motion(self.rotations.copy(), self.trans.copy(), fps)
        last_t = (self.n_frames - 1) / self.fps
        n_new = int(np.floor(last_t * fps + 1e-6)) + 1
        pos = np.arange(n_new) * (self.fps / fps)
        r, t = self.sample(pos)
        return Motion(r, t, fps)

    def concat(self, other: Motion, blend_frames: int = 0) -> Motion:
        """Append ``other``; with ``blend_frames`` > 0 the seam is cross-faded.

        The last ``blend_frames`` of self and the first of ``other`` overlap and are
        blended with a smoothstep weight (slerp for rotations, linear for the root). The
        root of ``other`` is shifted so that its first overlapping frame meets this clip's
        (no jump in position). Result length: len(self) + len(other) - blend_frames.
        """
        if other.fps != self.fps:
            other = other.resample(self.fps)
        n = int(blend_frames)
        if n < 0 or n > min(self.n_frames, other.n_frames):
            raise ValueError(f"blend_frames must be in [0, {min(self.n_frames, other.n_frames)}], got {n}")
        if n == 0:
            return Motion(np.concatenate([self.rotations, other.rotations]),
                          np.concatenate([self.trans, other.trans]), self.fps)
        shift = self.trans[-n] - other.trans[0]
        o_trans = other.trans + shift
        w = (np.arange(1, n + 1) / (n + 1))
        w = w * w * (3 - 2 * w)  # smoothstep
        qa = rot.matrix_to_quat(self.rotations[-n:])
        qb = rot.matrix_to_quat(other.rotations[:n])
        blend_r = rot.quat_to_matrix(rot.quat_slerp(qa, qb, w[:, None]))
        blend_t = self.trans[-n:] * (1 - w[:, None]) + o_trans[:n] * w[:, None]
        rots = np.concatenate([self.rotations[:-n], blend_r.astype(np.float32), other.rotations[n:]])
        trans = np.concatenate([self.trans[:-n], blend_t.astype(np.float32), o_trans[n:]])
        return Motion(rots, trans, self.fps)
