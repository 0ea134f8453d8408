"""Import an opendance BVH into Blender at its own frame rate, and render a preview.

    blender -b --python-exit-code 1 --python scripts/blender_import.py -- take.bvh
            [--render out.png] [--frame N] [--save out.blend] [--scale 1.0]

(``--python-exit-code 1`` makes Blender's exit status non-zero if the script fails.)

Why a script: Blender's bundled BVH importer (io_anim_bvh) opens files with mode 'rU',
which Python 3.11 removed, so Debian's Blender 3.4 (Python 3.11) cannot import any BVH
from its menu; and with the menu's defaults a 30 or 60 FPS take plays at the scene's
24 FPS and stops at the scene's last frame (250). This script:

- runs the bundled importer with 'rU' read as 'r' (only inside the importer module);
- sets the scene's frame rate from the BVH's ``Frame Time`` and its frame range to the
  take's frames (``update_scene_fps`` / ``update_scene_duration``), keys at 1 per frame;
- converts axes the way the menu does (BVH Y up, -Z forward -> Blender Z up): the
  dancer, who faces +Z in the BVH, faces Blender's front view (-Y);
- gives every bone a capsule-like mesh (an armature does not render) and, with
  ``--render``, renders one frame with the Workbench engine, a floor and a camera
  framing the dancer (``--frame``: which frame, default the middle of the take);
- ``--save`` writes a .blend to open in the Blender UI.

It prints one line ``opendance-blender {json}`` (fps, frame range, bones, files) for
scripts and tests. Runs only inside Blender (``bpy``); opendance need not be installed
there. Works with Blender 3.4 (Debian 12) and later 3.x / 4.x.
"""

from __future__ import annotations

import argparse
import builtins
import json
import math
import os
import sys


def _args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="blender -b --python scripts/blender_import.py --",
                                description="import an opendance BVH at its own fps; render a preview")
    p.add_argument("bvh", help="the BVH file (opendance convert/generate/play --record write them)")
    p.add_argument("--render", metavar="PNG", help="render one frame to this PNG (Workbench)")
    p.add_argument("--frame", type=int, default=None, help="frame to render (default: the middle)")
    p.add_argument("--save", metavar="BLEND", help="save the scene as a .blend file")
    p.add_argument("--scale", type=float, default=1.0, help="scale applied on import (1 for metres)")
    p.add_argument("--resolution", default="960x540", help="render size WxH (default 960x540)")
    return p.parse_args(argv)


def _open_without_rU(file, mode="r", *args, **kwargs):
    """``open`` for the bundled importer: Python 3.11 removed the 'U' mode flag."""
    return builtins.open(file, mode.replace("U", "") or "r", *args, **kwargs)


def import_bvh(path: str, scale: float = 1.0):
    """Import ``path`` with the scene fps and range set from it; returns the armature object."""
    import bpy
    from bpy_extras.io_utils import axis_conversion
    from io_anim_bvh import import_bvh as importer

    importer.open = _open_without_rU  # module global: shadows the builtin for the importer only
    before = set(bpy.data.objects)
    result = importer.load(
        bpy.context, path, target="ARMATURE", rotate_mode="NATIVE", global_scale=scale,
        frame_start=1, use_fps_scale=False, update_scene_fps=True, update_scene_duration=True,
        use_cyclic=False,
        global_matrix=axis_conversion(from_forward="-Z", from_up="Y").to_4x4(),
        report=lambda kind, msg: print(f"bvh import: {msg}"),
    )
    if result != {"FINISHED"}:
        raise SystemExit(f"error: Blender's BVH importer failed on {path}: {result}")
    new = [o for o in bpy.data.objects if o not in before and o.type == "ARMATURE"]
    if not new:
        raise SystemExit(f"error: no armature was imported from {path}")
    # The importer only ever extends the scene (a short take would keep 250 frames): set
    # the range to exactly the take.
    n = bvh_frame_count(path)
    scene = bpy.context.scene
    scene.frame_start = 1
    scene.frame_end = max(1, n)
    scene.frame_set(1)
    return new[0]


def bvh_frame_count(path: str) -> int:
    """The ``Frames:`` count of a BVH's MOTION section."""
    with builtins.open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            if line.strip().lower().startswith("frames:"):
                try:
                    return int(line.split(":", 1)[1])
                except ValueError:
                    break
    raise SystemExit(f"error: {path} has no 'Frames:' line: not a BVH file?")


def add_bone_meshes(arm, radius: float = 0.045):
    """One capsule-like mesh (a cylinder with rounded ends) per bone, following the bone."""
    import bmesh
    import bpy
    from mathutils import Matrix

    mesh = bpy.data.meshes.new("opendance_limb")
    bm = bmesh.new()
    bmesh.ops.create_uvsphere(bm, u_segments=16, v_segments=8, radius=1.0)
    for v in bm.verts:  # stretch the sphere's middle into a unit-long capsule along +Y
        v.co.y = v.co.y * 0.25 + (0.75 if v.co.y > 0 else 0.25 if v.co.y < 0 else 0.5)
    bm.to_mesh(mesh)
    bm.free()
    mesh.polygons.foreach_set("use_smooth", [True] * len(mesh.polygons))
    mat = bpy.data.materials.new("opendance_skin")
    mat.diffuse_color = (0.85, 0.62, 0.45, 1.0)
    mesh.materials.append(mat)

    arm.data.pose_position = "REST"
    bpy.context.view_layer.update()
    count = 0
    for bone in arm.data.bones:
        length = bone.length
        if length < 1e-4:
            continue
        r = radius * (1.8 if "pelvis" in bone.name.lower() or "spine" in bone.name.lower() else 1.0)
        obj = bpy.data.objects.new(f"limb_{bone.name}", mesh)
        bpy.context.scene.collection.objects.link(obj)
        obj.parent = arm
        obj.parent_type = "BONE"
        obj.parent_bone = bone.name
        bpy.context.view_layer.update()
        # bone space: +Y runs head -> tail; the capsule is 1 long along +Y from its origin
        local = bone.matrix_local @ Matrix.Diagonal((r, length, r, 1.0))
        obj.matrix_world = arm.matrix_world @ local
        count += 1
    arm.data.pose_position = "POSE"
    bpy.context.view_layer.update()
    return count


def _bounds(arm):
    """World bounding box (min, max) of the posed bones' heads and tails."""
    from mathutils import Vector

    pts = []
    for pb in arm.pose.bones:
        pts.append(arm.matrix_world @ pb.head)
        pts.append(arm.matrix_world @ pb.tail)
    lo = Vector((min(p.x for p in pts), min(p.y for p in pts), min(p.z for p in pts)))
    hi = Vector((max(p.x for p in pts), max(p.y for p in pts), max(p.z for p in pts)))
    return lo, hi


def render_preview(arm, path: str, frame: int, resolution: tuple[int, int]) -> None:
    """Workbench render of ``frame``: a floor, a camera in front framing the dancer."""
    import bpy
    from mathutils import Vector

    scene = bpy.context.scene
    scene.frame_set(frame)
    lo, hi = _bounds(arm)
    center = (lo + hi) / 2
    height = max(hi.z - lo.z, 0.5)
    bpy.ops.mesh.primitive_plane_add(size=max(6.0, 4 * height), location=(center.x, center.y, lo.z))
    floor = bpy.context.active_object
    floor_mat = bpy.data.materials.new("opendance_floor")
    floor_mat.diffuse_color = (0.32, 0.35, 0.4, 1.0)
    floor.data.materials.append(floor_mat)
    cam_data = bpy.data.cameras.new("opendance_camera")
    cam_data.lens = 40
    cam = bpy.data.objects.new("opendance_camera", cam_data)
    scene.collection.objects.link(cam)
    fov = 2 * math.atan(cam_data.sensor_width / (2 * cam_data.lens))
    dist = 1.35 * height / (2 * math.tan(fov / 2) * resolution[1] / resolution[0]) + 0.5
    cam.location = center + Vector((0.35 * dist, -dist, 0.25 * height))
    cam.rotation_euler = (center - cam.location).to_track_quat("-Z", "Y").to_euler()
    scene.camera = cam
    scene.render.engine = "BLENDER_WORKBENCH"
    scene.display.shading.light = "STUDIO"
    scene.display.shading.color_type = "MATERIAL"
    scene.display.shading.show_shadows = True
    scene.display.shading.show_cavity = True
    scene.render.resolution_x, scene.render.resolution_y = resolution
    scene.render.resolution_percentage = 100
    scene.render.image_settings.file_format = "PNG"
    scene.render.filepath = path
    bpy.ops.render.render(write_still=True)


def main(argv: list[str]) -> int:
    import bpy

    args = _args(argv)
    try:
        w, h = (int(v) for v in args.resolution.lower().split("x"))
    except ValueError:
        raise SystemExit(f"error: --resolution must be WxH, got {args.resolution!r}") from None
    if not os.path.isfile(args.bvh):
        raise SystemExit(f"error: {args.bvh}: no such file")
    # start from an empty scene (the default cube, camera and light are not ours)
    for obj in list(bpy.data.objects):
        bpy.data.objects.remove(obj, do_unlink=True)
    arm = import_bvh(args.bvh, args.scale)
    scene = bpy.context.scene
    limbs = add_bone_meshes(arm)
    fps = scene.render.fps / scene.render.fps_base
    report = {"bvh": args.bvh, "fps": round(fps, 3), "frame_start": scene.frame_start,
              "frame_end": scene.frame_end, "bones": len(arm.data.bones), "limb_meshes": limbs,
              "blender": bpy.app.version_string}
    if args.render:
        frame = args.frame if args.frame is not None else (scene.frame_start + scene.frame_end) // 2
        render_preview(arm, args.render, frame, (w, h))
        report["render"], report["render_frame"] = args.render, frame
    if args.save:
        bpy.ops.wm.save_as_mainfile(filepath=args.save)
        report["saved"] = args.save
    print("opendance-blender " + json.dumps(report), flush=True)
    return 0


if __name__ == "__main__":
    argv = sys.argv[sys.argv.index("--") + 1:] if "--" in sys.argv else []
    try:
        sys.exit(main(argv))
    except SystemExit as exc:
        if isinstance(exc.code, str):  # one line, and a failing exit status even inside Blender
            print(exc.code, file=sys.stderr, flush=True)
            sys.exit(1)
        raise
