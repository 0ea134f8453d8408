"""The procedural dance the live engine plays when the model is late, and ``--groove-only``.

The whole choreographer (``opendance.engine.choreo.choreography.choreograph``: phrases of
moves, sections that come back with variation, the groove, accents, steps with planted
feet) dances a ``LOOP_BARS``-bar routine at a reference tempo once, at construction; it
is then sampled by *phrase position* (beats since the routine's first downbeat, unwrapped
from the beat clock's bar phase and the audio time), so it stays on the beat at any tempo
and a show running on it does not repeat for ``LOOP_BARS`` bars. Sampling costs a slerp
per frame, so the output clock can also use it frame by frame when the generator stalls.
``GrooveGenerator`` wraps it as a ``ChunkGenerator``.

"""

from __future__ import annotations

import atexit
import logging
import math
import os
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from opendance import rotations as rot
from opendance.engine.motion_buffer import LOOKAHEAD_FRAMES
from opendance.motion import Motion
from opendance.skeleton import L_HIP, L_KNEE, N_JOINTS, R_HIP, R_KNEE
from opendance.timing import BEATS_PER_BAR

if TYPE_CHECKING:
    from opendance.engine.choreo.live_sections import SectionState

log = logging.getLogger(__name__)

REF_BPM = 120.0
#: Length of the routine, bars (80 s at 120 BPM; more than 60 s up to 160 BPM).
LOOP_BARS = 40
#: The routine's song structure, (section, bars), adding up to ``LOOP_BARS``: sections come
#: back with variation (``choreography.plan_moves``), builds ramp into choruses.
LOOP_SECTIONS = (("verse", 8), ("build", 4), ("chorus", 8), ("verse", 8), ("build", 4), ("chorus", 8))
#: The routine's last bar eases into its first: frames of cross-fade.
LOOP_BLEND_BARS = 1
# Until the beat clock has its first tempo estimate (~1.5-4.5 s of music), the groove runs
# on a provisional grid: this tempo, a beat at audio time 0 (the stream start). 120 BPM is
# the beat clock's own tempo prior (``BeatClock.prior_bpm``; Ellis, "Beat Tracking by
# Dynamic Programming", 2007) and the most common tempo of dance music.
PROVISIONAL_BPM = 120.0
PELVIS_HEIGHT_M = 0.93  # standing pelvis height of the SMPL template, approximately
#: The routine ``GrooveGenerator`` dances before any control says otherwise: house at
#: energy 0.6, as ``generate`` dances a recorded song (``engine.choreo.song``'s defaults;
#: 0.4 until 2026-12-07, when the live dancer paused on fewer beats than the offline one).
DEFAULT_STYLE, DEFAULT_ENERGY = "house", 0.6
#: Routine energies the live energy control selects from (each a routine made once, in the
#: background, ~0.25-1 s): the control's neutral 0.5 is the default routine's 0.6.
ENERGY_LEVELS = (0.15, 0.3, 0.45, 0.6, 0.75, 0.9)

# Routines asked for by a control are made in a worker *process* (``_routine_pool``), not on
# a thread of the live process: the choreographer runs long NumPy calls that hold the GIL,
# and on a thread they kept the output clock from its frame for up to 10 ms
# (``benchmarks/results/latency.md``, 2026-12-07: 7-10 frames a minute made late while the
# benchmark's controls asked for new energies). The pool starts on the first ask ("spawn": a
# fresh interpreter, nothing of the live threads copied, ~2 s the first time); where it
# cannot start or breaks, routines are made on the thread as before.
_POOL = None
_POOL_LOCK = threading.Lock()
_POOL_BROKEN = False


def _routine_pool():
    """The shared one-process pool for routines, or None after it failed once."""
    global _POOL
    with _POOL_LOCK:
        if _POOL is None and not _POOL_BROKEN:
            import multiprocessing
            from concurrent.futures import ProcessPoolExecutor

            _POOL = ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"),
                                        initializer=_die_with_parent, initargs=(os.getpid(),))
            atexit.register(_close_pool)
        return _POOL


def _die_with_parent(parent_pid: int) -> None:
    """In the routine process: end when the live process ends, however it ends. Killed
    (SIGKILL: no atexit), it would leave this process behind, holding the pipes of its
    stdout and stderr open, so whoever reads them to their end (a shell, a test, a
    supervisor) would wait for ever. A daemon thread looks at the parent twice a second
    and exits once it is gone (``prctl(PR_SET_PDEATHSIG)`` would fire when the *thread*
    that made the pool ends, and the pool is made from whichever thread first asks).

    It also ignores Ctrl-C (SIGINT): a terminal sends it to the whole process group, and
    the worker, interrupted in its wait for work, printed a traceback under the live
    command's own "interrupted" line. The live process stops it (``_close_pool``)."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(0.5)
        os._exit(0)

    threading.Thread(target=watch, name="opendance-routine-parent-watch", daemon=True).start()


def _close_pool() -> None:
    """At exit: stop the routine process (a routine still being made is dropped), before the
    interpreter tears down the modules the pool's shutdown needs."""
    global _POOL
    with _POOL_LOCK:
        pool, _POOL = _POOL, None
    if pool is not None:
        pool.shutdown(wait=True, cancel_futures=True)


def make_routine(fps: float, style: str, energy: float, section: str | None = None) -> GrooveFallback:
    """``GrooveFallback(fps, style, energy, section=section)`` made in the routine process
    (the same object, pickled back), or here when that process cannot run."""
    global _POOL, _POOL_BROKEN
    try:
        pool = _routine_pool()
        if pool is not None:
            return pool.submit(GrooveFallback, fps=fps, style=style, energy=energy, section=section).result()
    except Exception as exc:  # noqa: BLE001 - no processes here (a sandbox, a frozen app): a thread will do
        log.warning("procedural routines are made on a thread (their process failed: %s); the output "
                    "clock may be held up while one is made", exc)
        with _POOL_LOCK:
            _POOL_BROKEN, _POOL = True, None
    return GrooveFallback(fps=fps, style=style, energy=energy, section=section)


@dataclass
class GroovePose:
    """quats (24, 4) float32 x, y, z, w; trans (3,) float32 metres, relative floor position."""

    quats: np.ndarray
    trans: np.ndarray


class GrooveFallback:
    """A ``LOOP_BARS``-bar routine of the procedural choreographer, sampled by beat position.

    Args:
        fps: frame rate the routine is built at (30).
        style: style name passed to the choreographer.
        energy: [0, 1].
        seed: choreography seed.
        section: None: the routine is a song (``LOOP_SECTIONS``: verses, builds and
            choruses in turn); a section name (``engine.choreo.live_sections.SECTIONS``):
            ``LOOP_BARS`` bars of that section alone, for a dancer that takes its sections
            from the music.
    """

    def __init__(self, fps: float = 30.0, style: str = "house", energy: float = DEFAULT_ENERGY, seed: int = 0,
                 section: str | None = None):
        self.fps = float(fps)
        self.section = section
        motion = _procedural_routine(fps, style, energy, seed, section)
        if motion is None:
            motion = _bounce_bar(fps)
            self.kind = "bounce"
        else:
            self.kind = "procedural"
        self._frames_per_beat = self.fps * 60.0 / REF_BPM
        self._quats = motion.quaternions()
        trans = motion.trans.astype(np.float64)
        trans[:, [0, 2]] -= trans[:, [0, 2]].mean(axis=0)
        self._trans = trans.astype(np.float32)
        self.loop_beats = self.n_frames / self._frames_per_beat
        self._anchor: tuple[float, float] | None = None     # (audio s, phrase beats) last placed

    @property
    def n_frames(self) -> int:
        return len(self._quats)

    def bar_position(self, beat_phase: float, downbeat_phase: float) -> float:
        """Beats since the bar's downbeat in [0, 4): from the downbeat phase when known,
        else the beat phase within the first beat of the bar."""
        if downbeat_phase is not None and downbeat_phase >= 0:
            return float(downbeat_phase % 1.0) * BEATS_PER_BAR
        return float(beat_phase % 1.0)

    def bar_position_at(self, tempo_bpm: float, beat_phase: float, downbeat_phase: float,
                        t_audio_s: float) -> float:
        """Bar position (beats, [0, 4)) at audio time ``t_audio_s`` (seconds).

        From the beat clock's phases when it has a tempo (``tempo_bpm`` > 0; once it has
        one, it keeps the last known tempo); before that, from the provisional grid
        (``PROVISIONAL_BPM``, a beat at audio time 0), so the groove keeps moving while the
        clock is still listening instead of holding the pose of phase 0.
        """
        if tempo_bpm > 0 and np.isfinite(tempo_bpm):
            return self.bar_position(beat_phase, downbeat_phase)
        return float(provisional_beat_phase(t_audio_s))

    def phrase_position_at(self, tempo_bpm: float, beat_phase: float, downbeat_phase: float,
                           t_audio_s: float) -> float:
        """Phrase position (beats since a downbeat of the routine, unwrapped) at audio time
        ``t_audio_s``: the bar position of ``bar_position_at`` plus whole bars counted from
        the audio time at the clock's tempo, anchored on the last position placed (so a
        tempo change moves the count by no more than the beats it really gained; calls a
        little behind the last one, like the output clock's underrun pose, land in the same
        bar). Without a downbeat it keeps the beat phase and counts beats; before the clock
        has a tempo it counts on the provisional grid. Feed it to ``sample``.
        """
        t = float(t_audio_s)
        if not (tempo_bpm > 0 and np.isfinite(tempo_bpm)):
            return t * PROVISIONAL_BPM / 60.0
        known_bar = downbeat_phase is not None and np.isfinite(downbeat_phase) and downbeat_phase >= 0
        p = self.bar_position(beat_phase, downbeat_phase if known_bar else -1.0)
        period = BEATS_PER_BAR if known_bar else 1.0
        anchor = self._anchor
        est = t * tempo_bpm / 60.0 if anchor is None else anchor[1] + (t - anchor[0]) * tempo_bpm / 60.0
        u = p + period * round((est - p) / period)
        if anchor is None or t >= anchor[0]:
            self._anchor = (t, u)
        return float(u)

    def sample(self, bar_positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Poses at phrase positions (beats, any real; positions in [0, 4) are the
        routine's first bar): (N, 24, 4) float32 and (N, 3) float32."""
        pos = np.mod(np.asarray(bar_positions, np.float64), self.loop_beats) * self._frames_per_beat
        n = self.n_frames
        i0 = np.floor(pos).astype(np.int64) % n
        i1 = (i0 + 1) % n
        a = pos - np.floor(pos)
        q = rot.quat_slerp(self._quats[i0], self._quats[i1], a[:, None]).astype(np.float32)
        t = (self._trans[i0] * (1 - a[:, None]) + self._trans[i1] * a[:, None]).astype(np.float32)
        return q, t

    def pose(self, beat_phase: float, downbeat_phase: float) -> GroovePose:
        q, t = self.sample(np.array([self.bar_position(beat_phase, downbeat_phase)]))
        return GroovePose(q[0], t[0])


def provisional_beat_phase(t_s: float | np.ndarray) -> float | np.ndarray:
    """Beat phase [0, 1) at time ``t_s`` (seconds since the stream start, scalar or array)
    on the provisional grid: ``PROVISIONAL_BPM``, a beat at 0."""
    return np.mod(np.asarray(t_s, np.float64) * PROVISIONAL_BPM / 60.0, 1.0)


def _procedural_routine(fps: float, style: str, energy: float, seed: int, section: str | None = None
                        ) -> Motion | None:
    """``LOOP_BARS`` bars of the choreographer at REF_BPM with ``LOOP_SECTIONS`` (or, with
    ``section``, that section throughout), made loopable (its last bar eases into the
    first); None if unavailable."""
    try:
        from opendance.engine.choreo.choreography import procedural_dance
    except ImportError:
        log.warning("procedural choreography is not available; the fallback groove is a plain bounce")
        return None
    beat_s = 60.0 / REF_BPM
    n_bars = LOOP_BARS + LOOP_BLEND_BARS
    beats = np.arange(n_bars * BEATS_PER_BAR + 1) * beat_s
    downbeats = beats[::BEATS_PER_BAR]
    sections, bar = [], 0
    for name, bars in (LOOP_SECTIONS if section is None else ((section, LOOP_BARS),)):
        sections.append((name, bar * BEATS_PER_BAR * beat_s, (bar + bars) * BEATS_PER_BAR * beat_s))
        bar += bars
    sections[-1] = (sections[-1][0], sections[-1][1], n_bars * BEATS_PER_BAR * beat_s)
    try:
        motion = procedural_dance(beats, downbeats, n_bars * BEATS_PER_BAR * beat_s, style=style,
                                  energy=energy, seed=seed, sections=sections)
    except Exception as exc:  # noqa: BLE001 - a bad style name etc.: the fallback must still exist
        log.warning("the choreographer failed (%s); the fallback groove is a plain bounce", exc)
        return None
    if motion.fps != fps:
        motion = motion.resample(fps)
    length = round(LOOP_BARS * BEATS_PER_BAR * beat_s * fps)
    blend = round(LOOP_BLEND_BARS * BEATS_PER_BAR * beat_s * fps)
    if len(motion) < length + blend:
        return None
    return make_loop(motion, length, blend)


def make_loop(motion: Motion, length: int, blend: int) -> Motion:
    """Frames [0, length) made to loop: frame ``length - 1`` -> frame 0 is one ordinary step.

    ``motion`` continues ``blend`` frames past ``length``. The routine's net travel is taken
    out, spread over the loop (the root drifts back by at most a few mm per second), so its
    end meets its start; the first ``blend`` frames start as the continuation of the end
    and ease into the routine's own start (rotations by slerp). A clip of ``n`` frames
    loops seamlessly as ``make_loop(clip, n - blend, blend)``.
    """
    if not 0 < blend <= length or length + blend > motion.n_frames:
        raise ValueError(f"make_loop needs 0 < blend <= length and length + blend <= {motion.n_frames} "
                         f"frames, got length {length}, blend {blend}")
    q_all = motion.quaternions().astype(np.float64)
    t_all = motion.trans.astype(np.float64)
    shift = t_all[length] - t_all[0]
    shift[1] = 0.0
    drift = (np.arange(length + blend) / length)[:, None] * shift[None]
    t_fixed = t_all[:length + blend] - drift
    q = q_all[:length].copy()
    t = t_fixed[:length].copy()
    w = (0.5 - 0.5 * np.cos(np.pi * (np.arange(blend) / blend)))[:, None]
    q[:blend] = rot.quat_slerp(q_all[length:length + blend], q_all[:blend], w)
    t[:blend] = t_fixed[length:length + blend] * (1 - w) + t_fixed[:blend] * w
    return Motion(rot.quat_to_matrix(q), t, motion.fps)


def _bounce_bar(fps: float) -> Motion:
    """A minimal knee bounce, down on every beat: the last resort when no choreography
    module is importable."""
    n = round(BEATS_PER_BAR * 60.0 / REF_BPM * fps)
    beat_pos = np.arange(n) / (fps * 60.0 / REF_BPM)
    dip = 0.5 * (1 + np.cos(2 * np.pi * beat_pos))          # 1 on the beat, 0 between
    aa = np.zeros((n, N_JOINTS, 3))
    bend = 0.35 * dip
    aa[:, L_HIP, 0] = aa[:, R_HIP, 0] = -bend
    aa[:, L_KNEE, 0] = aa[:, R_KNEE, 0] = 2 * bend
    trans = np.zeros((n, 3))
    trans[:, 1] = PELVIS_HEIGHT_M - 0.06 * dip
    return Motion.from_axis_angle(aa, trans, fps)


#: Beats (of phrase position) over which a change of routine eases from the old routine's
#: pose into the new one's, from the bar line where it starts.
SWITCH_BLEND_BEATS = 0.5
#: A section the music asked for is danced at least this many beats (a bar) before the next.
MIN_SECTION_BEATS = BEATS_PER_BAR
#: The routine danced for each section the music asks for (``live_sections.SECTIONS``): a
#: breakdown's and a chorus's alone; for a verse (everything that is neither) the song
#: routine (``LOOP_SECTIONS``: verses, builds and choruses in turn), whose variety and
#: size a verse alone lacks (hands 0.33 against 0.56 m, pose change in 2 s 0.061 against
#: 0.079 m at 120 BPM) and which real songs without a drop or a breakdown get throughout.
SECTION_ROUTINE = {"breakdown": "breakdown", "verse": None, "chorus": "chorus"}
#: Frames of music before each chunk the generator is given (``context_frames``): the
#: heard part of it (the chunk itself lies ahead of the audio) gives the music's level.
MUSIC_CONTEXT_FRAMES = 90


class GrooveState(NamedTuple):
    """``GrooveGenerator``'s state after a chunk, all a chunk made again from it needs.

    Attributes:
        done: frames made so far.
        last: the last frame's routine position and step ((unwrapped beats, beats per
            frame), None before any grid).
        music: the section follower's state (``live_sections.SectionState``; None
            before any music or when the dancer does not follow the music).
        key: the routine danced at the last frame: (style, energy, section or None).
        since: phrase position (beats) of the bar line where that routine started (-inf:
            from the start).
        blend_from: the routine being eased out of (its key) while the change is in
            progress, else None.
    """

    done: int
    last: tuple[float, float] | None
    music: SectionState | None = None
    key: tuple[str, float, str | None] | None = None
    since: float = -math.inf
    blend_from: tuple[str, float, str | None] | None = None


class GrooveGenerator:
    """The fallback groove as a ``ChunkGenerator``: dances the procedural routine on the beat
    grid channels of the music window, with no model, counting phrases on from chunk to
    chunk (so it dances the routine, not one bar).

    The default live dancer (``live``, ``play``, ``demo``) and ``--groove-only``. The beat
    and bar phases come from the grid channels (``opendance.engine.music.features``: sin/cos
    of the beat phase at ``SPECTRAL_DIM + 0, 1``, of the bar phase at ``+ 2, 3``; zeros
    when unknown), so it sees exactly what the model sees; until the grid is known it
    dances on the provisional grid (``PROVISIONAL_BPM`` counted from its own frame count),
    so it does not stand still while the beat clock listens.

    It follows the music's sections as ``generate`` does a recorded song's (``follow_music``):
    the heard rows of each window give the music's level against the loudest part so far
    (``engine.choreo.live_sections``), and the routine becomes the breakdown's (calm), the
    song routine (a verse) or the chorus's (``SECTION_ROUTINE``) at the next bar line, eased
    over ``SWITCH_BLEND_BEATS``; style
    and energy follow the controls (``follow_controls``). Routines are made once each, in
    the background (``make_routine``); until one is ready the current one dances.

    Unlike ``generate`` it does not switch to half-time above 135 BPM: tried (routines made
    in half-time at 150 BPM, taken over above 139 BPM), it cost the held-out breakbeat song
    (140 BPM) phase-locking 0.78 -> 0.52 and BAS 0.50 -> 0.40 on the live board.

    ``state``: a ``GrooveState``, so a chunk made again from an earlier state (the
    scheduler's preemption) continues from exactly there.

    Args:
        groove: a routine to dance throughout (no controls, no sections); None: the
            default routines.
        follow_controls: follow the style and energy controls.
        follow_music: take the sections from the music.
    """

    fps = 30.0
    frames_per_token = 4
    context_frames = MUSIC_CONTEXT_FRAMES
    beat_aligned = True      # on the beat by construction: never beat-snapped (engine.api)
    dancer = "procedural"    # what the status line calls its chunks

    def __init__(self, groove: GrooveFallback | None = None, follow_controls: bool = True,
                 follow_music: bool = True):
        self.follow_controls = bool(follow_controls) and groove is None
        self.follow_music = bool(follow_music) and groove is None
        self._start_key = (DEFAULT_STYLE, DEFAULT_ENERGY, None)
        self.groove = groove or GrooveFallback(fps=self.fps, style=DEFAULT_STYLE, energy=DEFAULT_ENERGY,
                                               section=self._start_key[2])
        self._key = self._start_key[:2]          # (style, energy) of the routine danced last
        self._last: tuple[float, float] | None = None    # (unwrapped beats, beats per frame)
        # one routine per (style, energy level, section), made in the background
        # (``make_routine``) when first asked for (only then: a session nobody steers and
        # no music reaches makes nothing)
        self._routines: dict[tuple, GrooveFallback] = {self._start_key: self.groove}
        self._queue: deque[tuple] = deque()
        self._lock = threading.Lock()
        self._worker: threading.Thread | None = None
        self._told: tuple | None = None          # the last routine change logged

    def routine_for(self, controls) -> tuple[str, float]:
        """(style, routine energy) a ``ControlState`` asks for: the style named by its text
        (``choreo.song.STYLE_WORDS``; the current style when it names none), the energy from
        the energy control (0.5 neutral = ``DEFAULT_ENERGY``) or, while that is neutral, from
        energy words in the text; snapped to ``ENERGY_LEVELS``."""
        from opendance.engine.choreo.song import energy_named, style_named

        text = str(getattr(controls, "style", "") or "")
        style = style_named(text) or self._key[0]
        control = float(getattr(controls, "energy", 0.5))
        worded = energy_named(text)
        if abs(control - 0.5) > 1e-6:
            energy = DEFAULT_ENERGY + 0.9 * (control - 0.5)
        elif worded is not None:
            energy = worded
        else:
            energy = DEFAULT_ENERGY
        level = min(ENERGY_LEVELS, key=lambda e: abs(e - energy))
        return style, level

    def prepare(self, wait: bool = False, timeout_s: float = 60.0) -> None:
        """Ask for the routines of every section at the current style and energy (the music
        may call for any of them; about 0.15 s of the routine process each); ``wait``:
        return once they are made (a simulation that must not depend on how fast the
        background is)."""
        if not self.follow_music:
            return
        from opendance.engine.choreo.live_sections import SECTIONS

        keys = [(*self._key, SECTION_ROUTINE[sec]) for sec in SECTIONS]
        with self._lock:
            for key in keys:
                if key not in self._routines:
                    self._ask(key)
        if wait:
            deadline = time.monotonic() + timeout_s
            while any(self._routine(k) is None for k in keys):
                if time.monotonic() > deadline:
                    raise TimeoutError(f"the procedural routines {keys} were not made in {timeout_s:g} s")
                time.sleep(0.01)

    def _routine(self, key: tuple) -> GrooveFallback | None:
        """The routine of ``key`` if it is made; else None (and it is asked for)."""
        with self._lock:
            got = self._routines.get(key)
            if got is None:
                self._ask(key)
            return got

    def _ask(self, key: tuple) -> None:
        """Queue ``key`` (first: the newest wish is served next); start the worker if it is
        not running. Called with the lock held."""
        if key in self._queue:
            self._queue.remove(key)
        self._queue.appendleft(key)
        if self._worker is None:
            self._worker = threading.Thread(target=self._work, name="opendance-groove-routines", daemon=True)
            self._worker.start()

    def _work(self) -> None:
        while True:
            with self._lock:
                if not self._queue:
                    self._worker = None         # under the lock: a later ask starts a new one
                    return
                key = self._queue.popleft()
                if key in self._routines:
                    continue
            routine = make_routine(self.fps, key[0], key[1], key[2])
            with self._lock:
                self._routines[key] = routine

    def _unwrap(self, pos: np.ndarray, bar_known: np.ndarray, beat_known: np.ndarray) -> np.ndarray:
        """Bar / beat positions of a chunk -> phrase positions (beats, unwrapped), counting
        on from the previous chunk: each frame goes to the bar (or, with only the beat
        known, the beat) nearest to where the last frame's step would take it. Frames
        without a grid count on at the last step (before any: ``pos`` is already the
        provisional grid's unwrapped count), so the routine never jumps back."""
        out = pos.astype(np.float64).copy()
        last = self._last
        for i in range(len(out)):
            if not beat_known[i] and not bar_known[i]:
                if last is not None:
                    out[i] = last[0] + last[1]
                last = (out[i], PROVISIONAL_BPM / 60.0 / self.fps if last is None else last[1])
                continue
            period = BEATS_PER_BAR if bar_known[i] else 1.0
            if last is None:
                u = out[i]
                step = PROVISIONAL_BPM / 60.0 / self.fps
            else:
                est = last[0] + last[1]
                u = out[i] + period * round((est - out[i]) / period)
                step = float(np.clip(u - last[0], 0.0, 0.5)) if u > last[0] else last[1]
            out[i] = u
            last = (u, step)
        self._last = last
        return out

    def generate(self, request):
        from opendance.engine.api import GenerationResult
        from opendance.engine.music.features import SPECTRAL_DIM

        n = int(request.n_new_frames)
        st = request.prefix if request.prefix is not None else GrooveState(0, None)
        self._last = st.last
        key = st.key or self._start_key
        music = np.asarray(request.music, np.float64)
        grid = music[-n:, SPECTRAL_DIM:SPECTRAL_DIM + 4]
        beat_known = np.hypot(grid[:, 0], grid[:, 1]) > 0.5
        beat = np.mod(np.arctan2(grid[:, 0], grid[:, 1]) / (2 * np.pi), 1.0)
        bar_known = np.hypot(grid[:, 2], grid[:, 3]) > 0.5
        bar = np.mod(np.arctan2(grid[:, 2], grid[:, 3]) / (2 * np.pi), 1.0)
        provisional = (st.done + np.arange(n)) / self.fps * PROVISIONAL_BPM / 60.0   # beats, unwrapped
        pos = np.where(bar_known, bar * BEATS_PER_BAR, np.where(beat_known, beat, provisional))
        before = self._last[0] if self._last is not None else None
        pos = self._unwrap(pos, bar_known, beat_known)
        # and the frames after the chunk, counted on at the last step: the next chunk
        # starts there unless the beat clock moves, so its seam needs no correction
        ahead = self._last[0] + self._last[1] * np.arange(1, LOOKAHEAD_FRAMES + 1)
        pos_all = np.concatenate([pos, ahead])

        section_state = st.music
        want = key
        if self.follow_music:
            from opendance.engine.choreo.live_sections import LEVEL_WINDOW_S, follow, row_levels

            heard = int(np.clip(request.spectral_valid_frames, 0, music.shape[0]))
            recent = music[max(0, heard - round(LEVEL_WINDOW_S * self.fps)):heard]
            section_state = follow(st.music, row_levels(recent), n / self.fps)
            if st.music is not None and st.music.section == section_state.section:   # two readings in a row:
                want = (want[0], want[1], SECTION_ROUTINE[section_state.section])   # not a level in passing
        if self.follow_controls and request.controls is not None:
            want = (*self.routine_for(request.controls), want[2])
        since, blend_from = st.since, st.blend_from
        if blend_from is not None and pos[0] - since >= SWITCH_BLEND_BEATS:
            blend_from = None
        switch_at = None
        if want != key:
            dwell = MIN_SECTION_BEATS if want[:2] == key[:2] else SWITCH_BLEND_BEATS
            prev = np.concatenate([[before if before is not None else pos[0] - 1.0], pos[:-1]])
            bar_line = np.floor(pos / BEATS_PER_BAR) * BEATS_PER_BAR       # the bar each frame is in
            lines = np.flatnonzero(bar_line > np.floor(prev / BEATS_PER_BAR) * BEATS_PER_BAR)
            lines = lines[bar_line[lines] - since >= dwell] if lines.size else lines
            if lines.size and self._routine(want) is not None:
                switch_at = int(lines[0])
        if switch_at is None:
            quats, trans = self._sample(key, blend_from, since, pos_all)
        else:
            q0, t0 = self._sample(key, blend_from, since, pos_all[:switch_at])
            since, blend_from = float(np.floor(pos[switch_at] / BEATS_PER_BAR) * BEATS_PER_BAR), key
            key = want
            if (key, since) != self._told:           # once per change (a chunk made again repeats it)
                self._told = (key, since)
                dyn = section_state.dynamics if section_state is not None else math.nan
                what = "" if key[2] is None else f", {key[2]} (music at {dyn:.2f} of its loud range)"
                log.info("procedural dancer: %s at energy %.2f%s, from bar line %g",
                         key[0], key[1], what, since)
            q1, t1 = self._sample(key, blend_from, since, pos_all[switch_at:])
            quats, trans = np.concatenate([q0, q1]), np.concatenate([t0, t1])
        self._key = key[:2]
        self.groove = self._routine(key) or self.groove
        motion = Motion(rot.quat_to_matrix(quats[:n]), trans[:n], self.fps)
        follow_on = Motion(rot.quat_to_matrix(quats[n:]), trans[n:], self.fps)
        state = GrooveState(st.done + n, self._last, section_state, key, since, blend_from)
        return GenerationResult(motion, state, {}, next_motion=follow_on)

    def _sample(self, key: tuple, blend_from: tuple | None, since: float, pos: np.ndarray
                ) -> tuple[np.ndarray, np.ndarray]:
        """Poses of routine ``key`` at phrase positions ``pos`` ((N,) beats): (N, 24, 4),
        (N, 3) float32; eased in from routine ``blend_from`` over ``SWITCH_BLEND_BEATS``
        after phrase position ``since``."""
        routine = self._routine(key) or self.groove
        q, t = routine.sample(pos)
        if blend_from is None or not len(pos):
            return q, t
        w = np.clip((np.asarray(pos, np.float64) - since) / SWITCH_BLEND_BEATS, 0.0, 1.0)
        w = w * w * (3.0 - 2.0 * w)                              # smoothstep
        if w.min() >= 1.0:
            return q, t
        old = self._routine(blend_from) or self.groove
        qo, to = old.sample(pos)
        q = rot.quat_slerp(qo, q, w[:, None]).astype(np.float32)
        t = (to * (1 - w[:, None]) + t * w[:, None]).astype(np.float32)
        return q, t
