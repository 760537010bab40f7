"""``neurochip eval MODEL --data X.npz``: a model's accuracy, energy and latency on a data
set split into shards over Dask workers.

MODEL is a .nir / .onnx file (compiled once here, with --weight-bits and --calibration) or
a chip image (.nchip). The data is an .npz holding ``inputs`` ((N, T, n) spikes, or (N, n)
intensities in [0, 1] encoded with --encoding and --seed) and ``labels`` (N,), or
``digits``: the bundled digits test split. The image travels to every worker once as
``.nchip`` bytes, the shards as arrays; the figures do not depend on the number of shards
or workers.

Light at import time (``neurochip --help`` imports it).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from neurochip.errors import ConfigError

__all__ = ["register"]


def register(sub: Any) -> None:
    from neurochip.commands.sweep_cmd import ENCODINGS, add_runner_arguments

    p = sub.add_parser(
        "eval", help="accuracy, energy and latency of a model on a data set, on Dask",
        description="Evaluate a model (.nir, .onnx, or a compiled .nchip) on a data set "
                    "split into shards over Dask workers (default: an embedded local "
                    "cluster, one worker per core; --workers 0: in this process) and print "
                    "accuracy, energy and latency per inference. The data is an .npz with "
                    "'inputs' ((N, T, n) spikes or (N, n) intensities in [0, 1]) and "
                    "'labels' (N,), or 'digits' (the bundled digits test split).")
    p.add_argument("model", metavar="MODEL", help="model (.nir, .onnx) or chip image (.nchip)")
    p.add_argument("--data", required=True, metavar="X.npz",
                   help="data set: an .npz with inputs and labels, or 'digits'")
    p.add_argument("--hw", default=None, metavar="NAME",
                   help="chip to compile for (default loihi_like; not for .nchip)")
    p.add_argument("--weight-bits", type=int, default=None, metavar="N",
                   help="weight precision (default: the chip's; not for .nchip)")
    p.add_argument("--calibration", default="none", metavar="none|max|pXX.X",
                   help="scales from a worst-case bound (none, default), or from the max or "
                        "a percentile of the float state on calibration inputs (the .npz's "
                        "'calibration' array, else its first inputs; digits: the training "
                        "split)")
    p.add_argument("--encoding", default=None, choices=ENCODINGS,
                   help="spike code of (N, n) intensities (default: the model record's, "
                        "else regular)")
    p.add_argument("--seed", type=int, default=0, help="seed of the input encoding")
    p.add_argument("--samples", type=int, default=None, metavar="N",
                   help="evaluate the first N samples only")
    p.add_argument("--shards", type=int, default=None, metavar="N",
                   help="pieces the data set is split into (default: 4 per worker)")
    p.add_argument("--batch-size", type=int, default=256, metavar="N",
                   help="samples per emulator call within a shard (default 256)")
    add_runner_arguments(p)
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_eval)


def _eval(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from neurochip.commands.sweep_cmd import _check_param, runner_from_args
    from neurochip.distributed import Job, Readout, _prepare, compile_task, image_from_bytes

    model = Path(args.model)
    if not model.is_file():
        raise ConfigError("file does not exist", where=f"model {model}")
    if model.suffix.lower() not in (".nir", ".onnx", ".nchip"):
        raise ConfigError(f"unknown model type {model.suffix!r}; give a .nir, .onnx or "
                          ".nchip file", where=f"model {model}")
    data = args.data
    if data != "digits" and not Path(data).is_file():
        raise ConfigError("file does not exist", where=f"data file {data}")
    for name in ("weight_bits", "calibration", "seed", "samples", "batch_size"):
        _check_param(name, getattr(args, name), "neurochip eval")
    if args.shards is not None and args.shards < 1:
        raise ConfigError(f"must be >= 1, got {args.shards}", where="neurochip eval",
                          field="--shards")
    is_image = model.suffix.lower() == ".nchip"
    if is_image and (args.weight_bits is not None or args.calibration != "none"
                     or args.hw is not None):
        flag = ("--hw" if args.hw is not None else
                "--weight-bits" if args.weight_bits is not None else "--calibration")
        raise ConfigError(f"a chip image is already compiled; {flag} applies to .nir/.onnx "
                          "models", where="neurochip eval", field=flag)
    job = Job(model=str(model), hw=args.hw or "loihi_like", data=data, weight_bits=args.weight_bits,
              calibration=args.calibration, seed=args.seed, encoding=args.encoding,
              samples=args.samples, batch_size=args.batch_size)
    t0 = time.perf_counter()
    if is_image:
        import neurochip

        image = neurochip.ChipImage.load(model)
        prep = _prepare_image(job, model)
    else:
        prep = _prepare([job])
        if job.key in prep.errors:
            e = prep.errors[job.key]["error"]
            raise ConfigError(e["message"], where=e.get("where"), field=e.get("field"))
        spec, ckey = prep.compiles[prep.job_compile[job.key]]
        blob = compile_task(spec, prep.data(ckey)["x"] if ckey else None)
        if isinstance(blob, dict):
            e = blob["error"]
            raise ConfigError(f"{e['type']}: {e['message']}", where=e.get("where"),
                              field=e.get("field"))
        image = image_from_bytes(blob)
    compile_s = time.perf_counter() - t0
    readout: Readout = prep.readouts[job.key]
    d = prep.data(prep.job_data[job.key])
    runner = runner_from_args(args)
    try:
        t1 = time.perf_counter()
        with tqdm(total=len(d["labels"]), desc="eval", unit="sample", file=sys.stderr,
                  disable=True if args.quiet else None, dynamic_ncols=True) as bar:
            res = runner.evaluate(image, d["inputs"], d["labels"], readout, shards=args.shards,
                                  batch_size=args.batch_size, on_shard=bar.update)
        run_s = time.perf_counter() - t1
        where = runner.description
    finally:
        runner.close()
    print(f"neurochip eval: {model.name} on '{image.hw.name}', {res['n_samples']} samples in "
          f"{res['shards']} shard{'s' if res['shards'] != 1 else ''} {where}")
    print(f"accuracy: {100 * res['accuracy']:.2f} %")
    print(f"per inference: energy {res['energy_uj']:.4f} uJ, latency {res['latency_us']:.2f} "
          f"us, {res['spikes']:.1f} spikes, {res['syn_ops']:.0f} synaptic ops")
    print(f"compile {compile_s:.2f} s, evaluation {run_s:.2f} s")
    return 0


def _prepare_image(job: Any, image_path: Path) -> Any:
    """Data and readout of a chip-image evaluation (a record next to the image, if any,
    names the input, steps and decode)."""
    from neurochip.distributed import _Client, _data_for, _Prepared, _read_record, readout_of

    rec = _read_record(image_path)
    prep = _Prepared()
    prep.job_data[job.key] = _data_for(job, rec, _Client(), prep.datas)
    prep.readouts[job.key] = readout_of(rec)
    return prep
