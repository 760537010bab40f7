"""Safe reading (caps before allocation, digests) and atomic writing of user files."""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import zipfile
from pathlib import Path

import numpy as np
import pytest
import yaml

import neurochip
from neurochip.core.safeio import (
    ReadLimits,
    atomic_path,
    atomic_write,
    json_depth,
    loads_json_limited,
    read_npy,
)
from neurochip.errors import (
    ConfigError,
    HardwareSpecError,
    ImageError,
    ImageFormatError,
    ModelImportError,
)
from neurochip.fuzz import nchip_bytes

GOLDEN = Path(__file__).resolve().parents[1] / "golden"


def _members(path: Path) -> tuple[dict, dict[str, bytes]]:
    with zipfile.ZipFile(path) as zf:
        man = json.loads(zf.read("manifest.json"))
        return man, {n: zf.read(n) for n in zf.namelist() if n != "manifest.json"}


# ---------------------------------------------------------------------- digests


def test_saved_image_is_signed_and_digest_is_stable(tmp_path: Path) -> None:
    old = neurochip.ChipImage.load(GOLDEN / "recurrent.nchip")
    assert not old.signed and len(old.digest) == 64  # golden files predate digests
    p = old.save(tmp_path / "r.nchip")
    new = neurochip.ChipImage.load(p)
    assert new.signed and new.digest == old.digest
    man, _ = _members(p)
    assert man["digests"]["image"] == old.digest
    assert set(man["digests"]["members"]) == {f"arrays/{k}.npy" for k in old.arrays}


def test_altered_member_or_manifest_is_rejected(tmp_path: Path) -> None:
    p = neurochip.ChipImage.load(GOLDEN / "recurrent.nchip").save(tmp_path / "r.nchip")
    man, members = _members(p)
    # a weight byte changed and the file re-zipped: the member digest no longer matches
    raw = bytearray(members["arrays/conn/0/w.npy"])
    raw[-1] ^= 0x02
    bad = tmp_path / "w.nchip"
    bad.write_bytes(nchip_bytes(man, {**members, "arrays/conn/0/w.npy": bytes(raw)}))
    with pytest.raises(ImageError, match="recorded sha256") as ei:
        neurochip.ChipImage.load(bad)
    assert ei.value.member == "arrays/conn/0/w.npy"
    assert neurochip.ChipImage.load(bad, verify=False).arrays["conn/0/w"][-1] == raw[-1]
    # a valid-looking manifest edit (a threshold): the image digest no longer matches
    man2 = json.loads(json.dumps(man))
    man2["populations"][1]["vth"] += 1
    bad.write_bytes(nchip_bytes(man2, members))
    with pytest.raises(ImageError, match="image digest"):
        neurochip.ChipImage.load(bad)
    # an output scale of 0 is refused even in an unsigned (re-zipped without digests) file
    man3 = json.loads(json.dumps(man))
    man3.pop("digests")
    next(iter(man3["metadata"]["outputs"].values()))["scale"] = 0
    bad.write_bytes(nchip_bytes(man3, members))
    with pytest.raises(ImageError, match="scale"):
        neurochip.ChipImage.load(bad)


def test_from_bytes_checks_like_load(tmp_path: Path) -> None:
    data = (GOLDEN / "feed_forward.nchip").read_bytes()
    img = neurochip.ChipImage.from_bytes(data)
    assert img.equals(neurochip.ChipImage.load(GOLDEN / "feed_forward.nchip"))
    with pytest.raises(ImageFormatError):
        neurochip.ChipImage.from_bytes(data[: len(data) // 2])


# ---------------------------------------------------------------------- capped reading


def test_decompression_bomb_is_refused_before_inflating(tmp_path: Path) -> None:
    man, members = _members(GOLDEN / "feed_forward.nchip")
    bomb = tmp_path / "bomb.nchip"
    with zipfile.ZipFile(bomb, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("manifest.json", json.dumps(man) + " " * (64 << 20))
        for k, v in members.items():
            zf.writestr(k, v)
    assert bomb.stat().st_size < 1 << 20
    with pytest.raises(ImageError, match=r"compression ratio|at most"):
        neurochip.ChipImage.load(bomb)
    small = ReadLimits(max_total_bytes=1000)
    with pytest.raises(ImageError, match="inflate"):
        neurochip.ChipImage.load(GOLDEN / "feed_forward.nchip", limits=small)


def test_member_count_and_strays_are_limited(tmp_path: Path) -> None:
    man, members = _members(GOLDEN / "feed_forward.nchip")
    extra = tmp_path / "extra.nchip"
    extra.write_bytes(nchip_bytes(man, {**members, "arrays/junk.npy": b"x"}))
    with pytest.raises(ImageError, match="not part of the image"):
        neurochip.ChipImage.load(extra)
    with pytest.raises(ImageError, match="members"):
        neurochip.ChipImage.load(GOLDEN / "feed_forward.nchip",
                                 limits=ReadLimits(max_members=3))


def _npy(descr: str, shape: tuple[int, ...], body: bytes) -> bytes:
    header = repr({"descr": descr, "fortran_order": False, "shape": shape})
    header += " " * (63 - (len(header) + 10) % 64) + "\n"
    return b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header.encode() + body


def test_npy_header_is_validated_before_allocation() -> None:
    assert read_npy(_npy("<i4", (2,), bytes(8)), "m", "w").tolist() == [0, 0]
    with pytest.raises(ImageError, match="elements"):
        read_npy(_npy("<i4", (2**40,), bytes(8)), "m", "w")
    with pytest.raises(ImageError, match="needs 8 bytes"):
        read_npy(_npy("<i4", (2,), bytes(6)), "m", "w")
    with pytest.raises(ImageError, match="not a plain number"):
        read_npy(_npy("|O", (2,), bytes(16)), "m", "w")
    with pytest.raises(ImageError, match="non-negative"):
        read_npy(_npy("<i4", (-2,), bytes(8)), "m", "w")


def test_json_depth_is_limited() -> None:
    assert json_depth(b'{"a": [1, {"b": "[[[["}]}') == 3
    with pytest.raises(ImageError, match="nests 100000 deep"):
        loads_json_limited(b"[" * 100000 + b"]" * 100000, "manifest.json", "x")


# ---------------------------------------------------------------------- YAML specs


@pytest.mark.parametrize(("section", "key", "value", "match"), [
    ("timing", "cycle_ns", float("inf"), "finite"),
    ("timing", "cycle_ns", 0, "greater than 0"),
    ("energy", "synop_pj", float("nan"), "finite"),
    ("energy", "hop_ew_pj", float("inf"), "finite"),
    ("mesh", "tiles_x", True, "must be a number"),
    ("core", "max_neurons", True, "must be a number"),
    ("mesh", "tiles_x", 10**6, "at most"),
])
def test_hardware_spec_rejects_bad_numbers(tmp_path: Path, section: str, key: str,
                                           value: object, match: str) -> None:
    d = yaml.safe_load((Path(neurochip.__file__).parents[1] / "hw_configs" /
                        "loihi_like.yaml").read_text())
    d[section][key] = value
    p = tmp_path / "hw.yaml"
    p.write_text(yaml.safe_dump(d))
    with pytest.raises(HardwareSpecError, match=match) as ei:
        neurochip.load_hw(p)
    assert section in (ei.value.field or "")


def test_hardware_spec_rejects_aliases(tmp_path: Path) -> None:
    p = tmp_path / "hw.yaml"
    p.write_text("a: &x [1, 2]\nb: *x\n")
    with pytest.raises(HardwareSpecError, match="aliases"):
        neurochip.load_hw(p)


# ---------------------------------------------------------------------- NIR inputs


def _nir_file(tmp_path: Path, **meta: object) -> Path:
    import nir

    g = nir.NIRGraph(
        nodes={"input": nir.Input(input_type=np.array([2])),
               "fc": nir.Linear(weight=np.eye(2)),
               "lif": nir.LIF(tau=np.full(2, 0.01), r=np.ones(2), v_leak=np.zeros(2),
                              v_threshold=np.ones(2)),
               "output": nir.Output(output_type=np.array([2]))},
        edges=[("input", "fc"), ("fc", "lif"), ("lif", "output")],
        metadata=dict(meta))
    p = tmp_path / "m.nir"
    nir.write(str(p), g)
    return p


@pytest.mark.parametrize("dt", [float("nan"), 0.0, -1e-3, float("inf")])
def test_nir_metadata_dt_must_be_positive_finite(tmp_path: Path, dt: float) -> None:
    from compiler.frontends.nir import read_nir

    with pytest.raises(ModelImportError, match=r"neurochip\.dt"):
        read_nir(_nir_file(tmp_path, **{"neurochip.dt": dt}))


def test_nir_datasets_bounded_before_reading(tmp_path: Path, monkeypatch) -> None:
    import compiler.frontends.nir.reader as reader

    p = _nir_file(tmp_path, **{"neurochip.dt": 1e-3})
    reader.read_nir(p)
    monkeypatch.setattr(reader, "MAX_NIR_TOTAL_ELEMENTS", 5)
    with pytest.raises(ModelImportError, match="elements in all"):
        reader.read_nir(p)


def test_nir_conv_padding_is_bounded(tmp_path: Path) -> None:
    import nir

    from compiler.frontends.nir import from_nir

    g = nir.NIRGraph(
        nodes={"input": nir.Input(input_type=np.array([1, 4, 4])),
               "conv": nir.Conv2d(input_shape=(4, 4), weight=np.ones((2, 1, 3, 3)),
                                  stride=1, padding=10_000, dilation=1, groups=1,
                                  bias=np.zeros(2)),
               "lif": nir.IF(r=np.ones(1), v_threshold=np.ones(1)),
               "output": nir.Output(output_type=np.array([1]))},
        edges=[("input", "conv"), ("conv", "lif"), ("lif", "output")],
        metadata={"neurochip.dt": 1e-3}, type_check=False)
    with pytest.raises(ModelImportError, match="padding"):
        from_nir(g)


# ---------------------------------------------------------------------- atomic writes


def test_failing_write_keeps_previous_file_and_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "out.bin"
    target.write_bytes(b"previous")
    with pytest.raises(RuntimeError), atomic_write(target) as fh:
        fh.write(b"half of the new")
        raise RuntimeError("disk full")
    assert target.read_bytes() == b"previous"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.bin"]
    with pytest.raises(KeyboardInterrupt), atomic_path(target) as tmp:
        tmp.write_bytes(b"new")
        raise KeyboardInterrupt
    assert target.read_bytes() == b"previous"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.bin"]
    with atomic_write(target, "w") as fh:
        fh.write("new")
    assert target.read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.bin"]
    umask = os.umask(0o022)
    os.umask(umask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~umask  # not mkstemp's 0600


def test_image_save_failure_keeps_previous(tmp_path: Path, monkeypatch) -> None:
    img = neurochip.ChipImage.load(GOLDEN / "feed_forward.nchip")
    target = img.save(tmp_path / "i.nchip")
    before = target.read_bytes()

    def boom(*a: object, **k: object) -> None:
        raise OSError("no space left on device")

    monkeypatch.setattr(zipfile.ZipFile, "writestr", boom)
    with pytest.raises(OSError):
        img.save(target)
    assert target.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["i.nchip"]


def _writer(path: str, which: int, n: int) -> None:
    img = neurochip.ChipImage.load(GOLDEN / ("feed_forward.nchip" if which else
                                             "recurrent.nchip"))
    for _ in range(n):
        img.save(path)


def test_concurrent_writers_never_produce_a_corrupt_target(tmp_path: Path) -> None:
    target = tmp_path / "c.nchip"
    neurochip.ChipImage.load(GOLDEN / "recurrent.nchip").save(target)
    ctx = mp.get_context("fork")
    procs = [ctx.Process(target=_writer, args=(str(target), k % 2, 15)) for k in range(3)]
    for p in procs:
        p.start()
    reads = 0
    while any(p.is_alive() for p in procs) or reads < 20:
        img = neurochip.ChipImage.load(target)  # never corrupt, always one of the two
        assert img.signed and img.n_neurons in (30, 24)
        reads += 1
    for p in procs:
        p.join()
        assert p.exitcode == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.nchip"]


def test_run_output_is_written_atomically(tmp_path: Path, monkeypatch) -> None:
    from neurochip.cli import main

    out = tmp_path / "r.npz"
    out.write_bytes(b"previous results")
    x = tmp_path / "x.npz"
    np.savez(x, **{"in": np.zeros((3, 16), bool)})

    def boom(*a: object, **k: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez_compressed", boom)
    rc = main(["run", str(GOLDEN / "feed_forward.nchip"), "-i", str(x), "-o", str(out), "-q"])
    assert rc == 2
    assert out.read_bytes() == b"previous results"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.npz", "x.npz"]


def test_input_npz_with_huge_header_is_a_typed_error(tmp_path: Path) -> None:
    from neurochip.commands import read_npz

    raw = _npy("|i1", (2**40,), bytes(2))
    p = tmp_path / "x.npz"
    with zipfile.ZipFile(p, "w") as zf:
        zf.writestr("in.npy", raw)
    with pytest.raises(ConfigError, match=r"not a readable \.npz"):
        read_npz(p, "inputs")
