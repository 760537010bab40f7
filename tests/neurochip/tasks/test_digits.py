"""neurochip.tasks.digits: the one home of the digits task (split, code, readouts)."""

from __future__ import annotations

import importlib
import json
import re
from pathlib import Path

import numpy as np
import pytest

import neurochip
from compiler.training.data import encode_rate
from compiler.training.losses import Loss, decode
from neurochip.core.errors import ConfigError
from neurochip.tasks import digits as D
from neurochip.tasks.training import get_task

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def split() -> tuple:
    return D.digits_split()


def test_the_split_and_its_record(split) -> None:
    Xtr, Xte, ytr, yte = split
    assert len(yte) == len(Xte)
    assert (len(Xtr), len(Xte)) == (1347, 450) and Xtr.shape[1] == D.N_PIXELS
    assert set(ytr.tolist()) == set(range(D.N_CLASSES))
    assert D.DIGITS_SPLIT["random_state"] == 0 and D.DIGITS_SPLIT["test_size"] == 0.25


def test_the_record_names_a_call_that_gives_the_inputs(split) -> None:
    """The bundled model's record says which call produced its inputs; that call runs."""
    rec = json.loads((Path(neurochip.__file__).parent / "data" / "digits.json").read_text())
    m = re.fullmatch(r"([\w.]+)\.(\w+)\((\d+), '(\w+)'\)", rec["data"]["inputs"])
    assert m is not None, rec["data"]["inputs"]
    fn = getattr(importlib.import_module(m.group(1)), m.group(2))
    train, test = fn(int(m.group(3)), m.group(4))
    want = D.encode_digits(split[1], D.DIGITS_STEPS, "regular", seed=1)
    np.testing.assert_array_equal(test.x, want)
    np.testing.assert_array_equal(test.y, split[3])
    assert test.x.shape == (450, 20, 64) and len(train) == 1347
    info = get_task("digits").make_data(D.DIGITS_STEPS, 0).info
    assert info["inputs"] == rec["data"]["inputs"] == D.digits_inputs()


def test_the_two_rate_codes(split) -> None:
    """Trained models: full rate; on-chip learning: half rate; both the regular code."""
    X = split[1][:20]
    full = D.encode_digits(X)
    np.testing.assert_array_equal(full, encode_rate(X, 20))
    task = D.digits_task()
    np.testing.assert_array_equal(task.x_test[:20], encode_rate(X, 20, max_rate=0.5))
    np.testing.assert_array_equal(task.encode(X), task.x_test[:20])
    assert task.steps == D.DIGITS_STEPS and full.sum() > task.x_test[:20].sum()
    bern = D.encode_digits(X, 10, "bernoulli", seed=3)
    assert bern.shape == (20, 10, 64)
    np.testing.assert_array_equal(bern, D.encode_digits(X, 10, "bernoulli", seed=3))
    lat = D.encode_digits(X, 10, "latency")
    assert (lat.sum(axis=1) <= 1).all()
    with pytest.raises(ConfigError, match="unknown encoding"):
        D.encode_digits(X, 10, "phase")


def test_readouts() -> None:
    rng = np.random.default_rng(0)
    v = rng.normal(size=(6, 20, 10))
    np.testing.assert_array_equal(D.decode_readout(Loss("ce_max"), v, "v"),
                                  decode(Loss("ce_max"), v, None))
    np.testing.assert_array_equal(D.decode_readout(Loss("ce_max"), v, "v"),
                                  v.max(axis=1).argmax(axis=1))
    s = rng.random((6, 20, 10)) < 0.3
    np.testing.assert_array_equal(D.decode_readout(Loss("ce_count"), s, "spikes"),
                                  decode(Loss("ce_count"), None, s))
    with pytest.raises(ConfigError, match="readout signal") as e:
        D.decode_readout(Loss("ce_max"), v, "i")
    assert e.value.field == "signal"
    counts = np.array([[3, 3, 1], [0, 0, 0]])
    vsum = np.array([[1.0, 5.0, 100.0], [-1.0, -3.0, 2.0]])
    np.testing.assert_array_equal(D.decode_counts(counts, vsum), [1, 2])


def test_distort_and_network() -> None:
    img = np.zeros((1, 64))
    img[0, 0] = 1.0
    moved = D.distort_digits(img, shift=2)
    assert moved[0, 2] == 1.0 and moved.sum() == 1.0
    image = neurochip.compile(D.digits_network(n_hidden=7), "loihi_like")
    assert [(p.name, p.size) for p in image.populations] == [("in", 64), ("hid", 7),
                                                             ("out", 10)]
    w = image.weights(image.connections[0].name)
    assert w.shape == (7, 64) and (w % 2 == 0).all() and w.min() < 0 < w.max()


def test_no_other_module_loads_the_digits() -> None:
    """One home: only neurochip/tasks/digits.py reads the data set or builds the split."""
    hits = []
    for path in [*ROOT.glob("neurochip/**/*.py"), *ROOT.glob("compiler/**/*.py"),
                 *ROOT.glob("emulator/**/*.py"), *ROOT.glob("tools/*.py")]:
        text = path.read_text()
        if re.search(r"load_digits\(|train_test_split\(|DIGITS_SPLIT\s*=", text):
            hits.append(str(path.relative_to(ROOT)))
    assert hits == ["neurochip/tasks/digits.py"]


@pytest.mark.parametrize("encoding", ["regular", "bernoulli"])
def test_one_split_is_the_same_as_both_splits(encoding: str) -> None:
    """digits_split_spikes gives digits_spikes' arrays, also for the first rows only (a
    deterministic code encodes just those, bernoulli the whole split first)."""
    train, test = D.digits_spikes(8, encoding, seed=3)
    one = D.digits_split_spikes("test", 8, encoding, seed=3)
    np.testing.assert_array_equal(one.x, test.x)
    np.testing.assert_array_equal(one.y, test.y)
    head = D.digits_split_spikes("train", 8, encoding, seed=3, samples=30)
    np.testing.assert_array_equal(head.x, train.x[:30])
    np.testing.assert_array_equal(head.y, train.y[:30])


def test_an_unknown_split_is_a_named_error() -> None:
    with pytest.raises(ConfigError) as ei:
        D.digits_split_spikes("validation")
    assert ei.value.field == "split" and "validation" in str(ei.value)


def test_saccade_events_are_on_off_events_of_the_moving_digit(split) -> None:
    """Events only where the moving digit's edges pass: ON where intensity rises, OFF where
    it falls, channel-major (2, 34, 34), seeded; a blank image gives none."""
    X = split[1][:4]
    ev = D.saccade_events(X, 30)
    assert ev.shape == (4, 30, 2 * 34 * 34) and ev.dtype == np.bool_
    frames = ev.reshape(4, 30, 2, 34, 34)
    on, off = frames[:, :, 0].sum(), frames[:, :, 1].sum()
    assert on > 100 and off > 100  # both polarities
    # the digit (28 x 28, centred) moves by at most 4 pixels: nothing outside that box
    assert not frames[..., :2, :].any() and not frames[..., :, :2].any()
    assert np.array_equal(ev, D.saccade_events(X, 30))  # seeded
    assert not np.array_equal(ev, D.saccade_events(X, 30, seed=1))
    assert not D.saccade_events(np.zeros((1, 64)), 10).any()
    with pytest.raises(ConfigError) as ei:
        D.saccade_events(X, 10, size=20)  # the 28-pixel digit does not fit
    assert ei.value.where == "saccade_events"
