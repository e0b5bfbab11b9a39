"""build-engine: a trained ONNX model -> a TensorRT engine a station can trust, plus its sidecar.

    build-engine model.onnx -o renet.plan [--fp16 | --int8 --calib-dir DIR] [--shape HxW] [--batch N]
                 [--timing-cache FILE] [--workspace MiB] [--hw-compat ampere+|same-cc]
                 [--version-compatible] [--dla-core N] [--flavour auto|tensorrt|tensorrt-rtx] [--force]

FP16 and INT8 graphs are made here (ModelOpt AutoCast; ModelOpt entropy calibration on good
images through the station's preprocessing) and must pass the accuracy gate against the FP32 graph
before an engine is written. Exit codes: 0 built (or up to date), 1 build failure, 2 bad input,
3 refused by the accuracy gate (override with --force).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

from edge.errors import InputError, run_cli

EXIT_GATE = 3


def _shape(text: str) -> tuple[int, int]:
    try:
        h, w = (int(v) for v in text.lower().split("x"))
        if h < 8 or w < 8:
            raise ValueError
        return h, w
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected HxW with sizes >= 8 (e.g. 1024x1024), got {text!r}") from None


def _cc(text: str) -> str:
    import re
    if not re.fullmatch(r"\d+\.\d+", text):
        raise argparse.ArgumentTypeError(f"expected a compute capability such as 8.6, got {text!r}")
    return text


def _positive(text: str) -> int:
    try:
        v = int(text)
        if v < 1:
            raise ValueError
        return v
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text!r}") from None


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="build-engine", description=__doc__.split("\n\n")[0])
    ap.add_argument("model", help="trained ONNX model (FP32, or already FP16 / Q/DQ INT8 with --reference)")
    ap.add_argument("-o", "--output", required=True, help="engine file to write (its sidecar is <engine>.json)")
    prec = ap.add_mutually_exclusive_group()
    prec.add_argument("--fp16", action="store_true", help="convert to FP16 (ModelOpt AutoCast; I/O and "
                                                          "sensitive ops stay FP32)")
    prec.add_argument("--int8", action="store_true", help="INT8 Q/DQ by ModelOpt calibration on --calib-dir")
    ap.add_argument("--calib-dir", help="good images (a folder or an MVTec tree): INT8 calibration and the "
                                        "accuracy gate's held-out set")
    ap.add_argument("--calib-images", type=_positive, default=64, help="images drawn for calibration (default 64)")
    ap.add_argument("--gate-images", type=_positive, default=50,
                    help="held-out good images for the gate, each also with a synthetic defect (default 50: 100 frames, so one flipped verdict still meets 99 %%)")
    ap.add_argument("--calib-method", choices=("entropy", "max"), default="entropy",
                    help="INT8 range calibration (default entropy)")
    ap.add_argument("--int8-calibrator", choices=("modelopt", "tensorrt"), default="modelopt",
                    help="modelopt: Q/DQ graph (every flavour); tensorrt: TensorRT 10's IInt8EntropyCalibrator2 "
                         "with a cache file <engine>.calib (no Q/DQ; not gated: the graph stays FP32 in ONNX)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the pseudo-defects the accuracy gate paints (default 0)")
    ap.add_argument("--reference", help="the FP32 ONNX to gate against when MODEL is already FP16 or Q/DQ")
    ap.add_argument("--shape", type=_shape, help="input HxW (fully convolutional models: run whole frames)")
    ap.add_argument("--batch", type=_positive, help="input batch (default: the model's, or 1)")
    ap.add_argument("--frame", type=_shape, help="the station's frame size HxW: one engine call per frame (a "
                                                 "tiled model: --batch = the frame's tile count; a whole-frame "
                                                 "model: --shape, rounded up to the multiple it takes)")
    ap.add_argument("--timing-cache", help="TensorRT timing cache file, read and updated (TensorRT 10/11)")
    ap.add_argument("--workspace", type=_positive, metavar="MiB", help="builder workspace limit")
    ap.add_argument("--target-cc", type=_cc, help="compute capability of the station's GPU when it is not this "
                                                 "machine's (e.g. 8.6): refused when the TensorRT flavour cannot "
                                                 "build for it")
    ap.add_argument("--hw-compat", choices=("none", "ampere+", "same-cc"), default="none",
                    help="hardware compatibility (TensorRT-RTX: ampere+ = its portable set, same-cc = this GPU)")
    ap.add_argument("--version-compatible", action="store_true", help="runs on later TensorRT of the same major")
    ap.add_argument("--dla-core", type=int, help="Jetson DLA core (GPU fallback for layers DLA cannot run)")
    ap.add_argument("--flavour", default="auto", choices=("auto", "tensorrt", "tensorrt-rtx"),
                    help="TensorRT flavour (default: TensorRT if installed, else TensorRT-RTX)")
    ap.add_argument("--max-auroc-drop", type=float, default=0.5, help="gate: allowed pixel AUROC drop in points")
    ap.add_argument("--min-agreement", type=float, default=0.99, help="gate: needed verdict agreement (0..1)")
    ap.add_argument("--force", action="store_true", help="write the engine even when the gate refuses")
    ap.add_argument("--save-onnx", help="also save the converted ONNX graph here (even when the gate refuses it)")
    ap.add_argument("--rebuild", action="store_true", help="build even when the engine is up to date")
    return ap


def _load_onnx(path: Path, where: str):
    import onnx

    if not path.is_file():
        raise InputError(where, None, f"ONNX model not found: {path}")
    try:
        model = onnx.load(str(path))
        onnx.checker.check_model(model)
    except Exception as e:  # protobuf DecodeError on truncated files, ValidationError, ...
        raise InputError(str(path), None, f"not a valid ONNX model (truncated or not ONNX: "
                                          f"{type(e).__name__}: {str(e).splitlines()[0][:120]})") from None
    if len(model.graph.input) != 1:
        raise InputError(str(path), None, f"expected one image input, found {len(model.graph.input)}")
    return model


def _metadata(model) -> dict[str, str]:
    return {p.key: p.value for p in model.metadata_props}


def _build_key(model_bytes: bytes, args, flavour, calib: list[Path], gpu=None) -> str:
    """What the engine depends on: model, options, flavour, images, and the GPU it was built on
    (an engine built for another GPU is not up to date here)."""
    h = hashlib.sha256(model_bytes)
    if gpu is not None:
        h.update(f"{gpu.name}|{gpu.compute_capability}".encode())
    opts = {k: v for k, v in vars(args).items() if k not in ("output", "rebuild", "force", "save_onnx", "model")}
    h.update(json.dumps(opts, sort_keys=True, default=str).encode())
    h.update(flavour.describe().encode())
    if args.reference:
        h.update(Path(args.reference).read_bytes())
    for f in calib:
        st = f.stat()
        h.update(f"{f.name}:{st.st_size}:{st.st_mtime_ns}".encode())
    return h.hexdigest()


def _up_to_date(out: Path, key: str) -> bool:
    from edge.backends.sidecar import read_sidecar, sha256_file

    if not out.is_file():
        return False
    try:
        s = read_sidecar(out)
    except InputError:
        return False
    return (s.build or {}).get("key") == key and s.engine.sha256 == sha256_file(out)


def _write_atomic(path: Path, data: bytes):
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _plan(args):
    """Validate the command line and the model before any work; returns what the build needs."""
    from calib.images import split_good
    from edge.backends.trt_flavours import pick
    from edge.recipe import has_recipe, load_recipe

    from .precision import graph_precision

    cmd = "<command line>"
    model_path, out = Path(args.model), Path(args.output)
    if not out.parent.is_dir():
        raise InputError(cmd, "--output", f"folder {out.parent} does not exist")
    if not 0 <= args.min_agreement <= 1:
        raise InputError(cmd, "--min-agreement", f"expected 0..1, got {args.min_agreement}")
    flavour = pick(args.flavour)
    model = _load_onnx(model_path, cmd)
    recipe = load_recipe(_metadata(model), str(model_path))
    if not has_recipe(_metadata(model)):
        print(f"build-engine: warning: {model_path.name} carries no inspection recipe; edge-run will use the "
              f"defaults", file=sys.stderr)
    given = graph_precision(model)
    want = "fp16" if args.fp16 else "int8" if args.int8 else given
    if given != "fp32" and want != given:
        raise InputError(str(model_path), None, f"the graph is already {given}; asked for {want}")
    if given != "fp32" and args.int8_calibrator == "tensorrt":
        raise InputError(cmd, "--int8-calibrator", f"{model_path.name} is already {given}: nothing to calibrate")
    if args.int8_calibrator == "tensorrt" and not flavour.has_calibrators:
        raise InputError(cmd, "--int8-calibrator", f"{flavour.describe()} has no calibrators (TensorRT 10 only): "
                                                   "use modelopt")
    if given != "fp32" and args.reference is None and not args.force:
        raise InputError(cmd, "--reference", f"{model_path.name} is already {given}: the accuracy gate needs the "
                                             f"FP32 model (--reference fp32.onnx), or --force to skip it")
    calib, holdout = [], []
    if args.calib_dir:
        calib, holdout = split_good(Path(args.calib_dir), args.calib_images, args.gate_images)
    elif want == "int8" and given == "fp32":
        raise InputError(cmd, "--calib-dir", "INT8 calibration needs good images: --calib-dir DIR")
    elif want != "fp32" and not args.force:
        raise InputError(cmd, "--calib-dir", f"the {want} accuracy gate needs good images: --calib-dir DIR "
                                             f"(or --force to build without the gate)")
    return SimpleNamespace(model_path=model_path, out=out, flavour=flavour, model=model,
                           recipe=recipe, given=given, want=want,
                           reference=Path(args.reference) if args.reference else None, calib=calib, holdout=holdout)


def _convert(args, plan, base: Path, tmp: Path, input_shape) -> tuple[Path, object]:
    """The graph to build (FP32 as given, FP16 by AutoCast, INT8 Q/DQ by ModelOpt) and, for
    TensorRT 10's legacy path, the calibrator."""
    from calib.images import model_tiles
    from calib.quantize import print_progress, quantize_int8

    from .precision import to_fp16

    if plan.want == "int8" and args.int8_calibrator == "tensorrt":
        from calib.trt_calibrator import make_entropy_calibrator
        tiles = model_tiles(plan.calib, plan.recipe.preprocess, input_shape)
        return base, make_entropy_calibrator(plan.flavour.trt, tiles, plan.out.with_name(plan.out.name + ".calib"),
                                             plan.model.graph.input[0].name, input_shape[0])
    if plan.given != "fp32" or plan.want == "fp32":
        return base, None
    tiles = model_tiles(plan.calib, plan.recipe.preprocess, input_shape) if plan.calib else None
    candidate = tmp / f"model.{plan.want}.onnx"
    t = time.perf_counter()
    if plan.want == "fp16":
        to_fp16(base, candidate, tiles)
    else:
        print(f"calibrating: {len(plan.calib)} good images -> {len(tiles)} tiles ({args.calib_method})",
              file=sys.stderr)
        quantize_int8(base, tiles, candidate, args.calib_method, progress=print_progress("calibrating tiles"))
    print(f"build-engine: {plan.want} graph in {time.perf_counter() - t:.1f} s", file=sys.stderr)
    return candidate, None


def _gate(args, plan, reference: Path | None, candidate: Path, calibrator) -> dict | None:
    """The gate's report (None for FP32). Raises _Refused when the candidate is outside tolerance."""
    from calib.quantize import print_progress

    from .gate import Tolerance, format_report, run_gate

    if plan.want == "fp32":
        return None
    if calibrator is not None:
        print("build-engine: warning: the accuracy gate cannot check a TensorRT-calibrated engine on the CPU "
              "(no Q/DQ graph); prefer --int8-calibrator modelopt", file=sys.stderr)
        return {"passed": None, "skipped": "TensorRT calibrator: the INT8 ranges exist only in the engine"}
    if not plan.holdout or reference is None:
        print("build-engine: warning: accuracy gate skipped (--force)", file=sys.stderr)
        return {"passed": None, "skipped": "--force without images or reference"}
    tol = Tolerance(args.max_auroc_drop, args.min_agreement)
    report = run_gate(reference, candidate, plan.holdout, tol, args.seed, print_progress("gate frames"))
    print(format_report(report, plan.want), file=sys.stderr)
    if not report["passed"]:
        if not args.force:
            hint = " (INT8: try --calib-method max)" if plan.want == "int8" and args.calib_method == "entropy" else ""
            print(f"build-engine: refused: the {plan.want} graph is outside the accuracy tolerance{hint}; "
                  f"no engine written (--force writes it anyway)", file=sys.stderr)
            raise _Refused
        print("build-engine: --force: writing the engine despite the gate", file=sys.stderr)
    return report


class _Refused(Exception):
    pass


def _frame_to_input(args, recipe, dims: list, where: str):
    """--frame HxW -> the input one call per frame needs: a whole-frame model's --shape, or a
    tiled model's --batch (its tiles of a frame that size, as the station cuts them)."""
    from edge.preprocess import Preprocessor

    fixed_hw = all(isinstance(d, int) and d > 0 for d in dims[2:])
    if not fixed_hw or recipe.preprocess.input_multiple > 1:
        if args.shape:
            raise InputError("<command line>", "--frame", "expected --frame or --shape, not both")
        args.shape = args.frame
        return
    if args.batch:
        raise InputError("<command line>", "--frame", "expected --frame or --batch, not both")
    pre = Preprocessor(recipe.preprocess, (dims[2], dims[3]))
    n = pre.tile_count(*pre.model_hw(*args.frame))  # frames are resized first (a size or a working scale)
    if isinstance(dims[0], int) and dims[0] > 0 and dims[0] != n:
        raise InputError(where, "input", f"the model's batch is fixed at {dims[0]}; a {args.frame[0]}x{args.frame[1]} "
                                         f"frame is {n} tiles: export it with a dynamic batch")
    args.batch = n
    print(f"build-engine: --frame {args.frame[0]}x{args.frame[1]}: {n} tile(s) of {dims[2]}x{dims[3]} per frame, "
          f"built as --batch {n} (one call per frame)", file=sys.stderr)


def run(args) -> int:
    import onnx

    from edge.backends.sidecar import FORMAT, VERSION, Sidecar, sha256_file, sidecar_path
    from edge.gpu import probe_gpu
    from edge.schema import load, to_dict

    from .builder import BuildOptions, build_engine
    from .graph import input_dims, with_input_shape

    plan = _plan(args)
    multiple = plan.recipe.preprocess.input_multiple
    if args.frame:
        _frame_to_input(args, plan.recipe, input_dims(plan.model), str(plan.model_path))
    if args.shape and any(v % multiple for v in args.shape):
        # a whole-frame model takes sides that are multiples of this; the station pads frames up to it
        rounded = tuple(-(-v // multiple) * multiple for v in args.shape)
        print(f"build-engine: --shape {args.shape[0]}x{args.shape[1]} rounded up to {rounded[0]}x{rounded[1]} "
              f"(the model takes multiples of {multiple}; frames are padded up to it)", file=sys.stderr)
        args.shape = rounded
    key = _build_key(plan.model.SerializeToString(), args, plan.flavour, plan.calib + plan.holdout, probe_gpu())
    if not args.rebuild and _up_to_date(plan.out, key):
        print(f"build-engine: {plan.out} is up to date (same model, options, images and "
              f"{plan.flavour.describe()}); --rebuild to build again", file=sys.stderr)
        return 0
    t_start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="build-engine-") as tmp:
        tmp = Path(tmp)
        model, reference = plan.model, plan.reference
        if args.shape or args.batch:
            model = with_input_shape(model, args.batch, args.shape, str(plan.model_path))
            if reference is not None:
                ref = with_input_shape(_load_onnx(reference, "--reference"), args.batch, args.shape, str(reference))
                reference = tmp / "reference.onnx"
                onnx.save(ref, str(reference))
        base = tmp / "model.onnx"
        onnx.save(model, str(base))
        dims = input_dims(model)
        if any(not (isinstance(d, int) and d > 0) for d in dims[2:]):
            # a dynamic height or width taken as 1 built a 1x1 engine, and calibration cut every
            # image into a million 1x1 tiles: the station's frame size must be given
            raise InputError(str(plan.model_path), "input", f"the model's height and width are dynamic ({dims}): "
                                                            "give the station's frame size with --shape HxW")
        input_shape = tuple(int(d) if isinstance(d, int) and d > 0 else 1 for d in dims)
        candidate, calibrator = _convert(args, plan, base, tmp, input_shape)
        if candidate != base:
            reference = base
        if args.save_onnx:  # before the gate, so a refused graph can still be examined (edge-eval)
            Path(args.save_onnx).write_bytes(candidate.read_bytes())
        try:
            gate_report = _gate(args, plan, reference, candidate, calibrator)
        except _Refused:
            return EXIT_GATE
        opts = BuildOptions(workspace_mib=args.workspace, hw_compat=args.hw_compat,
                            version_compatible=args.version_compatible, dla_core=args.dla_core,
                            timing_cache=Path(args.timing_cache) if args.timing_cache else None,
                            profile_shape=input_shape, calibrator=calibrator, target_cc=args.target_cc)
        built = build_engine(candidate.read_bytes(), plan.flavour, opts, probe_gpu(), str(plan.model_path))
    out = plan.out
    _write_atomic(out, built.data)
    sidecar = {
        "format": FORMAT, "version": VERSION,
        "engine": {"file": out.name, "sha256": sha256_file(out), "bytes": len(built.data)},
        "onnx": {"file": plan.model_path.name, "sha256": sha256_file(plan.model_path)},
        "tensorrt": {"flavour": plan.flavour.name, "version": plan.flavour.version},
        "target": built.target,
        "precision": plan.want,
        "io": {"inputs": built.inputs, "outputs": built.outputs},
        "layers": built.layers,
        "gate": gate_report,
        "build": {"command": ["build-engine", *_argv_of(args)], "key": key, "build_s": round(built.build_s, 3),
                  "total_s": round(time.perf_counter() - t_start, 3), "notes": built.notes,
                  "calibration": {"images": len(plan.calib), "method": args.calib_method, "seed": args.seed,
                                  "calibrator": args.int8_calibrator}
                  if plan.want == "int8" and plan.given == "fp32" else None},
        "recipe": to_dict(plan.recipe),
    }
    typed = load(Sidecar, sidecar, str(sidecar_path(out)))  # what edge-run will read, checked before writing
    _write_atomic(sidecar_path(out), (json.dumps(sidecar, indent=2) + "\n").encode())
    print(summary(out, typed), file=sys.stderr)
    return 0


def _argv_of(args) -> list[str]:
    """The command line that rebuilds this engine (every option that differs from its default)."""
    parser = build_parser()
    argv = [str(args.model)]
    for action in parser._actions:
        if not action.option_strings or action.dest in ("help", "rebuild", "save_onnx"):
            continue
        v = getattr(args, action.dest)
        if v == action.default:
            continue
        flag = max(action.option_strings, key=len)
        if action.nargs == 0:  # store_true
            argv.append(flag)
        elif action.dest == "shape":
            argv += [flag, f"{v[0]}x{v[1]}"]
        else:
            argv += [flag, str(v)]
    return argv


def summary(out: Path, s) -> str:
    """The build in a few lines, from the typed sidecar (edge.backends.sidecar.Sidecar)."""
    layers = "; ".join(f"{g}: " + ", ".join(f"{n} {p}" for p, n in sorted(v.items())) for g, v in sorted(s.layers.items()))
    t = s.target
    where = (f"compute capability {', '.join(t.compute_capabilities)}" if t.compute_capabilities
             else f"{t.gpu} (cc {t.compute_capability}, hw-compat {t.hardware_compatibility})")
    inp = s.io.inputs[0]
    lines = [f"build-engine: wrote {out} ({s.engine.bytes / 1e6:.2f} MB) and {out.name}.json",
             f"  precision  {s.precision}   {s.tensorrt.flavour} {s.tensorrt.version}   for {where}",
             f"  input      {inp.name} {'x'.join(map(str, inp.shape))} {inp.dtype}",
             f"  layers     {layers}",
             f"  build      {s.build['build_s']:.2f} s (total {s.build['total_s']:.1f} s)"]
    lines += [f"  note       {n}" for n in s.build["notes"]]
    return "\n".join(lines)


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    return run_cli("build-engine", lambda: run(args))


if __name__ == "__main__":
    sys.exit(main())
