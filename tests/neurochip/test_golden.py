"""Golden vectors: record, replay, tolerances, divergence reports, and every fault kind of
the fault-injecting board caught and located."""

from __future__ import annotations

import copy
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest

import neurochip
from neurochip.board import open_board
from neurochip.board_faulty import FAULT_KINDS
from neurochip.cli import main
from neurochip.errors import ConfigError, ImageFormatError
from neurochip.golden import Recording, Tolerance, record, replay
from neurochip.hil import demo_image, demo_inputs


@pytest.fixture(scope="module")
def rec() -> Recording:
    return record(demo_image(), {"in": demo_inputs(40)}, 44)


def test_a_recording_round_trips_without_pickle(rec, tmp_path) -> None:
    path = rec.save(tmp_path / "r.ngold")
    with zipfile.ZipFile(path) as zf:
        names = zf.namelist()
        man = json.loads(zf.read("manifest.json"))
    assert "image.nchip" in names and all(
        n.endswith(".npy") for n in names if n.startswith("arrays/"))
    img = demo_image()
    assert man["image"]["hw"] == {"name": img.hw.name, "hash": img.hw.spec_hash}
    assert man["image"]["digest"] == neurochip.board.image_digest(img)
    assert man["board"]["backend"] == "emulator"
    back = Recording.load(path)
    assert back.image.equals(rec.image) and back.steps == 44
    for k, v in rec.result.spikes.items():
        np.testing.assert_array_equal(back.result.spikes[k], v)
    for k, v in rec.result.counters.items():
        np.testing.assert_array_equal(back.result.counters[k], v)
    assert set(back.weights) == {c.name for c in img.connections}
    assert sorted(back.probes) == sorted(f"{p.name}.{v}" for p in img.lif_populations
                                         for v in "uv")


def test_saving_replaces_the_file_atomically(rec, tmp_path, monkeypatch) -> None:
    path = rec.save(tmp_path / "r.ngold")
    before = path.read_bytes()

    def fail(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(zipfile.ZipFile, "write", fail)  # mid-write: the image member
    with pytest.raises(OSError, match="disk full"):
        rec.save(path)
    assert path.read_bytes() == before  # the previous recording is intact
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.ngold"]  # no temporary left


@pytest.mark.parametrize("uri", ["emulator", "reference", "tcp"])
def test_independent_boards_reproduce_a_recording_exactly(rec, uri) -> None:
    if uri == "tcp":
        from neurochip.board_remote import BoardServer

        with BoardServer() as srv:
            report = replay(rec, srv.uri)
    else:
        report = replay(rec, uri)
    assert report.ok and report.first is None, report.summary()
    assert report.counts["spikes l2"] == 0 and report.counts["latency"] == 0
    assert "REPRODUCED" in report.summary()


def _faulty_outputs(rec: Recording, uri: str):
    b = open_board(uri)
    b.load(rec.image)
    b.read_weights(rec.image.connections[0].name)
    b.reset()
    try:
        return b, b.run(rec.inputs, rec.steps, probes=rec.probes, spikes=rec.spikes)
    except neurochip.board.BoardConnectionError:
        return b, None


@pytest.mark.parametrize("kind", FAULT_KINDS)
def test_replay_catches_every_fault_kind_and_names_where(rec, kind) -> None:
    rate = {"stuck": 0.03, "bitflip": 0.01}.get(kind, 0.1)
    uri = f"faulty:{kind}={rate},seed=4+emulator"
    b, _ = _faulty_outputs(rec, uri)
    assert b.injected[kind] > 0  # type: ignore[attr-defined]
    report = replay(rec, uri)
    assert not report.ok, f"{kind} went unnoticed"
    d = report.first
    assert d is not None
    text = report.summary()
    assert "DIVERGED" in text and str(d) in text
    if kind == "bitflip":
        b = open_board(uri)
        b.load(rec.image)
        flipped = {name for name, _, _ in b.flips}  # type: ignore[attr-defined]
        assert d.kind == "weights" and d.what in flipped
        post, pre = d.neuron  # type: ignore[misc]
        assert rec.weights[d.what][post, pre] == d.expected != d.got
        assert b.read_weights(d.what)[post, pre] == d.got
        return
    if kind == "disconnect":
        assert d.kind == "error" and d.what == "BoardConnectionError"
        assert d.step is not None and f"step {d.step}" in d.detail
        return
    if kind == "jitter":
        assert d.kind == "counter" and d.what == "latency"
        _, out = _faulty_outputs(rec, uri)
        want = rec.result.latency_cycles
        first = int(np.flatnonzero(out.latency_cycles != want)[0])
        assert d.step == first and d.got == out.latency_cycles[first] > d.expected
        return
    # spike faults: the named place is where the outputs first differ
    b, out = _faulty_outputs(rec, uri)
    if kind == "stuck":
        pop = rec.image.population(d.what)
        assert pop.offset + d.neuron in set(b.stuck.tolist())  # type: ignore[attr-defined]
    first = min(int(np.argwhere(out.spikes[k] != v)[:, 0].min())
                for k, v in rec.result.spikes.items() if (out.spikes[k] != v).any())
    assert d.step == first
    if d.kind == "spikes":
        e = rec.result.spikes[d.what][d.step, d.neuron]
        g = out.spikes[d.what][d.step, d.neuron]
        assert e != g and d.expected == ("spike" if e else "no spike")
        if kind == "drop":
            assert (d.expected, d.got) == ("spike", "no spike")
        if kind in ("duplicate", "stuck"):
            assert (d.expected, d.got) == ("no spike", "spike")
    else:
        assert kind == "delay" and d.kind == "probe"


def test_faults_are_deterministic_in_the_seed(rec) -> None:
    a = replay(rec, "faulty:drop=0.05,seed=9+emulator")
    b = replay(rec, "faulty:drop=0.05,seed=9+emulator")
    c = replay(rec, "faulty:drop=0.05,seed=10+emulator")
    assert str(a.first) == str(b.first) and a.counts == b.counts
    assert a.counts != c.counts


def _edited(rec: Recording) -> Recording:
    out = copy.copy(rec)
    out.result = copy.copy(rec.result)
    out.result.spikes = {k: v.copy() for k, v in rec.result.spikes.items()}
    out.result.probes = {k: v.copy() for k, v in rec.result.probes.items()}
    return out


def test_spike_time_jitter_and_rate_tolerances(rec) -> None:
    moved = _edited(rec)
    s = moved.result.spikes["l1"]
    t, i = (int(x) for x in np.argwhere(s[:-1] & ~s[1:])[0])
    s[t, i], s[t + 1, i] = False, True  # one spike one step late
    exact = replay(moved, "emulator")
    assert not exact.ok and exact.first is not None
    assert (exact.first.what, exact.first.step, exact.first.neuron) == ("l1", t, i)
    assert replay(moved, "emulator", tolerance=Tolerance(jitter=1)).ok
    lost = _edited(rec)
    s = lost.result.spikes["l2"]
    t, i = (int(x) for x in np.argwhere(s)[0])
    s[t, i] = False
    r = replay(lost, "emulator", tolerance=Tolerance(jitter=1))
    assert not r.ok and (r.first.what, r.first.neuron) == ("l2", i)  # type: ignore[union-attr]
    count = int(rec.result.spikes["l2"][:, i].sum())
    assert replay(lost, "emulator", tolerance=Tolerance(rate=1.0 / (count - 1))).ok
    assert not replay(lost, "emulator", tolerance=Tolerance(rate=0.5 / count)).ok


def test_per_probe_absolute_tolerance(rec) -> None:
    off = _edited(rec)
    off.result.probes["l0.v"][7, 3] += 3
    r = replay(off, "emulator")
    assert not r.ok and r.first is not None
    assert (r.first.kind, r.first.what, r.first.step, r.first.neuron) == ("probe", "l0.v", 7, 3)
    assert r.first.got == r.first.expected - 3
    assert replay(off, "emulator", tolerance=Tolerance(per_probe={"l0.v": 3})).ok
    assert not replay(off, "emulator", tolerance=Tolerance(probe=2)).ok
    assert replay(off, "emulator", tolerance=Tolerance.parse(["probe:l0.v=3"])).ok


def test_a_batched_recording_names_the_sample(tmp_path) -> None:
    rec = record(demo_image(), {"in": demo_inputs(20, batch=3)}, 22)
    assert replay(rec, "reference").ok
    bad = _edited(rec)
    bad.result.spikes["l0"][2, 5, 1] ^= True
    r = replay(bad, "emulator")
    assert r.first is not None and (r.first.sample, r.first.step, r.first.neuron) == (2, 5, 1)
    assert "sample 2" in str(r.first)


def test_tolerance_text_is_parsed_and_checked() -> None:
    t = Tolerance.parse(["jitter=2,rate=0.1", "probe=4", "probe:l0.v=9", "counters=off"])
    assert (t.jitter, t.rate, t.probe, t.per_probe, t.counters) == (2, 0.1, 4.0,
                                                                    {"l0.v": 9.0}, False)
    for bad in ("jitter=-1", "rate=x", "probe=nan", "speed=3", "jitter", "counters=maybe"):
        with pytest.raises(ConfigError):
            Tolerance.parse([bad])


def test_bad_recordings_are_typed_errors(rec, tmp_path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        Recording.load(tmp_path / "none.ngold")
    (tmp_path / "junk.ngold").write_bytes(b"not a zip")
    with pytest.raises(ImageFormatError, match="not a recording"):
        Recording.load(tmp_path / "junk.ngold")
    path = rec.save(tmp_path / "r.ngold")
    other = tmp_path / "tampered.ngold"
    with zipfile.ZipFile(path) as zin, zipfile.ZipFile(other, "w") as zout:
        for item in zin.infolist():
            data = zin.read(item)
            if item.filename == "manifest.json":
                man = json.loads(data)
                man["image"]["digest"] = "0" * 64
                data = json.dumps(man).encode()
            zout.writestr(item, data)
    with pytest.raises(ImageFormatError, match="recorded hash"):
        Recording.load(other)


def test_record_and_replay_commands(tmp_path, capsys) -> None:
    img = demo_image().save(tmp_path / "m.nchip")
    np.savez(tmp_path / "x.npz", **{"in": demo_inputs(25)})
    out = tmp_path / "run.ngold"
    assert main(["record", str(img), "--input", str(tmp_path / "x.npz"), "-o", str(out)]) == 0
    assert "recorded" in capsys.readouterr().out and out.exists()
    assert main(["replay", str(out), "--board", "reference"]) == 0
    assert "REPRODUCED" in capsys.readouterr().out
    rj = tmp_path / "report.json"
    assert main(["replay", str(out), "--board", "faulty:stuck=0.05+emulator",
                 "--json", str(rj)]) == 1
    text = capsys.readouterr().out
    assert "DIVERGED" in text and "first divergence: step" in text and "population" in text
    data = json.loads(rj.read_text())
    assert data["ok"] is False and data["first"]["kind"] == "spikes"
    assert main(["replay", str(out), "--board", "faulty:jitter=0.5+emulator",
                 "--tolerance", "counters=off"]) == 0
    capsys.readouterr()
    for argv in (["replay", str(out), "--board", "fpga"],
                 ["replay", str(tmp_path / "nope.ngold")],
                 ["replay", str(out), "--tolerance", "jitter=soon"],
                 ["replay", str(out), "--board", "tcp://127.0.0.1:1"],
                 ["record", str(img), "--input", str(tmp_path / "x.npz"), "-o",
                  str(tmp_path / "r2.ngold"), "--probe", "nope.v"]):
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "error" in err


def test_the_golden_fixture_file_is_replayed_by_the_suite() -> None:
    path = Path(__file__).parent / "hardware" / "golden" / "demo.ngold"
    rec = Recording.load(path)
    assert rec.image.equals(demo_image()) or rec.image_hash
    assert replay(rec, "emulator").ok
