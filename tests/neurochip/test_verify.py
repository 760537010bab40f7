"""The image verifier: golden images pass; targeted and random mutations end in a typed
ImageError naming the member, or (when the mutation leaves a valid image) in a run on which
the Numba emulator and the reference model agree."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import neurochip
from neurochip.core.verify import verify_image
from neurochip.errors import ImageError, ImageFormatError, NeurochipError
from neurochip.fuzz import classify, mutate_arrays, mutate_manifest, nchip_bytes, run_image

GOLDEN = Path(__file__).resolve().parents[1] / "golden"
NAMES = ["feed_forward", "recurrent", "convolutional"]
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def images() -> dict[str, neurochip.ChipImage]:
    return {n: neurochip.ChipImage.load(GOLDEN / f"{n}.nchip") for n in NAMES}


def _copy(img: neurochip.ChipImage) -> neurochip.ChipImage:
    return neurochip.ChipImage(img.hw, copy.deepcopy(img.populations),
                               copy.deepcopy(img.connections), copy.deepcopy(img.cores),
                               {k: v.copy() for k, v in img.arrays.items()},
                               copy.deepcopy(img.learning), copy.deepcopy(img.metadata))


def test_golden_images_verify(images: dict[str, neurochip.ChipImage]) -> None:
    for img in images.values():
        verify_image(img)


def test_image_error_is_an_image_format_error() -> None:
    e = ImageError("bad", member="conn/0/post", index=3, limit=255)
    assert isinstance(e, ImageFormatError) and isinstance(e, NeurochipError)
    assert (e.member, e.index, e.limit) == ("conn/0/post", 3, 255)
    assert "conn/0/post[3]" in str(e)


@pytest.fixture(scope="module")
def expanded_conv() -> neurochip.ChipImage:
    """The convolutional golden model with its convolutions expanded to sparse synapses."""
    return neurochip.compile(GOLDEN / "convolutional.nir", "loihi_like", conv="expanded")


def _sparse_index(img: neurochip.ChipImage) -> int:
    return next(i for i, c in enumerate(img.connections) if c.storage == "sparse")


@pytest.mark.parametrize("value", [2**31, 256, 2**32 - 1])
def test_out_of_range_sparse_target_is_named(expanded_conv: neurochip.ChipImage,
                                              value: int) -> None:
    img = _copy(expanded_conv)
    ci = _sparse_index(img)
    img.arrays[f"conn/{ci}/post"][5] = value
    with pytest.raises(ImageError) as ei:
        verify_image(img)
    assert ei.value.member == f"conn/{ci}/post" and ei.value.index == 5
    assert ei.value.limit == img.connections[ci].n_post - 1
    with pytest.raises(ImageError):  # the emulator never sees it
        neurochip.Emulator(img)


def test_decreasing_row_pointer_is_named(expanded_conv: neurochip.ChipImage) -> None:
    img = _copy(expanded_conv)
    ci = _sparse_index(img)
    ptr = img.arrays[f"conn/{ci}/ptr"]
    ptr[3] = ptr[4] + 1
    with pytest.raises(ImageError, match="must not decrease") as ei:
        verify_image(img)
    assert ei.value.member == f"conn/{ci}/ptr"


@pytest.mark.parametrize(("edit", "member"), [
    (lambda im: setattr(im.connections[0], "weight_exp", 100), "weight_exp"),
    (lambda im: setattr(im.connections[0], "decode", 7), "decode"),
    (lambda im: setattr(im.lif_populations[0], "du", 99999), "du"),
    (lambda im: setattr(im.lif_populations[0], "vth", -5), "vth"),
    (lambda im: setattr(im.connections[0], "delay", 63), "delay"),
    (lambda im: setattr(im.connections[0], "n_pre", 3), "n_pre"),
    (lambda im: setattr(im.lif_populations[0], "size", 2**40), "size"),
    (lambda im: im.arrays.__setitem__("neurons/bias_exp", np.full_like(
        im.arrays["neurons/bias_exp"], 9)), "bias_exp"),
    (lambda im: im.arrays["route/core"].__setitem__(0, 5), "route/core"),
    (lambda im: im.arrays["route/nsyn"].__setitem__(0, 1), "route/nsyn"),
    (lambda im: im.arrays["neurons/core"].__setitem__(0, 3), "neurons/core"),
    (lambda im: im.arrays.__setitem__("route/ptr", im.arrays["route/ptr"].astype(np.int32)),
     "route/ptr"),
    (lambda im: next(iter(im.metadata["outputs"].values())).__setitem__("scale", 0.0),
     "scale"),
    (lambda im: next(iter(im.metadata["outputs"].values())).__setitem__("scale",
                                                                        float("inf")),
     "scale"),
])
def test_semantic_checks_at_load(images: dict[str, neurochip.ChipImage], edit, member) -> None:
    img = _copy(images["recurrent"])
    edit(img)
    with pytest.raises(ImageError) as ei:
        verify_image(img)
    assert member in ei.value.member


def test_reduced_precision_weight_low_bits(images: dict[str, neurochip.ChipImage]) -> None:
    img = _copy(images["recurrent"])
    img.connections[0].num_weight_bits = 6  # mixed: multiples of 8, bytes hold w >> 1
    with pytest.raises(ImageError, match="not a multiple of 8") as ei:
        verify_image(img)
    assert ei.value.member == "conn/0/w"
    img.arrays["conn/0/w"] &= np.uint8(0xFC)
    verify_image(img)


def test_tampered_file_is_rejected_at_load(tmp_path: Path,
                                           images: dict[str, neurochip.ChipImage]) -> None:
    # weight_exp = 100 written into a re-zipped file: caught by the verifier at load
    src = GOLDEN / "recurrent.nchip"
    with zipfile.ZipFile(src) as zf:
        man = json.loads(zf.read("manifest.json"))
        members = {n: zf.read(n) for n in zf.namelist() if n != "manifest.json"}
    man["connections"][0]["weight_exp"] = 100
    p = tmp_path / "bad.nchip"
    p.write_bytes(nchip_bytes(man, members))
    with pytest.raises(ImageError, match="weight_exp"):
        neurochip.ChipImage.load(p)
    loaded = neurochip.ChipImage.load(p, verify=False)  # the debugging escape hatch
    assert loaded.connections[0].weight_exp == 100


# ---------------------------------------------------------------------- mutation tests


@settings(max_examples=80, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(name=st.sampled_from(NAMES), seed=st.integers(0, 2**32 - 1))
def test_array_mutations_end_typed_or_correct(images: dict[str, neurochip.ChipImage],
                                              name: str, seed: int) -> None:
    img, what = mutate_arrays(images[name], np.random.default_rng(seed))
    outcome, detail = classify(lambda: (verify_image(img), run_image(img, steps=4)))
    assert outcome in ("typed", "ok"), f"{what}: {outcome} {detail}"


@settings(max_examples=80, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(name=st.sampled_from(NAMES), seed=st.integers(0, 2**32 - 1))
def test_manifest_mutations_end_typed_or_correct(tmp_path: Path, name: str, seed: int) -> None:
    src = GOLDEN / f"{name}.nchip"
    with zipfile.ZipFile(src) as zf:
        man = json.loads(zf.read("manifest.json"))
        members = {n: zf.read(n) for n in zf.namelist() if n != "manifest.json"}
    bad, what = mutate_manifest(man, np.random.default_rng(seed))
    data = nchip_bytes(bad, members)

    def load_and_run() -> None:
        img = neurochip.ChipImage.from_bytes(data)
        run_image(img, steps=4)

    outcome, detail = classify(load_and_run)
    assert outcome in ("typed", "ok"), f"{what}: {outcome} {detail}"


@settings(max_examples=50, deadline=None, derandomize=True)
@given(name=st.sampled_from(NAMES), seed=st.integers(0, 2**32 - 1),
       flips=st.integers(1, 4))
def test_byte_flips_of_a_signed_file_never_load_as_something_else(
        name: str, seed: int, flips: int) -> None:
    from neurochip.fuzz import flip_bytes

    img = neurochip.ChipImage.load(GOLDEN / f"{name}.nchip")
    path = Path(os.environ.get("TMPDIR", "/tmp")) / f"flip-{os.getpid()}.nchip"
    img.save(path)
    raw = path.read_bytes()
    path.unlink()
    data = flip_bytes(raw, np.random.default_rng(seed), flips)

    def load() -> str | None:
        got = neurochip.ChipImage.from_bytes(data)
        return None if got.equals(img) else "silent"

    outcome, detail = classify(load)
    assert outcome in ("typed", "ok"), f"{outcome} {detail}"


# ---------------------------------------------------------------------- bounds checking

_BOUNDSCHECK_SCRIPT = textwrap.dedent("""
    import sys
    import numpy as np
    import neurochip
    import emulator.chip as chip
    from neurochip.core.verify import verify_image
    from neurochip.errors import NeurochipError
    from neurochip.fuzz import mutate_arrays

    # the harness can fail: with the verifier switched off, an out-of-range target is an
    # IndexError under NUMBA_BOUNDSCHECK=1
    img = neurochip.compile(sys.argv[1] + "/convolutional.nir", "loihi_like", conv="expanded")
    ci = next(i for i, c in enumerate(img.connections) if c.storage == "sparse")
    img.arrays[f"conn/{ci}/post"][:] = 4000
    real = chip.verify_image
    chip.verify_image = lambda image, where: None
    x = {p.name: np.ones((3, p.size), bool) for p in img.input_populations}
    try:
        chip.Emulator(img).run(x, steps=3)
        print("control: no IndexError")
        sys.exit(4)
    except IndexError:
        pass
    chip.verify_image = real
    passed = 0
    for name in ("convolutional", "recurrent"):
        base = neurochip.ChipImage.load(sys.argv[1] + "/" + name + ".nchip")
        rng = np.random.default_rng(11)
        for _ in range(int(sys.argv[2])):
            img, what = mutate_arrays(base, rng)
            try:
                verify_image(img)
            except NeurochipError:
                continue
            x = {p.name: rng.random((5, p.size)) < 0.4 for p in img.input_populations}
            try:
                chip.Emulator(img).run(x, steps=5,
                                       probes=[p.name + ".v" for p in img.lif_populations])
            except IndexError as exc:
                print("OOB", what, exc)
                sys.exit(3)
            passed += 1
    print("passed", passed)
""")


@pytest.mark.slow  # compiles every kernel again with bounds checks (about a minute)
def test_verified_fuzzed_images_run_without_out_of_bounds_access(tmp_path: Path) -> None:
    """Images that pass the verifier run under NUMBA_BOUNDSCHECK=1 with no IndexError, and
    the same harness does see the IndexError of an image the verifier would reject."""
    script = tmp_path / "bc.py"
    script.write_text(_BOUNDSCHECK_SCRIPT)
    env = dict(os.environ, NUMBA_BOUNDSCHECK="1", NUMBA_CACHE_DIR=str(tmp_path / "cache"),
               PYTHONPATH=str(ROOT))
    r = subprocess.run([sys.executable, str(script), str(GOLDEN), "40"], env=env,
                       capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stdout + r.stderr[-3000:]
    n = int(r.stdout.split("passed")[-1])
    assert n >= 5  # valid mutations (weights, biases...) really ran
