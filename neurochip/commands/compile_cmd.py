"""``neurochip compile MODEL --hw NAME -o OUT.nchip``: compile a model into a chip image.

Light at import time (``neurochip --help`` imports it); the compiler is imported inside the
command.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from neurochip.commands import float_arg, int_arg
from neurochip.core.errors import ConfigError, ModelImportError

__all__ = ["compile_with_progress", "register"]


def register(sub: Any) -> None:
    p = sub.add_parser(
        "compile", help="compile a NIR or ONNX model into a chip image",
        description="Compile a trained spiking network (.nir, or .onnx following neurochip's "
                    "convention) for a chip and write its chip image (.nchip). NIR files "
                    "carry no time step: dt, decay and reset come from these options, else "
                    "the file's neurochip.* metadata, else the exporter's conventions (see "
                    "docs/compiler.md). Without --calibration the scales come from a "
                    "worst-case bound of every population's state.")
    p.add_argument("model", metavar="MODEL", help="model file (.nir, .onnx or lava-dl netx .net)")
    p.add_argument("--hw", default="loihi_like", metavar="NAME",
                   help="hardware description: a name in hw_configs/ or a YAML path "
                        "(default loihi_like)")
    p.add_argument("-o", "--output", default=None, metavar="OUT.nchip",
                   help="chip image to write (default: MODEL with the suffix .nchip)")
    p.add_argument("--dt", type=float, default=None,
                   help="NIR: time step in seconds (needed for Norse-style files)")
    p.add_argument("--decay", choices=["euler", "exp"], default=None,
                   help="NIR: forward Euler (1 - dt/tau) or exponential (exp(-dt/tau)) decays")
    p.add_argument("--reset", choices=["zero", "subtract"], default=None,
                   help="reset after a spike: to zero, or subtract the threshold")
    p.add_argument("--weight-bits", type=int_arg(1, 64), default=None, metavar="N",
                   help="weight precision, 1 to the chip's (default: the chip's)")
    p.add_argument("--calibration", default=None, metavar="X.npz",
                   help="input spikes (one array per input, (T, n) or (B, T, n)) to choose "
                        "the scales from and to report float/chip agreement on")
    p.add_argument("--calibration-percentile", type=float_arg(0, 100), default=None, metavar="P",
                   help="use this percentile of the state instead of its maximum")
    p.add_argument("--calibration-margin", type=float_arg(positive=True), default=2.0, metavar="M",
                   help="headroom factor on the calibration statistic (default 2)")
    p.add_argument("--dump-ir", action="append", default=None, metavar="PASS",
                   choices=["import", "normalize", "quantize", "all"],
                   help="print the IR after this front pass to stderr (repeatable; 'all')")
    p.add_argument("--placement", choices=["traffic", "greedy"], default="traffic",
                   help="traffic: place chunks to minimise weighted NoC hops (never more than "
                        "next-fit); greedy: next-fit in declaration order (default traffic)")
    p.add_argument("--name", default=None, help="network name recorded in the image")
    p.add_argument("--reset-interval", type=int, default=None, metavar="STEPS",
                   help="netx files: reset every LIF layer every STEPS steps, as lava-dl "
                        "netx's reset_interval (layer i at phase i + 1)")
    p.add_argument("-q", "--quiet", action="store_true",
                   help="no progress bar and no summary")
    p.set_defaults(func=_compile)


def _load_calibration(path: str) -> dict[str, Any]:
    from neurochip.commands import read_npz

    where = f"calibration file {Path(path)}"
    arrays = read_npz(path, "calibration file")
    if not arrays:
        raise ConfigError("holds no arrays", where=where)
    for k, a in arrays.items():
        if a.ndim not in (2, 3):
            raise ConfigError(f"has shape {a.shape}; calibration inputs are (T, n) or "
                              "(B, T, n) spikes", where=where, field=k)
    return arrays


def compile_with_progress(model: Any, hw: Any, *, progress: bool = True, desc: str = "compile",
                          extra_on_pass: Callable[[str, Any], None] | None = None,
                          **options: Any) -> Any:
    """``neurochip.compile(model, hw, **options)`` with a progress bar over the passes.

    extra_on_pass(name, state): called after every pass too (see ``compile_model``).
    """
    from tqdm import tqdm

    import neurochip
    from compiler.pipeline import FRONT_PASSES, MAPPING_PASSES

    total = len(FRONT_PASSES) + len(MAPPING_PASSES) + ("calibration" in options)
    with tqdm(total=total, desc=desc, unit="pass", disable=None if progress else True,
              leave=False, dynamic_ncols=True) as bar:
        def on_pass(name: str, _state: Any) -> None:
            bar.set_postfix_str(name)
            bar.update(1)
            if extra_on_pass is not None:
                extra_on_pass(name, _state)

        return neurochip.compile(model, hw, on_pass=on_pass, **options)


def _compile(args: argparse.Namespace) -> int:
    import time
    import warnings

    model = Path(args.model)
    if not model.exists():
        raise ConfigError("file does not exist", where=f"model {model}")
    if model.suffix.lower() not in (".nir", ".onnx", ".net"):
        raise ConfigError(f"unknown model type {model.suffix!r}; give a .nir, .onnx or "
                          "lava-dl netx .net file", where=f"model {model}")
    if model.suffix.lower() == ".net":
        given = [k for k in ("dt", "decay", "reset", "weight_bits", "calibration", "dump_ir")
                 if getattr(args, k, None)]
        if given:
            raise ConfigError(f"--{given[0].replace('_', '-')} does not apply to a netx file "
                              "(it is already fixed point)", where=f"model {model}",
                              field=given[0])
    out = Path(args.output) if args.output else model.with_suffix(".nchip")
    if not out.parent.exists():
        raise ConfigError("folder does not exist", where=f"output {out}")
    options: dict[str, Any] = {"placement": args.placement}
    if args.reset_interval is not None:
        if model.suffix.lower() != ".net":
            raise ConfigError("--reset-interval applies to netx (.net) files",
                              where=f"model {model}", field="--reset-interval")
        options["reset_interval"] = args.reset_interval
    for key in ("dt", "decay", "reset", "weight_bits", "name"):
        if getattr(args, key) is not None:
            options[key] = getattr(args, key)
    if args.calibration is not None:
        options["calibration"] = _load_calibration(args.calibration)
        options["calibration_margin"] = args.calibration_margin
        if args.calibration_percentile is not None:
            options["calibration_percentile"] = args.calibration_percentile
    elif args.calibration_percentile is not None:
        raise ConfigError("--calibration-percentile needs --calibration", where="compile",
                          field="--calibration-percentile")
    if args.dump_ir:
        options["dump_ir"] = "all" if "all" in args.dump_ir else args.dump_ir
        options["dump_file"] = sys.stderr
    placed: dict[str, Any] = {}

    def keep_placement(name: str, state: Any) -> None:
        if name == "place":
            placed.update(state.placement)

    t0 = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            image = compile_with_progress(str(model), args.hw, progress=not args.quiet,
                                          extra_on_pass=keep_placement, **options)
        except ModelImportError as exc:
            if exc.field != "dt" or args.dt is not None:
                raise
            raise ModelImportError(f"{exc.message} (on the command line: --dt SECONDS)",
                                   where=exc.where, field=exc.field) from None
    seconds = time.perf_counter() - t0
    image.save(out)
    if not args.quiet:
        for w in caught:
            print(f"note: {w.message}", file=sys.stderr)
        imp = image.metadata.get("import") or {}
        if imp.get("format") == "nir":
            print(f"imported {model.name}: profile {imp.get('profile')}, dt {imp.get('dt')} s, "
                  f"decay {imp.get('decay')}, reset {imp.get('reset')}")
        print(image.summary())
        if "hops_per_step" in placed:
            print(f"placement {placed['method']} (asked {placed['requested']}): "
                  f"{placed['hops_per_step']:,.0f} NoC hops per step (estimated) "
                  f"(next-fit: {placed['greedy_hops_per_step']:,.0f}), "
                  f"{placed['chip_links_per_step']:,.0f} chip-link crossings")
        q = image.metadata.get("quantization") or {}
        errs = [pr["rel_weight_error"] for pop in q.values()
                for pr in (pop.get("projections") or {}).values()]
        if errs:
            print(f"largest relative weight error {max(errs):.2%} "
                  "(neurochip inspect shows the per-layer table)")
        for pop, entry in q.items():
            agr = entry.get("agreement")
            if agr and "spike_agreement" in agr:
                print(f"  calibration: {pop} float/chip spike agreement "
                      f"{agr['spike_agreement']:.2%}")
        print(f"wrote {out} ({seconds:.2f} s)")
    return 0
