"""scripts/blender_import.py in a real Blender: our BVH imports at its own fps and length.

Debian's Blender 3.4 (Python 3.11) cannot import any BVH from its menu (its importer opens
files with the removed mode 'rU'); the script works around that, sets the scene's fps and
frame range from the take and renders a Workbench preview. Skips where Blender is not
installed (``apt-get install blender``; it is not part of the project's set-up).
"""

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from opendance.bridges.playback import rig_check_motion
from opendance.exporters.bvh import write_bvh

BLENDER = shutil.which("blender")
SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "blender_import.py"
pytestmark = pytest.mark.skipif(BLENDER is None,
                                reason="Blender is not installed (Debian: apt-get install blender)")


def _run(*args, timeout=180):
    cmd = [BLENDER, "-b", "--factory-startup", "--python-exit-code", "1", "--python", str(SCRIPT), "--"]
    proc = subprocess.run(cmd + [str(a) for a in args], capture_output=True, text=True, timeout=timeout)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("opendance-blender ")]
    return proc, (json.loads(lines[-1].split(" ", 1)[1]) if lines else None)


def test_blender_imports_our_bvh_at_its_fps_and_length_and_renders(tmp_path):
    motion = rig_check_motion(bpm=120.0)   # 30 FPS, 240 frames: Blender's defaults would give 24 FPS, 250
    n = len(motion.trans)
    bvh = tmp_path / "take.bvh"
    write_bvh(motion, bvh)
    png = tmp_path / "preview.png"
    proc, report = _run(bvh, "--render", png, "--frame", 10, "--resolution", "320x240")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert report is not None, proc.stdout[-2000:]
    assert report["fps"] == pytest.approx(motion.fps)   # not Blender's default 24
    assert (report["frame_start"], report["frame_end"]) == (1, n)  # not the default 250
    assert report["bones"] == 24 and report["limb_meshes"] >= 20
    from PIL import Image
    img = np.asarray(Image.open(png).convert("RGB"), dtype=np.float32)
    assert img.shape == (240, 320, 3)
    skin = (img[..., 0] > img[..., 2] + 25)             # the warm mannequin against grey floor / world
    assert skin.sum() > 300, skin.sum()


def test_blender_script_reports_a_missing_file_with_one_line(tmp_path):
    proc, report = _run(tmp_path / "missing.bvh", timeout=120)
    assert proc.returncode != 0 and report is None
    assert "no such file" in proc.stderr and "Traceback" not in proc.stderr
