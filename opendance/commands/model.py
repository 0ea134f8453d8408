"""``opendance export-onnx`` and ``opendance build-trt``: model exports for other runtimes.

Heavy imports (torch, onnx, tensorrt) happen inside the handlers so ``--help`` stays fast.
"""

from __future__ import annotations

import json

from opendance.validate import arg_int


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "export-onnx", help="export the MCT to ONNX and validate it against PyTorch with onnxruntime",
        description="Export the MCT (the bundled model, or --checkpoint) to an ONNX graph with dynamic batch "
                    "and window, then compare it with PyTorch under onnxruntime at several shapes.")
    p.add_argument("--checkpoint", help="MCT checkpoint (.safetensors); default: the bundled model")
    p.add_argument("--out", default="mct.onnx", help="output file (default: mct.onnx)")
    p.add_argument("--fp16", action="store_true",
                   help="float16 inside the graph (what TensorRT 11 builds a half-precision engine from)")
    p.add_argument("--opset", type=arg_int(13, 30), default=18, help="ONNX opset (default 18)")
    p.add_argument("--max-batch", type=arg_int(1, 4096), default=64,
                   help="largest batch of the dynamic batch axis")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=_cmd_export)

    t = subparsers.add_parser(
        "build-trt", help="build a TensorRT plan from the MCT's ONNX graph (needs TensorRT and a GPU)",
        description="Build (or reuse from the cache) a TensorRT 10/11 engine for an ONNX graph written by "
                    "'opendance export-onnx'. With TensorRT 11 the precision is the graph's: use an --fp16 "
                    "export for a half-precision engine.")
    t.add_argument("onnx", help="ONNX file from 'opendance export-onnx'")
    t.add_argument("--checkpoint", help="MCT checkpoint the graph came from (for the shape ranges); "
                                        "default: the bundled model")
    t.add_argument("--out", help="plan file (default: the cache, keyed by a hash)")
    t.add_argument("--precision", choices=("graph", "fp32", "fp16"), default="graph",
                   help="graph: strongly typed (TensorRT 11's only mode); fp16: TensorRT 10 builder flag")
    t.add_argument("--max-batch", type=arg_int(1, 4096), default=8,
                   help="largest batch of the optimisation profile")
    t.add_argument("--json", action="store_true", help="print the result as JSON")
    t.set_defaults(func=_cmd_build_trt)


def _load_model(checkpoint: str | None):
    if checkpoint:
        from opendance.engine.mct import load_mct

        return load_mct(checkpoint)[0]
    from opendance.engine.generator import load_default_generator

    return load_default_generator(backend="torch", text="none").model


def _cmd_export(args) -> int:
    from opendance.engine.backends.onnx_export import export_mct

    model = _load_model(args.checkpoint).eval()
    res = export_mct(model, args.out, "fp16" if args.fp16 else "fp32", args.opset, args.max_batch)
    if args.json:
        print(json.dumps(res.to_dict(), indent=2))
    else:
        print(f"wrote {res.path} ({res.precision}, opset {res.opset}, {res.seconds:.1f} s); "
              f"max |logit error| vs PyTorch {max(res.max_abs_err.values()):.2e}, "
              f"token agreement {res.token_agreement:.4f}")
    return 0


def _cmd_build_trt(args) -> int:
    import time

    from opendance.engine.backends.tensorrt_build import (
        ShapeProfile,
        build_plan,
        cached_plan,
        import_tensorrt,
    )

    trt = import_tensorrt()  # fails first, with the install hint, when TensorRT is absent
    model = _load_model(args.checkpoint)
    profile = ShapeProfile.for_model(model.cfg, max_batch=args.max_batch)
    t0 = time.perf_counter()
    if args.out:
        path = build_plan(args.onnx, args.out, profile, args.precision, trt=trt)
    else:
        import torch

        name = torch.cuda.get_device_name() if torch.cuda.is_available() else ""
        path = cached_plan(args.onnx, profile, args.precision, device_name=name, trt=trt)
    res = {"plan": str(path), "tensorrt": str(trt.__version__), "precision": args.precision,
           "seconds": round(time.perf_counter() - t0, 2)}
    print(json.dumps(res, indent=2) if args.json else f"plan: {path} (TensorRT {trt.__version__}, "
                                                       f"{args.precision}, {res['seconds']} s)")
    return 0
