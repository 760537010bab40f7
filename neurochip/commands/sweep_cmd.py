"""``neurochip sweep SWEEP.yaml -o RESULTS.jsonl``: many independent runs, on Dask.

The sweep file names models, chips and a data set, and a grid (and/or a list) of job
parameters; the cross product is the job list, run by :class:`neurochip.distributed.Runner`
(serially with ``--workers 0``, on an embedded local cluster by default, or on
``--cluster ADDRESS``). Each finished job appends one JSON line to RESULTS (flushed and
synced, so an interrupted sweep leaves a valid file; a ``.parquet`` RESULTS is a Parquet
file rewritten atomically after each job), ``--resume`` skips the jobs already
there, and at the end a table is printed and a PNG of accuracy vs energy per inference with
the Pareto front is written next to RESULTS.

Light at import time (``neurochip --help`` imports it).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from neurochip.errors import ConfigError

if TYPE_CHECKING:
    from neurochip.distributed import Job

__all__ = [
    "add_runner_arguments",
    "load_sweep",
    "pareto_front",
    "read_results",
    "register",
    "run_sweep",
    "runner_from_args",
]

#: Top-level keys of a sweep file besides the job parameters.
FRAME_KEYS = ("model", "hw", "data", "grid", "jobs", "kind")
#: Parameters a sweep may set (top level, in the grid or in a list entry).
PARAM_KEYS = ("weight_bits", "calibration", "seed", "encoding", "samples",
              "calibration_samples", "batch_size", "rule", "epochs", "lr_hidden", "lr_out",
              "limit", "placement")
ENCODINGS = ("regular", "bernoulli", "latency")
EVAL_ONLY = ("weight_bits", "calibration", "encoding", "calibration_samples", "placement")
PLACEMENTS = ("traffic", "greedy")
LEARN_ONLY = ("rule", "epochs", "lr_hidden", "lr_out", "limit")


def register(sub: Any) -> None:
    p = sub.add_parser(
        "sweep", help="run a grid of compile/emulate (or learn) jobs, on Dask",
        description="Run every job of a sweep file (the cross product of its grid over "
                    "models, chips, weight bits, calibrations, seeds, ...) on a Dask cluster "
                    "(default: an embedded local cluster of worker processes, one per core; "
                    "or the scheduler in $NEUROCHIP_DASK_SCHEDULER). One JSON line per job "
                    "is appended to RESULTS as it finishes; --resume skips the jobs already "
                    "there. Prints a table at the end and writes RESULTS with the suffix "
                    ".png: accuracy vs energy per inference, Pareto front marked. See "
                    "docs/distributed.md.")
    p.add_argument("sweep", metavar="SWEEP.yaml", help="the sweep file")
    p.add_argument("-o", "--output", required=True, metavar="RESULTS.jsonl",
                   help="results file: JSON lines, one object per job; a .parquet (or .pq) "
                        "path: a Parquet file, one row per job")
    add_runner_arguments(p)
    p.add_argument("--resume", action="store_true",
                   help="keep RESULTS and run only the jobs it does not hold yet")
    p.add_argument("--no-plot", action="store_true", help="do not write the PNG")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar, no table")
    p.set_defaults(func=_sweep)


def add_runner_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_mutually_exclusive_group()
    g.add_argument("--workers", type=int, default=None, metavar="N",
                   help="worker processes of the embedded cluster (0: run serially in this "
                        "process; default: one per CPU core)")
    g.add_argument("--cluster", default=None, metavar="ADDRESS",
                   help="a running Dask scheduler, e.g. tcp://scheduler:8786 (default: "
                        "$NEUROCHIP_DASK_SCHEDULER, else the embedded cluster)")


def runner_from_args(args: argparse.Namespace) -> Any:
    from neurochip.distributed import Runner

    if args.workers is not None and args.workers < 0:
        raise ConfigError(f"must be >= 0, got {args.workers}", where=args.command,
                          field="--workers")
    return Runner(args.workers, args.cluster)


# ------------------------------------------------------------------------------ the file
def _as_list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list) else [value]


def _check_param(name: str, value: Any, where: str) -> Any:
    from neurochip.distributed import LEARN_RULES, calibration_options

    def integer(lo: int, allow_none: bool = False) -> Any:
        if value is None and allow_none:
            return None
        if isinstance(value, bool) or not isinstance(value, int) or value < lo:
            raise ConfigError(f"must be an integer >= {lo}{' or null' if allow_none else ''}, "
                              f"got {value!r}", where=where, field=name, value=value)
        return value

    if name == "weight_bits":
        return integer(1, allow_none=True)
    if name == "calibration":
        value = "none" if value is None else str(value)
        calibration_options(value, where)
        return value
    if name in ("seed", "lr_hidden", "lr_out"):
        return integer(0)
    if name in ("samples", "limit"):
        return integer(1, allow_none=True)
    if name in ("calibration_samples", "batch_size", "epochs"):
        return integer(1)
    if name == "encoding":
        if value is not None and value not in ENCODINGS:
            raise ConfigError(f"unknown encoding {value!r}; use one of {list(ENCODINGS)}",
                              where=where, field=name, value=value)
        return value
    if name == "placement":
        if value not in PLACEMENTS:
            raise ConfigError(f"unknown placement {value!r}; use one of {list(PLACEMENTS)}",
                              where=where, field=name, value=value)
        return value
    if name == "rule":
        if value not in LEARN_RULES:
            raise ConfigError(f"unknown learning rule {value!r}; use one of "
                              f"{list(LEARN_RULES)}", where=where, field=name, value=value)
        return value
    raise ConfigError(f"unknown key {name!r}; known: {list(FRAME_KEYS + PARAM_KEYS)}",
                      where=where, field=name)


def _resolve(path: Any, base: Path, what: str, where: str) -> str:
    if not isinstance(path, str) or not path:
        raise ConfigError(f"must be a path, got {path!r}", where=where, field=what)
    p = Path(path).expanduser()
    if not p.is_absolute() and not p.exists() and (base / p).exists():
        p = base / p
    if not p.is_file():
        raise ConfigError(f"file {path!r} does not exist", where=where, field=what)
    return str(p)


def load_sweep(path: str | Path) -> list[Job]:
    """The job list of a sweep file (``ConfigError`` naming the bad key or value)."""
    import yaml

    import neurochip
    from neurochip.distributed import RANDOM_DIGITS, Job

    p = Path(path)
    where = f"sweep file {p}"
    if not p.is_file():
        raise ConfigError("file does not exist", where=where)
    try:
        spec = yaml.safe_load(p.read_text())
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigError(f"is not valid YAML ({first})", where=where) from None
    if not isinstance(spec, dict):
        raise ConfigError("must be a mapping of keys (model, hw, data, grid, ...)", where=where)
    unknown = [k for k in spec if k not in FRAME_KEYS + PARAM_KEYS]
    if unknown:
        raise ConfigError(f"unknown key {unknown[0]!r}; known: {list(FRAME_KEYS + PARAM_KEYS)}",
                          where=where, field=str(unknown[0]))
    kind = spec.get("kind", "eval")
    if kind not in ("eval", "learn"):
        raise ConfigError(f"must be eval or learn, got {kind!r}", where=where, field="kind")
    if "model" not in spec:
        if kind == "eval":
            raise ConfigError("lacks 'model' (a path, or a list of paths)", where=where,
                              field="model")
        spec["model"] = RANDOM_DIGITS
    base = p.parent
    models = []
    for m in _as_list(spec["model"]):
        models.append(m if kind == "learn" and m == RANDOM_DIGITS
                      else _resolve(m, base, "model", where))
    hws = []
    for h in _as_list(spec.get("hw", "loihi_like")):
        if not isinstance(h, str):
            raise ConfigError(f"must be a chip name or a list of them, got {h!r}", where=where,
                              field="hw")
        neurochip.load_hw(h)  # HardwareSpecError names the chip
        hws.append(h)
    data = spec.get("data", "digits")
    if data != "digits":
        data = _resolve(data, base, "data", where)
        if not data.endswith(".npz"):
            raise ConfigError(f"must be 'digits' or an .npz file, got {spec['data']!r}",
                              where=where, field="data")
    base_params = {k: _check_param(k, v, where) for k, v in spec.items() if k in PARAM_KEYS}
    grid = spec.get("grid") or {}
    if not isinstance(grid, dict):
        raise ConfigError("must be a mapping of parameter: list of values", where=where,
                          field="grid")
    axes: dict[str, list[Any]] = {}
    for k, vals in grid.items():
        if k not in PARAM_KEYS:
            raise ConfigError(f"unknown key {k!r}; the grid takes {list(PARAM_KEYS)}",
                              where=where, field=f"grid.{k}")
        vals = _as_list(vals)
        if not vals:
            raise ConfigError("is an empty list", where=where, field=f"grid.{k}")
        axes[str(k)] = [_check_param(str(k), v, f"{where}, grid") for v in vals]
    entries: list[dict[str, Any]] = []
    listed = spec.get("jobs")
    if listed is not None:
        if not isinstance(listed, list) or not all(isinstance(e, dict) for e in listed):
            raise ConfigError("must be a list of mappings of parameters", where=where,
                              field="jobs")
        for i, e in enumerate(listed):
            entries.append({str(k): _check_param(str(k), v, f"{where}, jobs[{i}]")
                            for k, v in e.items()})
    else:
        entries.append({})
    used = set(base_params) | set(axes) | {k for e in entries for k in e}
    wrong = sorted(used & set(EVAL_ONLY if kind == "learn" else LEARN_ONLY))
    if wrong:
        raise ConfigError(f"'{wrong[0]}' does not apply to {kind} jobs (eval: "
                          f"{list(EVAL_ONLY)}; learn: {list(LEARN_ONLY)})", where=where,
                          field=wrong[0])
    if kind == "learn" and (data != "digits" or hws != ["loihi_like"]):
        raise ConfigError("learn jobs run the digits task on loihi_like (data: digits, hw: "
                          "loihi_like)", where=where, field="data" if data != "digits" else "hw")
    if kind == "learn" and any(m != RANDOM_DIGITS and not m.endswith(".nchip") for m in models):
        raise ConfigError(f"a learn job starts from '{RANDOM_DIGITS}' (the random digits "
                          "network) or a chip image (.nchip)", where=where, field="model")
    jobs: list[Job] = []
    names = list(axes)
    for model, hw, combo, entry in itertools.product(
            models, hws, itertools.product(*axes.values()), entries):
        params = {**base_params, **dict(zip(names, combo)), **entry}
        if kind == "learn":
            params.setdefault("rule", "dfa")
            params.setdefault("epochs", 1)
        jobs.append(Job(kind=kind, model=model, hw=hw, data=data, **params))
    return list({j.key: j for j in jobs}.values())


# ------------------------------------------------------------------------------ results
def read_results(path: str | Path, *, repair: bool = False) -> list[dict[str, Any]]:
    """The records of a results file (JSON lines; Parquet for a ``.parquet`` / ``.pq``
    path). A last line cut short (the process was killed while
    writing it) is dropped, and with ``repair`` removed from the file; any other bad line
    is a ``ConfigError`` naming its line number."""
    p = Path(path)
    if not p.exists():
        return []
    if is_parquet(p):
        return _read_parquet(p) if p.stat().st_size else []
    raw = p.read_bytes()
    where = f"results file {p}"
    out: list[dict[str, Any]] = []
    lines = raw.split(b"\n")
    complete = raw.endswith(b"\n") or not raw
    for i, line in enumerate(lines[:-1] if complete else lines):
        if not line.strip():
            continue
        last = i == len(lines) - 1
        try:
            rec = json.loads(line)
            if not isinstance(rec, dict) or "key" not in rec:
                raise ValueError("not a job record")
        except (ValueError, UnicodeDecodeError) as exc:
            if last and not complete:
                break
            raise ConfigError(f"line {i + 1} is not a job record ({exc})", where=where
                              ) from None
        if last and not complete:
            complete = True  # a whole record without its newline: keep it, add the newline
            if repair:
                with p.open("ab") as f:
                    f.write(b"\n")
        out.append(rec)
    if not complete and repair:
        with p.open("r+b") as f:
            f.truncate(raw.rfind(b"\n") + 1)
    return out


#: A results path with one of these suffixes is a Parquet file, any other JSON lines.
PARQUET_SUFFIXES = (".parquet", ".pq")
#: Metrics columns of a Parquet results file (float64; ``n_samples`` int64).
METRICS = ("accuracy", "energy_uj", "latency_us", "spikes", "syn_ops", "learn_energy_uj")
#: Job parameters a record holds only when set (``Job.params``).
OPTIONAL_PARAMS = ("rule", "epochs", "lr_hidden", "lr_out", "limit", "placement")


def is_parquet(path: str | Path) -> bool:
    return Path(path).suffix.lower() in PARQUET_SUFFIXES


def _parquet_schema() -> Any:
    """One fixed schema for every record: the key, each job parameter, the metrics, the
    error (JSON text), the run info (a struct) and any other field (JSON text)."""
    import dataclasses

    import pyarrow as pa

    from neurochip.distributed import Job

    cols = [pa.field("key", pa.string(), nullable=False)]
    for f in dataclasses.fields(Job):
        kind = pa.string() if "str" in str(f.type) else pa.int64()
        cols.append(pa.field(f.name, kind))
    cols += [pa.field(k, pa.float64()) for k in METRICS]
    cols += [pa.field("n_samples", pa.int64()), pa.field("error", pa.string()),
             pa.field("run", pa.struct([("seconds", pa.float64()), ("finished", pa.float64()),
                                        ("worker", pa.string())])),
             pa.field("extra", pa.string())]
    return pa.schema(cols)


def _to_row(rec: Mapping[str, Any], names: Sequence[str]) -> dict[str, Any]:
    row = {k: rec.get(k) for k in names if k not in ("error", "extra")}
    row["error"] = json.dumps(rec["error"]) if rec.get("error") is not None else None
    rest = {k: v for k, v in rec.items() if k not in names}
    row["extra"] = json.dumps(rest) if rest else None
    return row


def _from_row(row: Mapping[str, Any]) -> dict[str, Any]:
    rec: dict[str, Any] = {}
    for k, v in row.items():
        if k == "extra":
            continue
        if v is None and (k in OPTIONAL_PARAMS or k in METRICS or k in
                          ("n_samples", "error", "run")):
            continue
        rec[k] = json.loads(v) if k == "error" else v
    if row.get("extra"):
        rec.update(json.loads(row["extra"]))
    return rec


def _read_parquet(p: Path) -> list[dict[str, Any]]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(p)
    except (pa.ArrowException, OSError) as exc:
        raise ConfigError(f"is not a Parquet results file ({exc})",
                          where=f"results file {p}") from None
    if "key" not in table.column_names:
        raise ConfigError("has no 'key' column: not a sweep's results",
                          where=f"results file {p}")
    return [_from_row(r) for r in table.to_pylist()]


class ParquetResultsWriter:
    """Keeps the records in a Parquet file, rewritten (atomically: a temporary file that
    replaces it) after each record, so that the file is always whole and readable."""

    def __init__(self, path: Path, previous: Sequence[Mapping[str, Any]] = ()) -> None:
        self.path = path
        self.schema = _parquet_schema()
        self._names = list(self.schema.names)
        self._rows = [_to_row(r, self._names) for r in previous]

    def write(self, rec: Mapping[str, Any]) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        from neurochip.core.safeio import atomic_path

        self._rows.append(_to_row(rec, self._names))
        table = pa.Table.from_pylist(self._rows, schema=self.schema)
        with atomic_path(self.path) as tmp:
            pq.write_table(table, tmp)

    def close(self) -> None:
        pass


class ResultsWriter:
    """Appends one JSON line per record; flushed and fsynced after each."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._f = path.open("a", encoding="utf-8")

    def write(self, rec: Mapping[str, Any]) -> None:
        self._f.write(json.dumps(rec, sort_keys=False, allow_nan=True) + "\n")
        self._f.flush()
        os.fsync(self._f.fileno())

    def close(self) -> None:
        self._f.close()


def pareto_front(points: Sequence[tuple[float, float]]) -> list[int]:
    """Indices of the points (energy, accuracy) no other point beats: lower or equal energy
    and higher or equal accuracy, one of them strictly. In order of increasing energy."""
    order = sorted(range(len(points)), key=lambda i: (points[i][0], -points[i][1]))
    front: list[int] = []
    best = float("-inf")
    for i in order:
        if points[i][1] > best:
            front.append(i)
            best = points[i][1]
    return front


def _varying(records: Sequence[Mapping[str, Any]]) -> list[str]:
    from neurochip.distributed import JOB_FIELDS

    out = []
    for k in JOB_FIELDS:
        vals = {json.dumps(r.get(k)) for r in records}
        if len(vals) > 1:
            out.append(k)
    return out or ["kind"]


def report_table(records: Sequence[Mapping[str, Any]]) -> str:
    from neurochip.commands.inspect_cmd import table

    cols = _varying(records)
    rows = []
    for r in records:
        show = [Path(v).name if k == "model" and isinstance(v, str) else v
                for k, v in ((k, r.get(k)) for k in cols)]
        err = r.get("error")
        if err:
            rows.append([*show, None, None, None, f"{err['type']}: {err['message']}"[:70]])
        else:
            rows.append([*show, r.get("accuracy"), r.get("energy_uj"), r.get("latency_us"),
                         ""])
    return table([*cols, "accuracy", "energy_uj", "latency_us", "error"], rows)


def plot_pareto(records: Sequence[Mapping[str, Any]], path: Path) -> Path | None:
    """Accuracy vs energy per inference, the Pareto front marked; None without results."""
    ok = [r for r in records if not r.get("error") and "accuracy" in r]
    if not ok:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pts = [(float(r["energy_uj"]), float(r["accuracy"])) for r in ok]
    front = pareto_front(pts)
    cols = [c for c in _varying(ok) if c not in ("seed",)]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    ax.scatter([p[0] for p in pts], [100 * p[1] for p in pts], s=18, color="tab:blue",
               alpha=0.6, label=f"jobs ({len(pts)})")
    fx = [pts[i][0] for i in front]
    fy = [100 * pts[i][1] for i in front]
    ax.step(fx, fy, where="post", color="tab:red", lw=1.2)
    ax.scatter(fx, fy, s=40, facecolors="none", edgecolors="tab:red", label="Pareto front")
    for i in front:
        label = ", ".join(f"{c}={Path(str(ok[i].get(c))).name if c == 'model' else ok[i].get(c)}"
                          for c in cols)
        ax.annotate(label, (pts[i][0], 100 * pts[i][1]), fontsize=6,
                    xytext=(4, -8), textcoords="offset points")
    ax.set_xlabel("energy per inference (uJ)")
    ax.set_ylabel("accuracy (%)")
    ax.set_title("accuracy vs energy per inference", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


# ------------------------------------------------------------------------------ command
def check_output(output: Path, resume: bool) -> None:
    """A results file may be written: its folder exists; it is new, empty or resumed."""
    where = f"results file {output}"
    if not output.parent.is_dir():
        raise ConfigError("folder does not exist", where=where)
    if output.exists() and output.stat().st_size and not resume:
        raise ConfigError("exists; add --resume to continue it, or remove it", where=where)
    if resume:
        read_results(output)


def run_sweep(jobs: Sequence[Job], output: Path, runner: Any, *, resume: bool = False,
              progress: bool = True) -> tuple[list[dict[str, Any]], int]:
    """Run the jobs RESULTS does not hold yet, appending their records; returns all
    records of the sweep (file order) and how many ran now."""
    from tqdm import tqdm

    check_output(output, resume)
    previous = read_results(output, repair=True) if resume else []
    have = {r["key"] for r in previous}
    todo = [j for j in jobs if j.key not in have]
    writer: ResultsWriter | ParquetResultsWriter = (
        ParquetResultsWriter(output, previous) if is_parquet(output) else ResultsWriter(output))
    new: list[dict[str, Any]] = []
    try:
        with tqdm(total=len(todo), desc="sweep", unit="job", file=sys.stderr,
                  disable=None if progress else True, dynamic_ncols=True) as bar:
            def done(rec: dict[str, Any]) -> None:
                writer.write(rec)
                new.append(rec)
                bar.update(1)

            if todo:
                runner.run(todo, on_result=done)
    finally:
        writer.close()
    order = {j.key: i for i, j in enumerate(jobs)}
    recs = sorted((r for r in previous + new if r["key"] in order), key=lambda r: order[r["key"]])
    return recs, len(new)


def _sweep(args: argparse.Namespace) -> int:
    import time

    jobs = load_sweep(args.sweep)
    output = Path(args.output)
    if len({j.seed for j in jobs}) > 1 and any(j.kind == "eval" and j.encoding != "bernoulli"
                                               for j in jobs):
        print("note: the seed changes the inputs of the 'bernoulli' encoding only; jobs "
              "with a deterministic code (the model record's, e.g. 'regular') see the same "
              "inputs for every seed (set encoding: bernoulli)", file=sys.stderr)
    check_output(output, args.resume)
    t0 = time.perf_counter()
    have = {r["key"] for r in read_results(output)} if args.resume else set()
    if all(j.key in have for j in jobs):  # nothing to run: no cluster to start
        from neurochip.distributed import Runner

        runner = Runner(workers=0, warm=False)
    else:
        runner = runner_from_args(args)
    try:
        if not args.quiet:
            print(f"neurochip sweep: {len(jobs)} jobs {runner.description}", file=sys.stderr)
        try:
            records, ran = run_sweep(jobs, output, runner, resume=args.resume,
                                     progress=not args.quiet)
        except KeyboardInterrupt:
            done = len(read_results(output))
            print(f"interrupted: {output} holds {done} complete records; continue with "
                  "--resume", file=sys.stderr)
            return 130
    finally:
        runner.close()
    failed = [r for r in records if r.get("error")]
    if not args.quiet:
        print(report_table(records))
    png = None if args.no_plot else plot_pareto(records, output.with_suffix(".png"))
    print(f"{len(records)} of {len(jobs)} jobs in {output} ({ran} run now, "
          f"{len(records) - ran} already there), {len(failed)} failed; "
          f"{time.perf_counter() - t0:.1f} s" + (f"; wrote {png}" if png else ""))
    internal = [r for r in failed if r["error"].get("internal")]
    return 1 if internal else 0
