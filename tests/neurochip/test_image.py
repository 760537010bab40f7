"""Chip images: exact save/load round trips and clear errors for bad files."""

import json
import zipfile
from pathlib import Path

import numpy as np
import pytest

import neurochip
from neurochip.core.errors import ImageFormatError
from neurochip.core.image import ChipImage
from neurochip.testing import random_network


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_round_trip_is_exact(tmp_path: Path, seed: int) -> None:
    net = random_network(seed, "tiny4", max_size=45)
    img = neurochip.compile(net, "tiny4")
    path = img.save(tmp_path / "m.nchip")
    again = ChipImage.load(path)
    assert again.equals(img)
    assert again.save(tmp_path / "m2.nchip").read_bytes() == path.read_bytes()
    for c in net.connections:
        assert np.array_equal(again.weights(c.name), c.dense_weights())
        d = again.delays(c.name)
        assert np.array_equal(d, c.dense_delays())


def test_image_holds_placement_and_routing() -> None:
    img = neurochip.compile(random_network(5, "tiny4", max_size=45), "tiny4")
    assert img.hw.name == "tiny4"
    man = img.manifest()
    assert man["format"] == "neurochip-image" and man["version"] == 1
    assert man["hw"]["hash"] == img.hw.spec_hash
    for p in img.lif_populations:
        assert sum(n for _, _, n in p.slices) == p.size
    assert img.arrays["route/ptr"][-1] == img.arrays["route/core"].size
    assert "in" in img.summary()


def _rewrite(src: Path, dst: Path, edit) -> None:
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for item in zin.infolist():
            data = edit(item.filename, zin.read(item.filename))
            if data is not None:
                zout.writestr(item.filename, data)


@pytest.fixture
def saved(tmp_path: Path) -> Path:
    return neurochip.compile(random_network(2), "loihi_like").save(tmp_path / "ok.nchip")


def test_not_a_zip_and_truncated(tmp_path: Path, saved: Path) -> None:
    bad = tmp_path / "bad.nchip"
    bad.write_text("hello")
    with pytest.raises(ImageFormatError, match="not a chip image"):
        ChipImage.load(bad)
    raw = saved.read_bytes()
    bad.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(ImageFormatError):
        ChipImage.load(bad)
    with pytest.raises(ImageFormatError, match="does not exist"):
        ChipImage.load(tmp_path / "missing.nchip")


def test_corrupted_member_is_detected(tmp_path: Path, saved: Path) -> None:
    raw = bytearray(saved.read_bytes())
    with zipfile.ZipFile(saved) as zf:
        info = zf.getinfo("arrays/route/ptr.npy")
    # flip bytes inside that member's stored data: its CRC no longer matches
    start = info.header_offset + 30 + len(info.filename) + len(info.extra)
    for k in range(start + 5, start + 15):
        raw[k] ^= 0xFF
    bad = tmp_path / "flip.nchip"
    bad.write_bytes(bytes(raw))
    with pytest.raises(ImageFormatError, match="route/ptr"):
        ChipImage.load(bad)


@pytest.mark.parametrize(
    ("edit", "match"),
    [
        (lambda m: m.update(version=99), "unsupported image version 99"),
        (lambda m: m.update(format="other"), "wrong 'format'"),
        (lambda m: m.pop("populations"), "lacks 'populations'"),
        (lambda m: m["hw"].update(hash="0" * 16), "does not match its recorded hash"),
        (lambda m: m["arrays"]["route/ptr"].update(dtype="int8"), "manifest says int8"),
        (lambda m: m["arrays"].update({"extra/x": {"dtype": "int8", "shape": [1]}}),
         "'extra/x' is missing"),
        (lambda m: m["populations"][0].update(bogus=1), "unexpected fields"),
    ],
)
def test_manifest_problems(tmp_path: Path, saved: Path, edit, match) -> None:
    def change(name: str, data: bytes):
        if name != "manifest.json":
            return data
        man = json.loads(data)
        edit(man)
        return json.dumps(man)

    bad = tmp_path / "edited.nchip"
    _rewrite(saved, bad, change)
    with pytest.raises(ImageFormatError, match=match):
        ChipImage.load(bad)


def test_missing_manifest_and_bad_json(tmp_path: Path, saved: Path) -> None:
    bad = tmp_path / "nomani.nchip"
    _rewrite(saved, bad, lambda n, d: None if n == "manifest.json" else d)
    with pytest.raises(ImageFormatError, match=r"manifest\.json is missing"):
        ChipImage.load(bad)
    _rewrite(saved, bad, lambda n, d: b"{not json" if n == "manifest.json" else d)
    with pytest.raises(ImageFormatError, match="corrupt"):
        ChipImage.load(bad)


def test_arrays_never_need_pickle(tmp_path: Path, saved: Path) -> None:
    bad = tmp_path / "pickled.nchip"
    import io

    def change(name: str, data: bytes):
        if name == "arrays/route/ptr.npy":
            buf = io.BytesIO()
            np.save(buf, np.array([{"a": 1}], dtype=object), allow_pickle=True)
            return buf.getvalue()
        return data

    _rewrite(saved, bad, change)
    with pytest.raises(ImageFormatError, match="route/ptr"):
        ChipImage.load(bad)
