"""``neurochip run``: inputs, batching, probes, outputs, and every error path."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

import neurochip
from neurochip.commands.run_cmd import output_latency
from neurochip.core.image import ChipImage


def _x(shape: tuple[int, ...], seed: int = 0) -> Any:
    return np.random.default_rng(seed).random(shape) < 0.3


def _load(path: Path) -> dict[str, Any]:
    with np.load(path) as z:
        return {k: z[k] for k in z.files}


def test_output_latency_counts_one_step_per_projection_plus_delays(
        ff_image: Path, rec_image: Path) -> None:
    assert output_latency(ChipImage.load(ff_image)) == 2  # in -> hid -> out
    assert output_latency(ChipImage.load(rec_image)) == 4  # in -> rec -> (delay 2) spk


def test_single_sample_matches_the_emulator(cli: Any, ff_image: Path, write_npz: Any,
                                            tmp_path: Path) -> None:
    x = _x((30, 16))
    out = tmp_path / "o.npz"
    rc, stdout, err = cli("run", ff_image, "--input", write_npz("x.npz", **{"in": x}),
                          "-o", out)
    assert rc == 0, err
    r = _load(out)
    image = ChipImage.load(ff_image)
    ref = neurochip.Emulator(image).run({"in": x}, steps=32, probes=["out.v"])
    assert r["spikes/hid"].shape == (32, 20)
    np.testing.assert_array_equal(r["spikes/hid"], ref.spikes["hid"])
    np.testing.assert_array_equal(r["probe/out.v"], ref.probes["out.v"])  # auto-probed
    scale = image.metadata["outputs"]["output"]["scale"]
    np.testing.assert_allclose(r["output/output"], ref.probes["out.v"] / scale)
    np.testing.assert_array_equal(r["latency_ns"], ref.latency_ns)
    np.testing.assert_allclose(r["energy_pj"], ref.energy.sum(axis=-1))
    np.testing.assert_array_equal(r["cycles"], ref.cycles.sum(axis=-1))
    assert "ran 1 sample x 32 steps (30 input steps + 2)" in stdout
    assert f"wrote {out}" in stdout


def test_batches_match_one_batched_run(cli: Any, rec_image: Path, write_npz: Any,
                                       tmp_path: Path) -> None:
    x = _x((7, 25, 8), seed=1)
    out = tmp_path / "o.npz"
    rc, stdout, err = cli("run", rec_image, "-i", write_npz("x.npz", arr_0=x), "-o", out,
                          "--batch-size", "3", "--probe", "rec.u", "--probe", "rec.v")
    assert rc == 0, err
    r = _load(out)
    ref = neurochip.Emulator(ChipImage.load(rec_image)).run(
        {"in": x}, steps=29, probes=["rec.u", "rec.v"])
    for k in ("rec", "spk"):
        np.testing.assert_array_equal(r[f"spikes/{k}"], ref.spikes[k])
    np.testing.assert_array_equal(r["probe/rec.u"], ref.probes["rec.u"])
    np.testing.assert_array_equal(r["output/output"], ref.spikes["spk"])
    assert r["cycles"].shape == (7, 29)
    assert "ran 7 samples x 29 steps" in stdout
    one = tmp_path / "one.npz"
    rc, _, err = cli("run", rec_image, "-i", write_npz("x.npz", arr_0=x), "-o", one,
                     "--batch-size", "3", "--probe", "rec.u", "--threads", "1", "-q")
    assert rc == 0, err
    r1 = _load(one)
    for k in ("spikes/rec", "spikes/spk", "probe/rec.u", "cycles", "energy_pj"):
        np.testing.assert_array_equal(r1[k], r[k])  # threads never change results
    rc, _, err = cli("run", rec_image, "-i", write_npz("x.npz", arr_0=x), "-o", one,
                     "--threads", "0")
    assert rc == 2 and "threads" in err


def test_steps_spikes_backend_quiet(cli: Any, rec_image: Path, write_npz: Any,
                                    tmp_path: Path) -> None:
    x = write_npz("x.npz", **{"in": _x((3, 10, 8), seed=2)})
    a, b = tmp_path / "a.npz", tmp_path / "b.npz"
    rc, out, _ = cli("run", rec_image, "-i", x, "-o", a, "--steps", "15", "--spikes", "spk",
                     "--quiet")
    assert (rc, out) == (0, "")
    ra = _load(a)
    assert set(ra) == {"spikes/spk", "output/output", "cycles", "latency_ns", "energy_pj"}
    assert ra["spikes/spk"].shape == (3, 15, 6)
    rc, _, _ = cli("run", rec_image, "-i", x, "-o", b, "--steps", "15", "--spikes", "none",
                   "--backend", "reference", "-q")
    rb = _load(b)
    assert rc == 0 and not any(k.startswith("spikes/") for k in rb)
    np.testing.assert_array_equal(ra["cycles"], rb["cycles"])
    rc, out, _ = cli("run", rec_image, "-i", x, "-o", b, "--spikes", "none")
    assert "outputs not recorded" in out


@pytest.mark.parametrize("args, message", [
    (["{tmp}/missing.nchip", "-i", "{x}"], "chip image {tmp}/missing.nchip: file does not exist"),
    (["{tmp}/garbage.nchip", "-i", "{x}"], "not a chip image"),
    (["{img}", "-i", "{tmp}/nope.npz"], "input file {tmp}/nope.npz: file does not exist"),
    (["{img}", "-i", "{tmp}/garbage.nchip"], "not a readable .npz file"),
    (["{img}", "-i", "{tmp}/wrongname.npz"], "match no input population"),
    (["{img}", "-i", "{tmp}/empty.npz"], "holds no arrays"),
    (["{img}", "-i", "{tmp}/shape.npz"], "needs (T, 16) or (B, T, 16)"),
    (["{img}", "-i", "{tmp}/values.npz"], "must hold spikes (bool or 0/1)"),
    (["{img}", "-i", "{x}", "--steps", "5"], "shorter than the inputs"),
    (["{img}", "-i", "{x}", "--probe", "hid.w"], "bad probe 'hid.w'"),
    (["{img}", "-i", "{x}", "--spikes", "hid,nope"], "no spiking population 'nope'"),
    (["{img}", "-i", "{x}", "--batch-size", "0"], "field 'batch_size'"),
    (["{img}", "-i", "{x}", "-o", "{tmp}/no/dir/o.npz"], "folder does not exist"),
])
def test_errors_are_one_clear_message(cli: Any, ff_image: Path, tmp_path: Path,
                                      args: list[str], message: str) -> None:
    (tmp_path / "garbage.nchip").write_bytes(b"not a zip")
    x = tmp_path / "x.npz"
    np.savez(x, **{"in": _x((10, 16))})
    np.savez(tmp_path / "wrongname.npz", a=_x((10, 16)), b=_x((10, 16)))
    np.savez(tmp_path / "empty.npz")
    np.savez(tmp_path / "shape.npz", **{"in": _x((10, 15))})
    np.savez(tmp_path / "values.npz", **{"in": np.full((10, 16), 2)})
    sub = {"{tmp}": str(tmp_path), "{x}": str(x), "{img}": str(ff_image)}

    def fill(a: str) -> str:
        for k, v in sub.items():
            a = a.replace(k, v)
        return a

    args = [fill(a) for a in args]
    if "-o" not in args:
        args += ["-o", str(tmp_path / "o.npz")]
    rc, _, err = cli("run", *args)
    assert rc == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("neurochip run: error: "), err
    assert fill(message) in err


def test_inconsistent_batches(cli: Any, tmp_path: Path) -> None:
    import warnings

    from compiler.ir import Dense, Graph, Input, Neurons, Projection

    g = Graph({"a": Input((2,)), "b": Input((3,)),
               "n": Neurons((1,), alpha=0.0, beta=0.5, threshold=1.0)},
              (Projection("pa", "a", "n", Dense(np.ones((1, 2)))),
               Projection("pb", "b", "n", Dense(np.ones((1, 3))))), {"o": "n"})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        img = neurochip.compile(g, "loihi_like")
    img.save(tmp_path / "two.nchip")
    np.savez(tmp_path / "x.npz", a=_x((2, 5, 2)), b=_x((3, 5, 3)))
    rc, _, err = cli("run", tmp_path / "two.nchip", "-i", tmp_path / "x.npz", "-o",
                     tmp_path / "o.npz")
    assert rc == 2 and "inputs disagree on the batch size: [2, 3]" in err
    np.savez(tmp_path / "y.npz", arr_0=_x((5, 2)))
    rc, _, err = cli("run", tmp_path / "two.nchip", "-i", tmp_path / "y.npz", "-o",
                     tmp_path / "o.npz")
    assert rc == 2 and "inputs are ['a', 'b']" in err


def test_usage_errors_exit_2(cli: Any, ff_image: Path) -> None:
    rc, _, err = cli("run", ff_image)
    assert rc == 2 and "--input" in err
    rc, _, err = cli("run", ff_image, "-i", "x.npz", "-o", "o.npz", "--backend", "gpu")
    assert rc == 2 and "invalid choice" in err


def test_report_prints_the_breakdown_and_plots_it(cli: Any, rec_image: Path, write_npz: Any,
                                                  tmp_path: Path) -> None:
    x = _x((5, 25, 8), seed=2)
    out, png = tmp_path / "o.npz", tmp_path / "b.png"
    rc, stdout, err = cli("run", rec_image, "-i", write_npz("x.npz", arr_0=x), "-o", out,
                          "--batch-size", "2", "--report-png", png, "-q")
    assert rc == 0, err
    assert "per layer" in stdout and "per core" in stdout and "busiest router port" in stdout
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # the merged breakdown of three batches equals the breakdown of one batched run
    ref = neurochip.Emulator(ChipImage.load(rec_image)).run({"in": x}, steps=29,
                                                           breakdown=True)
    assert ref.breakdown is not None
    for name, row in ref.breakdown.layers.items():
        assert f"{row['syn_ops']:.0f}" in stdout.split(name, 1)[1].split("\n", 1)[0]
    rc, _, err = cli("run", rec_image, "-i", write_npz("x.npz", arr_0=x), "-o", out,
                     "--report", "--spikes", "none")
    assert rc == 2 and "--report" in err
