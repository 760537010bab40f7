"""``neurochip sweep`` and ``neurochip eval``: results file, resume, interrupt, report, and
one-line errors for bad sweep files."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from neurochip.commands.quickstart_cmd import BUNDLED_MODEL
from neurochip.commands.sweep_cmd import load_sweep, pareto_front, read_results
from neurochip.distributed import same_results

PNG = b"\x89PNG\r\n\x1a\n"

SWEEP = f"""\
model: {BUNDLED_MODEL}
hw: loihi_like
data: digits
samples: 30
encoding: bernoulli
calibration_samples: 40
grid:
  weight_bits: [8, 4]
  calibration: [none, max]
  seed: [0, 1]
"""


@pytest.fixture
def sweep_file(tmp_path: Path) -> Path:
    p = tmp_path / "sweep.yaml"
    p.write_text(SWEEP)
    return p


def _records(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[dict[str, Any]]]:
    from neurochip.distributed import Runner

    d = tmp_path_factory.mktemp("ref")
    (d / "sweep.yaml").write_text(SWEEP)
    with Runner(workers=0) as r:
        yield r.run(load_sweep(d / "sweep.yaml"))


def test_the_issue_sweep_file_gives_the_grid(tmp_path: Path) -> None:
    p = tmp_path / "s.yaml"
    p.write_text(f"model: {BUNDLED_MODEL}\nhw: loihi_like\ndata: digits\ngrid:\n"
                 "  weight_bits: [8, 6, 4]\n  calibration: [none, max]\n  seed: [0, 1]\n")
    jobs = load_sweep(p)
    assert len(jobs) == 12 and len({j.key for j in jobs}) == 12
    assert {(j.weight_bits, j.calibration, j.seed) for j in jobs} == {
        (w, c, s) for w in (8, 6, 4) for c in ("none", "max") for s in (0, 1)}
    assert all(j.model == str(BUNDLED_MODEL) and j.data == "digits" for j in jobs)


def test_lists_of_models_and_chips_and_a_job_list(tmp_path: Path) -> None:
    p = tmp_path / "s.yaml"
    p.write_text(f"model: [{BUNDLED_MODEL}]\nhw: [loihi_like]\nseed: 3\njobs:\n"
                 "  - {weight_bits: 8}\n  - {weight_bits: 5, calibration: p99.5}\n")
    jobs = load_sweep(p)
    assert [(j.weight_bits, j.calibration, j.seed) for j in jobs] == [
        (8, "none", 3), (5, "p99.5", 3)]


def test_sweep_writes_results_table_and_plot(cli: Any, sweep_file: Path, tmp_path: Path,
                                             reference: list[dict[str, Any]]) -> None:
    out = tmp_path / "res.jsonl"
    rc, stdout, err = cli("sweep", sweep_file, "-o", out, "--workers", "0")
    assert rc == 0, err
    recs = _records(out)
    assert len(recs) == 8 and len({r["key"] for r in recs}) == 8
    for r in recs:
        for k in ("weight_bits", "calibration", "seed", "accuracy", "energy_uj", "latency_us"):
            assert k in r
    assert same_results(recs, reference)
    assert "weight_bits  calibration  seed  accuracy  energy_uj  latency_us" in stdout
    assert "8 of 8 jobs" in stdout and "0 failed" in stdout
    png = out.with_suffix(".png")
    assert png.read_bytes()[:8] == PNG
    # an existing results file is never overwritten silently
    rc, _, err = cli("sweep", sweep_file, "-o", out, "--workers", "0")
    assert rc == 2 and len(err.strip().splitlines()) == 1 and "--resume" in err
    assert _records(out) == recs


def test_resume_continues_a_truncated_file(cli: Any, sweep_file: Path, tmp_path: Path,
                                           reference: list[dict[str, Any]]) -> None:
    out = tmp_path / "res.jsonl"
    lines = [json.dumps(r) for r in reference[:3]]
    # three whole records and one cut short (the writer was killed mid-line)
    out.write_text("\n".join(lines) + "\n" + lines[0][:25])
    rc, stdout, err = cli("sweep", sweep_file, "-o", out, "--workers", "0", "--resume",
                          "--no-plot")
    assert rc == 0, err
    recs = _records(out)
    assert len(recs) == 8 and len({r["key"] for r in recs}) == 8
    assert same_results(recs, reference)
    assert "5 run now, 3 already there" in stdout
    rc, stdout, _ = cli("sweep", sweep_file, "-o", out, "--workers", "0", "--resume", "-q")
    assert rc == 0 and "0 run now, 8 already there" in stdout
    assert len(_records(out)) == 8


def test_ctrl_c_leaves_a_file_resume_completes(cli: Any, sweep_file: Path, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch,
                                                reference: list[dict[str, Any]]) -> None:
    from neurochip import distributed

    real = distributed.eval_task
    calls = {"n": 0}

    def interrupted(*a: Any, **k: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 4:
            raise KeyboardInterrupt
        return real(*a, **k)

    monkeypatch.setattr(distributed, "eval_task", interrupted)
    out = tmp_path / "res.jsonl"
    rc, _, err = cli("sweep", sweep_file, "-o", out, "--workers", "0", "--no-plot")
    assert rc == 130 and "holds 3 complete records" in err and "--resume" in err
    assert len(read_results(out)) == 3 and out.read_text().endswith("\n")
    monkeypatch.setattr(distributed, "eval_task", real)
    rc, stdout, err = cli("sweep", sweep_file, "-o", out, "--workers", "0", "--resume",
                          "--no-plot")
    assert rc == 0, err
    assert "5 run now, 3 already there" in stdout
    assert same_results(_records(out), reference)


def test_a_failing_job_is_recorded_and_the_sweep_goes_on(cli: Any, tmp_path: Path) -> None:
    p = tmp_path / "s.yaml"
    p.write_text(f"model: {BUNDLED_MODEL}\nsamples: 20\ngrid:\n  weight_bits: [12, 6]\n")
    out = tmp_path / "r.jsonl"
    rc, stdout, err = cli("sweep", p, "-o", out, "--workers", "0", "--no-plot")
    assert rc == 0, err
    bad, good = sorted(_records(out), key=lambda r: -r["weight_bits"])
    assert bad["weight_bits"] == 12 and bad["error"]["type"] == "QuantizationError"
    assert "accuracy" not in bad and good["accuracy"] > 0.5
    assert "1 failed" in stdout and "QuantizationError" in stdout


def test_sweep_against_a_running_scheduler(cli: Any, sweep_file: Path, tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch,
                                           reference: list[dict[str, Any]]) -> None:
    from distributed import LocalCluster

    with LocalCluster(n_workers=1, processes=False, threads_per_worker=1,
                      protocol="tcp://", dashboard_address=None) as cluster:
        assert cluster.scheduler_address.startswith("tcp://")
        monkeypatch.setenv("NEUROCHIP_DASK_SCHEDULER", cluster.scheduler_address)
        out = tmp_path / "r.jsonl"
        rc, _, err = cli("sweep", sweep_file, "-o", out, "--no-plot")
        assert rc == 0, err
        assert f"on the Dask cluster {cluster.scheduler_address}" in err
        assert same_results(_records(out), reference)


BAD = [
    ("model: [{m}]\ncolour: red\n", "unknown key 'colour'"),
    ("model: {m}\ngrid:\n  weight_bit: [8]\n", "unknown key 'weight_bit'"),
    ("model: {m}\ngrid:\n  calibration: [p200]\n", "unknown calibration 'p200'"),
    ("model: {m}\ngrid:\n  weight_bits: [eight]\n", "field 'weight_bits'"),
    ("model: {m}\ngrid:\n  weight_bits: []\n", "empty list"),
    ("model: {m}\ngrid:\n  seed: [-1]\n", "field 'seed'"),
    ("model: {m}\nencoding: morse\n", "unknown encoding 'morse'"),
    ("model: nowhere.nir\n", "'nowhere.nir' does not exist"),
    ("model: {m}\nhw: no_such_chip\n", "no_such_chip"),
    ("model: {m}\ndata: {m}\n", "'digits' or an .npz"),
    ("hw: loihi_like\n", "lacks 'model'"),
    ("model: {m}\ngrid: [1, 2]\n", "field 'grid'"),
    ("model: {m}\n  bad: [indent\n", "not valid YAML"),
    ("- just\n- a list\n", "must be a mapping"),
    ("model: {m}\nkind: train\n", "field 'kind'"),
    ("model: {m}\ngrid:\n  epochs: [1, 2]\n", "'epochs' does not apply to eval jobs"),
    ("kind: learn\ngrid:\n  weight_bits: [8]\n", "'weight_bits' does not apply to learn"),
    ("kind: learn\nhw: tiny4\n", "on loihi_like"),
    ("kind: learn\nmodel: {m}\n", "chip image (.nchip)"),
    ("kind: learn\ngrid:\n  rule: [hebb]\n", "unknown learning rule 'hebb'"),
]


@pytest.mark.parametrize(("text", "message"), BAD)
def test_bad_sweep_files_give_one_line_and_exit_2(cli: Any, tmp_path: Path, text: str,
                                                  message: str) -> None:
    p = tmp_path / "s.yaml"
    p.write_text(text.format(m=BUNDLED_MODEL))
    out = tmp_path / "r.jsonl"
    rc, _, err = cli("sweep", p, "-o", out, "--workers", "0")
    assert rc == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("neurochip sweep: error:"), err
    assert message in lines[0]
    assert not out.exists()


def test_bad_arguments_exit_2(cli: Any, sweep_file: Path, tmp_path: Path) -> None:
    rc, _, err = cli("sweep", sweep_file, "-o", tmp_path / "r.jsonl", "--workers", "-2")
    assert rc == 2 and "--workers" in err
    rc, _, err = cli("sweep", tmp_path / "none.yaml", "-o", tmp_path / "r.jsonl")
    assert rc == 2 and "does not exist" in err
    rc, _, err = cli("sweep", sweep_file, "-o", tmp_path / "no" / "r.jsonl", "--workers", "0")
    assert rc == 2 and "folder does not exist" in err
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"key": "a"}\nnot json\n{"key": "b"}\n')
    rc, _, err = cli("sweep", sweep_file, "-o", bad, "--workers", "0", "--resume")
    assert rc == 2 and "line 2" in err


def test_a_learning_sweep(cli: Any, tmp_path: Path) -> None:
    p = tmp_path / "learn.yaml"
    p.write_text("kind: learn\nlimit: 40\nsamples: 40\ngrid:\n  rule: [dfa, fa]\n"
                 "  lr_out: [13]\n")
    out = tmp_path / "r.jsonl"
    rc, stdout, err = cli("sweep", p, "-o", out, "--workers", "0")
    assert rc == 0, err
    recs = _records(out)
    assert sorted(r["rule"] for r in recs) == ["dfa", "fa"]
    for r in recs:
        assert r["kind"] == "learn" and r["model"] == "random" and r["epochs"] == 1
        assert r["lr_out"] == 13 and r["limit"] == 40 and r["n_samples"] == 40
        assert 0 <= r["accuracy"] <= 1 and r["learn_energy_uj"] > 0 and r["energy_uj"] > 0
    assert "rule" in stdout.splitlines()[0]


def test_pareto_front() -> None:
    pts = [(2.0, 0.9), (1.0, 0.8), (3.0, 0.95), (2.5, 0.85), (1.0, 0.7), (3.0, 0.9)]
    assert pareto_front(pts) == [1, 0, 2]


# ------------------------------------------------------------------------------ eval
def test_eval_shards_an_npz_data_set(cli: Any, tmp_path: Path,
                                     reference: list[dict[str, Any]]) -> None:
    from neurochip.tasks.digits import digits_spikes

    test = digits_spikes(20, "bernoulli", seed=1)[1]
    data = tmp_path / "d.npz"
    np.savez(data, inputs=test.x[:30], labels=test.y[:30])
    rc, out, err = cli("eval", BUNDLED_MODEL, "--data", data, "--workers", "0", "--shards",
                       "4", "--weight-bits", "4")
    assert rc == 0, err
    ref = next(r for r in reference if (r["weight_bits"], r["calibration"], r["seed"])
               == (4, "none", 1))
    assert f"accuracy: {100 * ref['accuracy']:.2f} %" in out
    assert f"energy {ref['energy_uj']:.4f} uJ, latency {ref['latency_us']:.2f} us" in out
    assert "30 samples in 4 shards serially in this process" in out


def test_eval_a_chip_image(cli: Any, tmp_path: Path) -> None:
    import neurochip

    img = tmp_path / "m.nchip"
    neurochip.compile(str(BUNDLED_MODEL), "loihi_like").save(img)
    rc, out_img, err = cli("eval", img, "--data", "digits", "--samples", "25", "--workers",
                           "0", "-q")
    assert rc == 0, err
    rc, out_nir, err = cli("eval", BUNDLED_MODEL, "--data", "digits", "--samples", "25",
                           "--workers", "0", "-q")
    assert rc == 0, err
    # no record beside the image: the default readout of a voltage output (ce_max) and
    # steps (inputs + output latency) are the record's here
    assert out_img.splitlines()[1:3] == out_nir.splitlines()[1:3]


@pytest.mark.parametrize(("args", "message"), [
    (["--data", "nope.npz"], "does not exist"),
    (["--data", "digits", "--calibration", "mean"], "unknown calibration"),
    (["--data", "digits", "--shards", "0"], "--shards"),
    (["--data", "digits", "--weight-bits", "0"], "weight_bits"),
])
def test_eval_bad_arguments_exit_2(cli: Any, args: list[str], message: str) -> None:
    rc, _, err = cli("eval", BUNDLED_MODEL, *args, "--workers", "0")
    assert rc == 2 and len(err.strip().splitlines()) == 1 and message in err, err


def test_eval_npz_without_labels(cli: Any, tmp_path: Path) -> None:
    data = tmp_path / "d.npz"
    np.savez(data, inputs=np.zeros((3, 20, 64), bool))
    rc, _, err = cli("eval", BUNDLED_MODEL, "--data", data, "--workers", "0")
    assert rc == 2 and "lacks the array 'labels'" in err


def test_eval_a_chip_image_takes_no_compile_options(cli: Any, tmp_path: Path) -> None:
    import neurochip

    img = tmp_path / "m.nchip"
    neurochip.compile(str(BUNDLED_MODEL), "loihi_like").save(img)
    for flag, value in (("--hw", "tiny4"), ("--weight-bits", "4"), ("--calibration", "max")):
        rc, _, err = cli("eval", img, "--data", "digits", flag, value, "--workers", "0")
        assert rc == 2 and f"{flag} applies to .nir/.onnx" in err, err


def test_a_real_sigint_leaves_a_valid_file(tmp_path: Path) -> None:
    """Ctrl-C (SIGINT) of a running sweep process: exit 130, whole records only."""
    import os
    import signal
    import subprocess
    import sys
    import time

    p = tmp_path / "s.yaml"
    p.write_text(f"model: {BUNDLED_MODEL}\nencoding: bernoulli\ngrid:\n"
                 "  weight_bits: [8, 6, 4, 2]\n  seed: [0, 1, 2, 3, 4, 5, 6, 7]\n")
    out = tmp_path / "r.jsonl"
    root = Path(__file__).resolve().parents[3]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(root), *filter(None, [os.environ.get("PYTHONPATH")])])}
    proc = subprocess.Popen(
        [sys.executable, "-m", "neurochip.cli", "sweep", str(p), "-o", str(out),
         "--workers", "0", "-q"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=env, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < 60 and proc.poll() is None:
        if out.exists() and len(out.read_text().splitlines()) >= 2:
            break
        time.sleep(0.02)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "complete records; continue with --resume" in err
    raw = out.read_text()
    assert raw.endswith("\n") and 2 <= len(raw.splitlines()) < 32
    assert all("accuracy" in json.loads(line) for line in raw.splitlines())


def test_parquet_results_resume_and_read_back(cli: Any, sweep_file: Path, tmp_path: Path,
                                              reference: list[dict[str, Any]]) -> None:
    import pyarrow.parquet as pq

    out = tmp_path / "res.parquet"
    from neurochip.commands.sweep_cmd import ParquetResultsWriter

    w = ParquetResultsWriter(out)  # a sweep stopped after three jobs
    for r in reference[:3]:
        w.write(r)
    assert len(pq.read_table(out)) == 3
    rc, stdout, err = cli("sweep", sweep_file, "-o", out, "--workers", "0", "--resume",
                          "--no-plot")
    assert rc == 0, err
    assert "5 run now, 3 already there" in stdout
    table = pq.read_table(out)
    assert table.num_rows == 8 and len(set(table.column("key").to_pylist())) == 8
    assert table.schema.field("accuracy").type == "double"
    assert table.schema.field("weight_bits").type == "int64"
    assert same_results(read_results(out), reference)  # the records round-trip exactly
    rc, _, err = cli("sweep", sweep_file, "-o", out, "--workers", "0", "-q")
    assert rc == 2 and "--resume" in err


def test_a_failed_job_round_trips_through_parquet(tmp_path: Path) -> None:
    from neurochip.commands.sweep_cmd import ParquetResultsWriter

    rec = {"key": "k1", "kind": "eval", "model": "m.nir", "hw": "loihi_like", "data": "digits",
           "weight_bits": None, "calibration": "none", "seed": 0, "encoding": None,
           "samples": None, "calibration_samples": 200, "batch_size": 256,
           "error": {"type": "QuantizationError", "message": "too wide", "where": "node a",
                     "field": "weight_bits"}, "run": {"seconds": 0.5, "finished": 1.0,
                                                      "worker": "w"}, "note": [1, 2]}
    out = tmp_path / "r.pq"
    ParquetResultsWriter(out).write(rec)
    assert read_results(out) == [rec]
    (tmp_path / "bad.parquet").write_bytes(b"not parquet")
    from neurochip.errors import ConfigError

    with pytest.raises(ConfigError, match="not a Parquet results file"):
        read_results(tmp_path / "bad.parquet")


def test_placement_is_a_sweep_key(tmp_path: Path) -> None:
    from neurochip.distributed import Runner

    p = tmp_path / "s.yaml"
    p.write_text(f"model: {BUNDLED_MODEL}\nhw: loihi_like\ndata: digits\nsamples: 20\n"
                 "grid:\n  placement: [traffic, greedy]\n")
    jobs = load_sweep(p)
    assert [j.placement for j in jobs] == ["traffic", "greedy"]
    assert "placement" not in load_sweep(tmp_path / "s.yaml")[0].__class__().params()
    with Runner(workers=0, warm=False) as r:
        recs = r.run(jobs)
    assert [rec["placement"] for rec in recs] == ["traffic", "greedy"]
    assert all("error" not in rec for rec in recs)
    p.write_text(f"model: {BUNDLED_MODEL}\ngrid:\n  placement: [best]\n")
    from neurochip.errors import ConfigError

    with pytest.raises(ConfigError, match="unknown placement 'best'"):
        load_sweep(p)
