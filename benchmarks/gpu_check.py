"""One command for the GPU paths: build, check against the reference, time; table + JSON.

    python benchmarks/gpu_check.py                   # everything this machine can run
    python benchmarks/gpu_check.py --quick           # smaller sizes, fewer repeats
    python benchmarks/gpu_check.py --only compile,host,onnx
    python benchmarks/gpu_check.py --sanitize        # + compute-sanitizer memcheck of the kernels

Sections (each reports ok / skipped (with the reason) / failed):

* ``env``       torch, CUDA device, cuda-python / NVRTC, nvcc, onnxruntime, TensorRT versions.
* ``compile``   NVRTC compile of kernels/cuda/fk_kernels.cu for sm_90 (and the local GPU's
                arch), no GPU needed; nvcc cubin when nvcc is installed.
* ``host``      the kernels' arithmetic (fk_common.cuh through the C++ host harness) against
                the PyTorch reference, forward and gradients, on the CPU.
* ``kernels``   GPU: CUDA FK / foot-slide outputs and gradients vs the float64 reference on
                random inputs of many sizes; timings (CUDA events) of the kernels against the
                PyTorch reference on the same GPU, and against the memory-bandwidth floor
                (bytes the kernel must move / device-to-device copy bandwidth).
* ``onnx``      MCT -> ONNX export, onnxruntime vs PyTorch (max logit error, token
                agreement), CPU forward latency of onnxruntime and torch at batch 1 and 2.
* ``cuda``      GPU: MCT step latency eager vs CUDA graph at batch 1 (fp32, bf16), bf16
                token agreement vs fp32, and a batch sweep: the largest batch (avatars) whose
                chunk decode stays within the real-time budget.
* ``tensorrt``  GPU + TensorRT: plan build time and latency at batch 1 (skipped when absent).

Memcheck by hand (what ``--sanitize`` runs; needs compute-sanitizer from a CUDA toolkit):

    OPENDANCE_KERNEL_LINEINFO=1 compute-sanitizer --tool memcheck --error-exitcode 1 \\
        python benchmarks/gpu_check.py --only kernels --quick --no-timing

(also ``--tool racecheck`` for the shared-memory reductions, ``--tool initcheck`` for
reads of uninitialised memory; reports name the kernel, e.g. ``od_fk_backward_6d``).

Writes ``--out`` (default benchmarks/results/gpu_check.json). Numbers on a shared CPU
machine are noisy: compare ratios, and GPU numbers only on the same device.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
import traceback
from functools import partial
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # the test tooling: support.*

SECTIONS = ("env", "compile", "host", "kernels", "onnx", "cuda", "tensorrt")
FEET = (7, 8, 10, 11)


def _skip(reason: str) -> dict:
    return {"status": "skipped", "reason": reason, "rows": []}


def _gpu_reason() -> str | None:
    if not torch.cuda.is_available():
        return "no CUDA device (torch.cuda.is_available() is False)"
    return None


def _time_cpu(fn, repeats: int, warmup: int = 3) -> dict:
    for _ in range(warmup):
        fn()
    ts = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        ts.append((time.perf_counter() - t0) * 1e3)
    return {"p50_ms": statistics.median(ts), "p95_ms": float(np.percentile(ts, 95)), "n": repeats}


def _time_gpu(fn, repeats: int, warmup: int = 5) -> dict:
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    ts = []
    for _ in range(repeats):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        fn()
        b.record()
        b.synchronize()
        ts.append(a.elapsed_time(b))
    return {"p50_ms": statistics.median(ts), "p95_ms": float(np.percentile(ts, 95)), "n": repeats}


# ------------------------------------------------------------------ sections
def section_env(args) -> dict:
    info = {"python": platform.python_version(), "torch": torch.__version__, "machine": platform.machine(),
            "cpu_count": os.cpu_count()}
    info["cuda_device"] = torch.cuda.get_device_name() if torch.cuda.is_available() else None
    if torch.cuda.is_available():
        info["compute_capability"] = "sm_{}{}".format(*torch.cuda.get_device_capability())
    try:
        from opendance.kernels import nvrtc

        cc = nvrtc.cuda_core()
        info["cuda_core"] = getattr(cc, "__version__", "?")
        info["nvrtc"] = nvrtc._nvrtc_version(cc)
    except Exception as exc:  # noqa: BLE001
        info["cuda_core"] = f"missing ({exc})"
    from opendance.kernels.nvrtc import find_nvcc

    info["nvcc"] = find_nvcc()
    info["compute_sanitizer"] = shutil.which("compute-sanitizer")
    for mod in ("onnxruntime", "onnx", "tensorrt"):
        try:
            info[mod] = __import__(mod).__version__
        except ImportError:
            info[mod] = None
    rows = [(k, str(v)) for k, v in info.items()]
    return {"status": "ok", "info": info, "rows": rows}


def section_compile(args) -> dict:
    from opendance.kernels import nvrtc

    out, rows = {}, []
    archs = ["sm_90"]
    if torch.cuda.is_available():
        local = "sm_{}{}".format(*torch.cuda.get_device_capability())
        if local not in archs:
            archs.append(local)
    status = "ok"
    for arch in archs:
        try:
            t0 = time.perf_counter()
            built = nvrtc.compile_kernels(arch, use_cache=False)
            dt = time.perf_counter() - t0
            out[f"nvrtc_{arch}"] = {"seconds": dt, "cubin_bytes": len(built.cubin),
                                    "compiler": built.compiler}
            rows.append((f"NVRTC {arch}", f"{dt:.2f} s, {len(built.cubin)} B cubin ({built.compiler})"))
        except nvrtc.KernelUnavailable as exc:
            out[f"nvrtc_{arch}"] = {"error": str(exc)}
            rows.append((f"NVRTC {arch}", f"unavailable: {exc}"))
            status = "partial"
    if nvrtc.find_nvcc():
        try:
            t0 = time.perf_counter()
            path = nvrtc.compile_with_nvcc("sm_90")
            out["nvcc_sm_90"] = {"seconds": time.perf_counter() - t0, "cubin_bytes": path.stat().st_size}
            rows.append(("nvcc sm_90", f"{out['nvcc_sm_90']['seconds']:.2f} s, {path.stat().st_size} B"))
        except nvrtc.KernelUnavailable as exc:
            out["nvcc_sm_90"] = {"error": str(exc)}
            rows.append(("nvcc sm_90", f"failed: {exc}"))
            status = "failed"
    else:
        rows.append(("nvcc sm_90", "skipped: nvcc not found"))
    if not any("error" not in v for v in out.values()):
        status = "failed"
    return {"status": status, **out, "rows": rows}


def section_host(args) -> dict:
    from support import host_check

    from opendance.kernels.fk import foot_slide_loss, forward_kinematics_6d
    from opendance.skeleton import smpl_skeleton

    try:
        host_check.load_harness()
    except Exception as exc:  # noqa: BLE001
        return _skip(f"host harness unavailable: {exc}")
    sk = smpl_skeleton()
    par = np.array(sk.parents)
    g = torch.Generator().manual_seed(0)
    n = 64 if args.quick else 512
    r6 = torch.randn(n, 24, 6, generator=g, dtype=torch.float64, requires_grad=True)
    tr = torch.randn(n, 3, generator=g, dtype=torch.float64, requires_grad=True)
    ref = forward_kinematics_6d(r6, tr)
    out = host_check.fk_forward(r6.detach().numpy(), tr.detach().numpy(), sk.offsets, par)
    go = torch.randn(ref.shape, generator=g, dtype=torch.float64)
    gr, gt = torch.autograd.grad(ref, (r6, tr), go)
    hr, ht = host_check.fk_backward(r6.detach().numpy(), tr.detach().numpy(), sk.offsets, par, go.numpy())
    joints = (torch.randn(4, 64, 24, 3, generator=g, dtype=torch.float64) * 0.1).requires_grad_(True)
    loss = foot_slide_loss(joints, 30.0)
    (gj,) = torch.autograd.grad(loss, joints)
    h_loss, h_grad = host_check.foot_slide(joints.detach().numpy(), 30.0, FEET)
    errs = {"fk_pos_max_abs_m": float(np.abs(out - ref.detach().numpy()).max()),
            "fk_grad_rot_max_rel": float(np.abs(hr - gr.numpy()).max() / max(1.0, float(gr.abs().max()))),
            "fk_grad_trans_max_abs": float(np.abs(ht - gt.numpy()).max()),
            "fs_loss_rel": abs(h_loss - float(loss.detach())) / max(1e-12, float(loss.detach())),
            "fs_grad_max_abs": float(np.abs(h_grad - gj.numpy()).max())}
    tol = {"fk_pos_max_abs_m": 5e-5, "fk_grad_rot_max_rel": 1e-4, "fk_grad_trans_max_abs": 1e-4,
           "fs_loss_rel": 1e-4, "fs_grad_max_abs": 1e-5}
    ok = all(errs[k] <= tol[k] for k in errs)
    rows = [(k, f"{v:.2e} (tol {tol[k]:.0e})") for k, v in errs.items()]
    return {"status": "ok" if ok else "failed", "errors": errs, "tolerances": tol, "rows": rows}


def _bandwidth_gbps() -> float:
    """Device-to-device copy bandwidth (read + write bytes / time), GB/s."""
    x = torch.empty(256 * 1024 * 1024 // 4, dtype=torch.float32, device="cuda")
    y = torch.empty_like(x)
    t = _time_gpu(lambda: y.copy_(x), 20)
    return 2 * x.numel() * 4 / (t["p50_ms"] * 1e-3) / 1e9


def _run_fk(fk, r6, tr):
    with torch.no_grad():
        fk(r6, tr)


def _run_fk_grad(fk, r6, tr):
    torch.autograd.grad(fk(r6, tr).sum(), (r6, tr))


def _run_fs_grad(loss_fn, r6, tr):
    torch.autograd.grad(loss_fn(r6, tr, 30.0), (r6, tr))


def _reference_fs_6d(r6, tr, fps):
    from opendance.kernels.fk import foot_slide_loss, forward_kinematics_6d

    return foot_slide_loss(forward_kinematics_6d(r6, tr), fps)


def section_kernels(args) -> dict:
    why = _gpu_reason()
    if why:
        return _skip(why)
    from opendance.kernels import dispatch
    from opendance.kernels.fk import foot_slide_loss, forward_kinematics_6d
    from opendance.kernels.fk_cuda import foot_slide_loss_6d_cuda, forward_kinematics_6d_cuda

    ok, reason = dispatch.kernels_status("cuda")
    if not ok:
        return {"status": "failed", "reason": f"kernels do not load on this GPU: {reason}", "rows": []}
    rows, checks, timings = [], [], []
    worst_ok = True
    sizes = [(1, 1), (1, 2), (3, 17), (2, 129), (8, 256), (64, 300)]
    for b, t in sizes[:4] if args.quick else sizes:
        g = torch.Generator(device="cuda").manual_seed(b * 1000 + t)
        r6 = torch.randn(b, t, 24, 6, device="cuda", generator=g).requires_grad_(True)
        tr = (torch.randn(b, t, 3, device="cuda", generator=g) * 0.05).requires_grad_(True)
        r64, t64 = r6.detach().double().requires_grad_(True), tr.detach().double().requires_grad_(True)
        out = forward_kinematics_6d_cuda(r6, tr)
        ref = forward_kinematics_6d(r64, t64)
        go = torch.randn_like(out)
        ga, gb = torch.autograd.grad(out, (r6, tr), go)
        ra, rb = torch.autograd.grad(ref, (r64, t64), go.double())
        e_pos = float((out.double() - ref).abs().max())
        e_grad = float((ga.double() - ra).abs().max() / max(1.0, float(ra.abs().max())))
        e_gt = float((gb.double() - rb).abs().max() / max(1.0, float(rb.abs().max())))
        item = {"B": b, "T": t, "pos_max_abs_m": e_pos, "grad_rot_max_rel": e_grad,
                "grad_trans_max_rel": e_gt}
        if t >= 2:
            # Loss reference in float32 too: contacts are thresholds, and float64 joints
            # can fall on the other side of one than the float32 ones do.
            r32, t32 = r6.detach().clone().requires_grad_(True), tr.detach().clone().requires_grad_(True)
            loss = foot_slide_loss_6d_cuda(r6, tr, 30.0, contact_height_m=0.2)
            lref = foot_slide_loss(forward_kinematics_6d(r32, t32), 30.0, contact_height_m=0.2)
            la, lb = torch.autograd.grad(loss, (r6, tr))
            lra, lrb = torch.autograd.grad(lref, (r32, t32))
            item["fs_loss_rel"] = abs(float(loss) - float(lref)) / max(1e-12, abs(float(lref)))
            item["fs_grad_max_rel"] = float(max(
                (la.double() - lra).abs().max() / max(1e-6, float(lra.abs().max())),
                (lb.double() - lrb).abs().max() / max(1e-6, float(lrb.abs().max()))))
        passed = (e_pos < 5e-5 and e_grad < 1e-4 and e_gt < 1e-4 and item.get("fs_loss_rel", 0) < 1e-4
                  and item.get("fs_grad_max_rel", 0) < 1e-3)
        item["pass"] = bool(passed)
        worst_ok &= passed
        checks.append(item)
        rows.append((f"check B={b} T={t}", "pass" if passed else f"FAIL {item}"))
    if not args.no_timing:
        bw = _bandwidth_gbps()
        rows.append(("copy bandwidth", f"{bw:.0f} GB/s"))
        reps = 20 if args.quick else 100
        for b, t in [(1, 32), (16, 256), (64, 256)] + ([] if args.quick else [(256, 1024)]):
            r6 = torch.randn(b, t, 24, 6, device="cuda").requires_grad_(True)
            tr = torch.randn(b, t, 3, device="cuda").requires_grad_(True)
            n = b * t
            fwd_bytes = n * (24 * 6 + 3 + 24 * 3) * 4
            floor_ms = fwd_bytes / (bw * 1e9) * 1e3
            res = {"B": b, "T": t, "bandwidth_floor_fwd_ms": floor_ms}
            res["cuda_fwd"] = _time_gpu(partial(_run_fk, forward_kinematics_6d_cuda, r6, tr), reps)
            res["torch_fwd"] = _time_gpu(partial(_run_fk, forward_kinematics_6d, r6, tr), reps)
            res["cuda_fwd_bwd"] = _time_gpu(partial(_run_fk_grad, forward_kinematics_6d_cuda, r6, tr), reps)
            res["torch_fwd_bwd"] = _time_gpu(partial(_run_fk_grad, forward_kinematics_6d, r6, tr), reps)
            res["cuda_fused_foot_slide_fwd_bwd"] = _time_gpu(
                partial(_run_fs_grad, foot_slide_loss_6d_cuda, r6, tr), reps)
            res["torch_foot_slide_fwd_bwd"] = _time_gpu(partial(_run_fs_grad, _reference_fs_6d, r6, tr), reps)
            timings.append(res)
            rows.append((f"FK fwd B={b} T={t}",
                         (f"cuda {res['cuda_fwd']['p50_ms']:.3f} ms, "
                          f"torch {res['torch_fwd']['p50_ms']:.3f} ms, "
                          f"floor {floor_ms:.4f} ms")))
            rows.append((f"FK fwd+bwd B={b} T={t}",
                         f"cuda {res['cuda_fwd_bwd']['p50_ms']:.3f} ms, "
                         f"torch {res['torch_fwd_bwd']['p50_ms']:.3f} ms"))
            rows.append((f"foot-slide fwd+bwd B={b} T={t}",
                         (f"cuda fused {res['cuda_fused_foot_slide_fwd_bwd']['p50_ms']:.3f} ms, "
                         f"torch {res['torch_foot_slide_fwd_bwd']['p50_ms']:.3f} ms")))
    return {"status": "ok" if worst_ok else "failed", "checks": checks, "timings": timings, "rows": rows}


def _model(preset: str):
    from opendance.engine.mct import build_mct
    from opendance.engine.music.features import FEATURE_DIM, SPECTRAL_DIM

    torch.manual_seed(0)
    return build_mct(preset, music_dim=FEATURE_DIM, spectral_dim=SPECTRAL_DIM, n_motion_codes=512,
                     n_traj_codes=256, n_kpt_codes=512, dropout=0.0).eval()


def section_onnx(args) -> dict:
    try:
        import onnxruntime  # noqa: F401
        import onnxscript  # noqa: F401
    except ImportError as exc:
        return _skip(f"{exc.name} not installed")
    from opendance.engine.backends import TorchBackend
    from opendance.engine.backends.onnx_export import cached_export, example_inputs, export_key, validate_onnx
    from opendance.engine.backends.onnxruntime_backend import OnnxRuntimeBackend

    model = _model(args.preset)
    t0 = time.perf_counter()
    path = cached_export(model)
    export_s = time.perf_counter() - t0
    check = validate_onnx(model, path, shapes=((1, 0), (2, 0), (3, 7)))
    rows = [("export (or cache hit)", f"{export_s:.1f} s -> {path.name}"),
            ("max |logit error|", f"{max(check['max_abs_err'].values()):.2e}"),
            ("token agreement", f"{check['token_agreement']:.4f}")]
    ort_be, torch_be = OnnxRuntimeBackend(model, onnx_path=path), TorchBackend(model)
    lat = {}
    reps = 10 if args.quick else 40
    for b in (1, 2):
        x = example_inputs(model, b, model.cfg.max_tokens)
        lat[f"torch_cpu_b{b}"] = _time_cpu(partial(torch_be.logits, x), reps)
        lat[f"onnxruntime_b{b}"] = _time_cpu(partial(ort_be.logits, x), reps)
        rows.append((f"CPU forward B={b} L={model.cfg.max_tokens}",
                     (f"onnxruntime {lat[f'onnxruntime_b{b}']['p50_ms']:.2f} ms, "
                     f"torch {lat[f'torch_cpu_b{b}']['p50_ms']:.2f} ms")))
    return {"status": "ok", "preset": args.preset, "key": export_key(model), "export_seconds": export_s,
            "validation": check, "latency": lat, "rows": rows}


def section_cuda(args) -> dict:
    why = _gpu_reason()
    if why:
        return _skip(why)
    from opendance.engine.backends import TorchBackend
    from opendance.engine.backends.cuda_backend import CudaGraphBackend, measure_bf16_agreement
    from opendance.engine.backends.onnx_export import example_inputs

    out, rows = {"presets": {}}, []
    reps = 20 if args.quick else 100
    for preset in args.cuda_presets.split(","):
        model = _model(preset)
        n = model.cfg.max_tokens
        res = {}
        x1 = example_inputs(model, 1, n).to("cuda")
        eager = TorchBackend(model, "cuda")
        res["eager_fp32_b1"] = _time_gpu(partial(eager.logits, x1), reps)
        fp32 = CudaGraphBackend(model, "cuda", "fp32")
        bf16 = CudaGraphBackend(model, "cuda", "bf16")
        fp32.warmup(x1)
        bf16.warmup(x1)
        res["graph_fp32_b1"] = _time_gpu(partial(fp32.logits, x1), reps)
        res["graph_bf16_b1"] = _time_gpu(partial(bf16.logits, x1), reps)
        res["bf16_token_agreement"] = measure_bf16_agreement(model, "cuda", batch=4, n_inputs=8)
        # Real time for B avatars: one chunk (chunk_tokens new token steps) needs `steps`
        # forward passes (x2 with CFG) within `headroom` of the chunk's duration.
        chunk_s = args.chunk_tokens * model.cfg.frames_per_token / 30.0
        budget_ms = chunk_s * 1e3 * args.headroom
        passes = args.steps * (2 if args.cfg else 1)
        sweep, best = [], 0
        b = 1
        while b <= args.max_batch:
            xb = example_inputs(model, b, n).to("cuda")
            try:
                fp32.warmup(xb)
                t = _time_gpu(partial(fp32.logits, xb), max(5, reps // 4))
            except torch.cuda.OutOfMemoryError:
                sweep.append({"batch": b, "error": "out of GPU memory"})
                break
            chunk_ms = passes * t["p50_ms"]
            sweep.append({"batch": b, "step_ms": t["p50_ms"], "chunk_ms": chunk_ms,
                          "realtime": chunk_ms <= budget_ms})
            if chunk_ms <= budget_ms:
                best = b
            else:
                break
            b *= 2
        res.update({"batch_sweep": sweep, "largest_realtime_batch": best, "budget_ms": budget_ms,
                    "passes_per_chunk": passes})
        out["presets"][preset] = res
        rows += [(f"[{preset}] step B=1 eager fp32", f"{res['eager_fp32_b1']['p50_ms']:.3f} ms"),
                 (f"[{preset}] step B=1 graph fp32", f"{res['graph_fp32_b1']['p50_ms']:.3f} ms"),
                 (f"[{preset}] step B=1 graph bf16", f"{res['graph_bf16_b1']['p50_ms']:.3f} ms"),
                 (f"[{preset}] bf16 token agreement", json.dumps({k: round(v, 4) for k, v in
                                                                 res["bf16_token_agreement"].items()})),
                 (f"[{preset}] largest real-time batch", (f"{best} (budget {budget_ms:.0f} ms per chunk, "
                                                          f"{passes} passes)"))]
    return {"status": "ok", **out, "rows": rows}


def section_tensorrt(args) -> dict:
    why = _gpu_reason()
    if why:
        return _skip(why)
    from opendance.engine.backends.tensorrt_build import TensorRTUnavailable, import_tensorrt

    try:
        trt = import_tensorrt()
    except TensorRTUnavailable as exc:
        return _skip(str(exc))
    from opendance.engine.backends.onnx_export import example_inputs
    from opendance.engine.backends.tensorrt_backend import TensorRTBackend

    model = _model(args.preset)
    t0 = time.perf_counter()
    be = TensorRTBackend(model, "cuda", precision="fp16")
    build_s = time.perf_counter() - t0
    x = example_inputs(model, 1, model.cfg.max_tokens).to("cuda")
    lat = _time_gpu(lambda: be.logits(x), 20 if args.quick else 100)
    with torch.no_grad():
        ref = model.to("cuda")(x)
    err = float((be.logits(x).motion - ref.motion).abs().max())
    rows = [("TensorRT", str(trt.__version__)), ("build (or cache)", f"{build_s:.1f} s"),
            ("step B=1 fp16", f"{lat['p50_ms']:.3f} ms"), ("max |logit error| vs torch fp32", f"{err:.2e}")]
    return {"status": "ok", "build_seconds": build_s, "latency_b1": lat, "max_abs_err": err, "rows": rows}


def run_sanitizer() -> dict:
    tool = shutil.which("compute-sanitizer")
    if tool is None:
        for root in (os.environ.get("CUDA_HOME"), "/usr/local/cuda"):
            if root and Path(root, "bin", "compute-sanitizer").is_file():
                tool = str(Path(root, "bin", "compute-sanitizer"))
    if tool is None:
        return _skip("compute-sanitizer not found (CUDA toolkit's bin/)")
    if _gpu_reason():
        return _skip(_gpu_reason())
    cmd = [tool, "--tool", "memcheck", "--error-exitcode", "1", sys.executable, __file__,
           "--only", "kernels", "--quick", "--no-timing", "--out", os.devnull]
    env = {**os.environ, "OPENDANCE_KERNEL_LINEINFO": "1"}  # reports with source lines
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=1800, check=False, env=env)
    summary = [ln for ln in (res.stdout + res.stderr).splitlines() if "ERROR SUMMARY" in ln]
    return {"status": "ok" if res.returncode == 0 else "failed", "returncode": res.returncode,
            "summary": summary, "rows": [("memcheck", summary[-1] if summary else f"rc={res.returncode}")]}


RUNNERS = {"env": section_env, "compile": section_compile, "host": section_host, "kernels": section_kernels,
           "onnx": section_onnx, "cuda": section_cuda, "tensorrt": section_tensorrt}


def print_table(results: dict) -> None:
    width = max((len(str(k)) for r in results.values() for k, _ in r.get("rows", [])), default=10)
    for name, r in results.items():
        head = f"== {name}: {r['status']}"
        if r.get("reason"):
            head += f" ({r['reason']})"
        print(head)
        for k, v in r.get("rows", []):
            print(f"   {k!s:<{width}}  {v}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", help=f"comma-separated sections of {', '.join(SECTIONS)}")
    ap.add_argument("--quick", action="store_true", help="smaller sizes and fewer repeats")
    ap.add_argument("--no-timing", action="store_true", help="checks only (for compute-sanitizer runs)")
    ap.add_argument("--sanitize", action="store_true",
                    help="also run compute-sanitizer memcheck on the kernels")
    ap.add_argument("--preset", default="cpu", help="MCT preset for the onnx / tensorrt sections")
    ap.add_argument("--cuda-presets", default="cpu,gpu", help="MCT presets for the cuda section")
    ap.add_argument("--steps", type=int, default=4, help="MS-LRM steps per chunk (real-time budget)")
    ap.add_argument("--chunk-tokens", type=int, default=8, help="new token steps per chunk")
    ap.add_argument("--cfg", action="store_true", help="classifier-free guidance (2 passes per step)")
    ap.add_argument("--headroom", type=float, default=0.5, help="share of the chunk's duration for decoding")
    ap.add_argument("--max-batch", type=int, default=1024, help="batch sweep upper bound")
    ap.add_argument("--out", default=str(Path(__file__).resolve().parent / "results" / "gpu_check.json"))
    ap.add_argument("--json", action="store_true", help="print the JSON instead of the table")
    args = ap.parse_args(argv)
    wanted = args.only.split(",") if args.only else list(SECTIONS)
    bad = set(wanted) - set(SECTIONS)
    if bad:
        ap.error(f"unknown sections: {', '.join(sorted(bad))}")
    results = {}
    for name in wanted:
        try:
            results[name] = RUNNERS[name](args)
        except Exception as exc:  # noqa: BLE001 - one section failing must not hide the others
            results[name] = {"status": "failed", "reason": f"{type(exc).__name__}: {exc}",
                             "traceback": traceback.format_exc(), "rows": []}
    if args.sanitize:
        results["memcheck"] = run_sanitizer()
    doc = {"date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
           "argv": sys.argv[1:], "results": results}
    if args.out != os.devnull:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(doc, indent=2, default=str))
    if args.json:
        print(json.dumps(doc, indent=2, default=str))
    else:
        print_table(results)
        print(f"JSON: {args.out}")
    return 1 if any(r["status"] == "failed" for r in results.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
