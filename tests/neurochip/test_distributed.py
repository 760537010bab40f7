"""``neurochip.distributed``: jobs on Dask give the serial results, survive a dead worker,
and record typed errors."""

from __future__ import annotations

import itertools
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from neurochip.commands.quickstart_cmd import BUNDLED_MODEL
from neurochip.distributed import (
    Job,
    Readout,
    Runner,
    calibration_options,
    image_from_bytes,
    image_to_bytes,
    job_key,
    same_results,
)
from neurochip.errors import ConfigError

MODEL = str(BUNDLED_MODEL)


def _jobs(samples: int = 40) -> list[Job]:
    jobs = [Job(model=MODEL, weight_bits=wb, calibration=cal, seed=seed, encoding="bernoulli",
                samples=samples, calibration_samples=50)
            for wb, cal, seed in itertools.product([8, 3], ["none", "p99.5"], [0, 1])]
    jobs.append(Job(model=MODEL, weight_bits=99, samples=samples))  # beyond the chip's 8
    jobs.append(Job(kind="empty", seed=7))
    return jobs


@pytest.fixture(scope="module")
def serial() -> Iterator[Runner]:
    with Runner(workers=0) as r:
        yield r


@pytest.fixture(scope="module")
def two_workers() -> Iterator[Runner]:
    with Runner(workers=2) as r:
        yield r


@pytest.fixture(scope="module")
def reference(serial: Runner) -> list[dict[str, Any]]:
    return serial.run(_jobs())


def test_serial_results_are_sound(reference: list[dict[str, Any]]) -> None:
    jobs = _jobs()
    assert [r["key"] for r in reference] == [j.key for j in jobs]
    evals = [r for r in reference if r["kind"] == "eval" and "error" not in r]
    assert len(evals) == 8
    for r in evals:
        assert 0.5 < r["accuracy"] <= 1.0 and r["n_samples"] == 40
        assert r["energy_uj"] > 0 and r["latency_us"] > 0 and r["spikes"] > 0
    # the seed changes the Bernoulli code, hence the measurements
    by = {(r["weight_bits"], r["calibration"], r["seed"]): r for r in evals}
    assert by[(8, "none", 0)]["spikes"] != by[(8, "none", 1)]["spikes"]
    # 3-bit weights change the chip's work
    assert by[(8, "none", 0)]["syn_ops"] != by[(3, "none", 0)]["syn_ops"]


def test_a_failing_job_records_its_typed_error(reference: list[dict[str, Any]]) -> None:
    bad = next(r for r in reference if r["weight_bits"] == 99)
    assert bad["error"]["type"] == "QuantizationError"
    assert "99" in bad["error"]["message"] and bad["error"]["field"] == "weight_bits"
    assert bad["model"] == MODEL and bad["calibration"] == "none"
    assert "accuracy" not in bad
    # ... and the others ran
    assert sum("accuracy" in r for r in reference) == 8


def test_two_workers_give_the_serial_results_in_any_order(
        two_workers: Runner, reference: list[dict[str, Any]]) -> None:
    seen: list[str] = []
    got = two_workers.run(list(reversed(_jobs())), on_result=lambda r: seen.append(r["key"]))
    assert sorted(seen) == sorted(r["key"] for r in reference)  # each reported once
    assert same_results(got, reference)
    workers = {r["run"]["worker"] for r in got}
    assert len(workers) == 2, "both workers took jobs"
    assert all(r["run"]["worker"] != reference[0]["run"]["worker"] for r in got)


def test_embedded_workers_keep_glibc_malloc_defaults(two_workers: Runner) -> None:
    # Dask's default MALLOC_TRIM_THRESHOLD_ fixes glibc's mmap threshold: every batch's
    # arrays would be mapped and page-faulted afresh (+35 % CPU per job)
    def worker_env() -> dict[str, str | None]:  # local: sent by value, not by module name
        import os

        return {k: os.environ.get(k) for k in ("MALLOC_TRIM_THRESHOLD_", "NUMBA_NUM_THREADS",
                                               "OMP_NUM_THREADS")}

    envs = two_workers.client.run(worker_env)
    assert len(envs) == 2
    for env in envs.values():
        assert env["MALLOC_TRIM_THRESHOLD_"] == os.environ.get("MALLOC_TRIM_THRESHOLD_")
        assert env["NUMBA_NUM_THREADS"] == "1" and env["OMP_NUM_THREADS"] == "1"


def test_the_serial_order_does_not_matter(serial: Runner,
                                          reference: list[dict[str, Any]]) -> None:
    assert same_results(serial.run(list(reversed(_jobs()))), reference)


def test_shards_give_the_whole_data_set_figures(serial: Runner, two_workers: Runner) -> None:
    import neurochip
    from neurochip.tasks.digits import digits_spikes

    image = neurochip.compile(MODEL, "loihi_like", weight_bits=6)
    test = digits_spikes(20, "bernoulli", seed=3)[1]
    x, y = test.x[:90], test.y[:90]
    readout = Readout("in", 22, "ce_max")
    one = serial.evaluate(image, x, y, readout, shards=1)
    many = serial.evaluate(image, x, y, readout, shards=7, batch_size=8)
    dist = two_workers.evaluate(image, x, y, readout)
    assert one.pop("shards") == 1 and many.pop("shards") == 7 and dist.pop("shards") == 8
    assert one == many == dist
    # the same figures as the sweep job of these parameters
    job = Job(model=MODEL, weight_bits=6, seed=3, encoding="bernoulli", samples=90)
    rec = serial.run([job])[0]
    assert {k: rec[k] for k in one} == one


def test_eval_jobs_are_chunked_by_image_in_first_seen_order() -> None:
    from neurochip.distributed import chunks_of

    keys = [f"j{i}" for i in range(10)]
    image = {k: "AB"[i % 2] for i, k in enumerate(keys)}  # two images, interleaved
    chunks = chunks_of(keys, image, workers=2)  # at most ceil(10 / 8) = 2 jobs a chunk
    assert chunks == [["j0", "j2"], ["j4", "j6"], ["j8"], ["j1", "j3"], ["j5", "j7"], ["j9"]]
    assert all(len({image[k] for k in c}) == 1 for c in chunks)  # one image per chunk
    assert sorted(k for c in chunks for k in c) == sorted(keys)  # each job once
    assert chunks_of(keys, image, workers=1, per_worker=1) == [keys[0::2], keys[1::2]]
    assert chunks_of([], {}, workers=2) == []


def test_chunks_pack_into_tasks_of_about_equal_cost_largest_first() -> None:
    from neurochip.distributed import pack_chunks

    # the benchmark sweep's shape: 8 chunks of cost 7 (calibrated) and 4 of cost 5
    chunks = [[f"c{i}"] for i in range(8)] + [[f"n{i}"] for i in range(4)]
    cost = [7.0] * 8 + [5.0] * 4
    tasks = pack_chunks(chunks, cost, 6)
    assert len(tasks) == 6
    assert sorted(k for t in tasks for k in t) == sorted(c[0] for c in chunks)  # each once
    totals = [sum(7.0 if k[0] == "c" else 5.0 for k in t) for t in tasks]
    assert totals == [14.0, 14.0, 12.0, 12.0, 12.0, 12.0]  # balanced, largest first
    assert tasks[0] == ["c0", "c6"] and tasks[2] == ["c2", "n0"]  # the LPT rule, stable
    # as many tasks as chunks or more: one chunk a task, largest first
    assert pack_chunks([["a"], ["b", "c"]], [1.0, 2.0], 6) == [["b", "c"], ["a"]]
    assert pack_chunks([], [], 4) == []


def test_chunks_come_largest_first_when_costs_are_given() -> None:
    from neurochip.distributed import chunks_of

    keys = [f"j{i}" for i in range(7)]
    image = {k: "ABBCCCC"[i] for i, k in enumerate(keys)}
    # cap 1 job a chunk with 7 workers: A 1+1, B 5+1 (x2), C 0+1 (x4)
    chunks = chunks_of(keys, image, workers=7, per_worker=1,
                       compile_cost={"A": 1.0, "B": 5.0, "C": 0.0})
    assert chunks == [["j1"], ["j2"], ["j0"], ["j3"], ["j4"], ["j5"], ["j6"]]
    # with chunks of several jobs, the job count counts too: C's 4 jobs outweigh A's cost
    chunks = chunks_of(keys, image, workers=1, per_worker=1,
                       compile_cost={"A": 2.0, "B": 0.0, "C": 1.0})
    assert chunks == [["j3", "j4", "j5", "j6"], ["j0"], ["j1", "j2"]]


def test_an_unexpected_failure_in_a_chunk_is_that_jobs_record() -> None:
    from neurochip.distributed import _prepare, chunk_task

    jobs = [Job(model=MODEL, weight_bits=8, seed=s, samples=20) for s in (0, 1)]
    prep = _prepare(jobs)
    spec, calib = prep.compiles[prep.job_compile[jobs[0].key]]
    assert calib is None
    good = prep.data(prep.job_data[jobs[1].key])
    recs = chunk_task(jobs, spec, None, [{"inputs": None}, good],
                      [prep.readouts[j.key] for j in jobs])
    assert [r["key"] for r in recs] == [j.key for j in jobs]
    assert recs[0]["error"]["internal"] and recs[0]["error"]["type"] == "AttributeError"
    assert "error" not in recs[1] and 0.5 < recs[1]["accuracy"] <= 1.0


def test_job_keys_are_stable_and_distinct() -> None:
    a = Job(model=MODEL, weight_bits=4, seed=1)
    assert a.key == Job(seed=1, weight_bits=4, model=MODEL).key
    assert a.key == job_key(dict(reversed(list(a.params().items()))))
    assert len({a.key, Job(model=MODEL, weight_bits=4, seed=2).key,
                Job(model=MODEL, weight_bits=5, seed=1).key}) == 3


@pytest.mark.parametrize("value", ["p0", "p100.5", "px", "mean", ""])
def test_bad_calibration_names_are_typed_errors(value: str) -> None:
    with pytest.raises(ConfigError, match="calibration"):
        calibration_options(value)


def test_calibration_names() -> None:
    assert calibration_options("none") == {}
    assert calibration_options("max") == {"calibration": True}
    assert calibration_options("p99.9") == {"calibration": True,
                                            "calibration_percentile": 99.9}


def test_images_travel_as_nchip_bytes(tmp_path: Path) -> None:
    import neurochip

    image = neurochip.compile(MODEL, "loihi_like", weight_bits=5)
    blob = image_to_bytes(image)
    image.save(tmp_path / "m.nchip")
    assert blob[:2] == b"PK" and image_from_bytes(blob).equals(image)
    assert image_from_bytes((tmp_path / "m.nchip").read_bytes()).equals(image)
    with pytest.raises(neurochip.errors.ImageFormatError):
        image_from_bytes(b"not an image")


def test_runner_arguments_are_checked() -> None:
    with pytest.raises(ConfigError, match="workers"):
        Runner(workers=-1, warm=False)
    with pytest.raises(ConfigError, match="either"):
        Runner(workers=2, cluster="tcp://127.0.0.1:1", warm=False)


def test_an_unreachable_scheduler_is_a_typed_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NEUROCHIP_DASK_SCHEDULER", "tcp://127.0.0.1:9")
    with pytest.raises(ConfigError, match="cannot reach"):
        Runner(warm=False, timeout=1.0)


def test_learn_jobs_run_the_same_on_workers(serial: Runner, two_workers: Runner) -> None:
    jobs = [Job(kind="learn", model="random", rule="dfa", epochs=1, limit=60, samples=60,
                seed=s) for s in (0, 1)]
    a = serial.run(jobs)
    b = two_workers.run(jobs)
    assert same_results(a, b)
    for r in a:
        assert "error" not in r, r
        assert 0.0 <= r["accuracy"] <= 1.0 and r["learn_energy_uj"] > 0
        assert r["energy_uj"] > 0 and r["n_samples"] == 60
    assert a[0]["accuracy"] != a[1]["accuracy"] or a[0]["spikes"] != a[1]["spikes"]


def test_per_sample_figures_do_not_depend_on_batching(serial: Runner) -> None:
    import neurochip
    from neurochip.distributed import measure
    from neurochip.tasks.digits import digits_spikes

    image = neurochip.compile(MODEL, "loihi_like")
    em = neurochip.Emulator(image, threads=1)

    x = digits_spikes(20, "bernoulli", seed=5)[1].x[:30]
    a = measure(image, em, x, Readout("in", 22, "ce_max"), batch_size=30)
    b = measure(image, em, x, Readout("in", 22, "ce_max"), batch_size=7)
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])


def _kill_busy_worker(runner: Runner) -> int:
    client = runner.client
    pids = runner.worker_pids()
    for _ in range(200):
        busy = [w for w, tasks in client.processing().items() if tasks]
        if busy:
            pid = pids[busy[0]]
            os.kill(pid, signal.SIGKILL)
            return pid
        time.sleep(0.01)
    raise AssertionError("no worker was busy")


# Last in the file: it kills a worker of the shared cluster (its nanny starts a new one).
def test_a_killed_worker_loses_and_duplicates_nothing(serial: Runner,
                                                      two_workers: Runner) -> None:
    import psutil

    jobs = [Job(model=MODEL, weight_bits=wb, seed=seed, encoding="bernoulli", samples=200)
            for wb, seed in itertools.product([7, 5], [0, 1, 2, 3, 4])]
    expected = serial.run(jobs)
    t0 = time.perf_counter()
    runner = two_workers
    killed: list[int] = []
    seen: list[str] = []

    def on_result(rec: dict[str, Any]) -> None:
        seen.append(rec["key"])
        if not killed:
            killed.append(_kill_busy_worker(runner))

    got = runner.run(jobs, on_result=on_result)
    assert killed, "a worker was killed mid-sweep"
    gone = not psutil.pid_exists(killed[0]) or (
        psutil.Process(killed[0]).status() == psutil.STATUS_ZOMBIE)
    assert gone
    assert killed[0] not in runner.worker_pids().values()
    assert time.perf_counter() - t0 < 60
    assert sorted(seen) == sorted(j.key for j in jobs), "every job reported exactly once"
    assert not [r["error"] for r in got if "error" in r]
    assert same_results(got, expected)


def test_bundled_data_is_made_on_the_workers_not_in_the_client() -> None:
    """The client's preparation keeps only recipes of the digits data (its spike encoding
    would otherwise run before any job starts); a recipe makes the task's own arrays."""
    from neurochip.distributed import DigitsData, _prepare, make_data
    from neurochip.tasks.digits import digits_spikes

    jobs = _jobs()
    prep = _prepare(jobs)
    test_keys = {prep.job_data[j.key] for j in jobs if j.kind == "eval" and j.key in
                 prep.job_data}
    assert test_keys and all(isinstance(prep.datas[k], DigitsData) for k in test_keys)
    calib = {k for k in prep.job_calib.values() if k}
    assert calib and all(isinstance(prep.datas[k], DigitsData) for k in calib)
    job = next(j for j in jobs if j.seed == 1 and j.kind == "eval")
    made = prep.data(prep.job_data[job.key])
    rec = prep.datas[prep.job_data[job.key]]
    assert isinstance(rec, DigitsData)
    test = digits_spikes(rec.steps, rec.encoding, seed=1)[1]
    np.testing.assert_array_equal(made["inputs"], test.x[:40])
    np.testing.assert_array_equal(made["labels"], test.y[:40])
    assert prep.data(prep.job_data[job.key]) is made  # made once per process
    np.testing.assert_array_equal(make_data(rec)["inputs"], made["inputs"])


def test_a_chunk_makes_its_data_from_recipes_once_per_process() -> None:
    """Recipes travel to the chunk (no data task for the chunks to wait for): the chunk
    makes the arrays, keeps them for the next chunks, and its records equal those of the
    same chunk given the arrays."""
    import neurochip.distributed as dist

    jobs = [j for j in _jobs() if j.calibration == "p99.5" and j.weight_bits == 8]
    prep = dist._prepare(jobs)
    spec, ckey = prep.compiles[prep.job_compile[jobs[0].key]]
    assert ckey is not None
    recipes = [prep.datas[prep.job_data[j.key]] for j in jobs]
    readouts = [prep.readouts[j.key] for j in jobs]
    dist.clear_caches()
    from_recipes = dist.chunk_task(jobs, spec, prep.datas[ckey], recipes, readouts)
    assert set(dist._MADE) == {prep.datas[ckey], *recipes}  # made here, and kept
    kept = {r: dist._MADE[r] for r in dist._MADE}
    dist.chunk_task(jobs, spec, prep.datas[ckey], recipes, readouts)
    assert all(dist._MADE[r] is a for r, a in kept.items())  # not made again
    dist.clear_caches()
    assert not dist._MADE
    from_arrays = dist.chunk_task(jobs, spec, prep.data(ckey)["x"],
                                  [prep.data(prep.job_data[j.key]) for j in jobs], readouts)
    assert not [r for r in from_recipes if "error" in r]
    assert same_results(from_recipes, from_arrays)
