"""Shared-weight convolution (``Network.connect_conv``): geometry, checks, chip image,
and bit-exact equality with the same network built from the expanded synapses."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

import neurochip
from compiler.ir import Conv
from neurochip.core.conv import ConvGeometry, conv_geometry
from neurochip.core.errors import NetworkError, ParameterRangeError
from neurochip.core.network import Network
from neurochip.testing import assert_same_results


def _random_geometry(rng: np.random.Generator) -> dict:
    g = int(rng.choice([1, 2]))
    cin = g * int(rng.integers(1, 3))
    cout = g * int(rng.integers(1, 3))
    kh, kw = (int(x) for x in rng.integers(1, 4, 2))
    return dict(in_shape=(cin, int(rng.integers(kh + 2, 9)), int(rng.integers(kw + 2, 9))),
                kernel_shape=(cout, cin // g, kh, kw),
                stride=tuple(int(x) for x in rng.integers(1, 3, 2)),
                padding=tuple(int(x) for x in rng.integers(0, 2, 4)),
                dilation=tuple(int(x) for x in rng.integers(1, 3, 2)), groups=g)


def _geom(spec: dict) -> ConvGeometry:
    return conv_geometry(spec["in_shape"], spec["kernel_shape"], stride=spec["stride"],
                         padding=spec["padding"], dilation=spec["dilation"],
                         groups=spec["groups"])


@pytest.mark.parametrize("seed", range(12))
def test_geometry_expands_like_the_ir_convolution(seed: int) -> None:
    rng = np.random.default_rng(seed)
    spec = _random_geometry(rng)
    geom = _geom(spec)
    k = rng.integers(-5, 6, spec["kernel_shape"])
    p = spec["padding"]
    ir = Conv(k, spec["in_shape"], stride=spec["stride"], padding=((p[0], p[1]), (p[2], p[3])),
              dilation=spec["dilation"], groups=spec["groups"])
    assert geom.out_shape == ir.out_shape
    W = geom.expand(k)
    ref = ir.to_csr()
    assert W.nnz == geom.n_synapses == ref.nnz  # zeros of the kernel are synapses too
    assert (abs(W - ref)).max() == 0
    pre, post, kidx = geom.pre_major()
    assert np.all(np.diff(pre) >= 0)
    assert np.array_equal(k.reshape(-1)[kidx], np.asarray(W[post, pre]).reshape(-1))


def test_connect_conv_checks_name_the_connection_and_field() -> None:
    net = Network()
    a = net.add_input("in", 2 * 6 * 6)
    b = net.add_lif("out", 4 * 6 * 6, du=0, dv=0, vth=10)
    k = np.full((4, 2, 3, 3), 2)
    cases = [
        (dict(kernel=k, in_shape=(2, 6, 5)), "in_shape"),  # 60 neurons, pre has 72
        (dict(kernel=k, in_shape=(2, 6, 6)), "post"),  # no padding: 4x4 outputs
        (dict(kernel=k[:, :1], in_shape=(2, 6, 6), padding=1), "kernel"),
        (dict(kernel=k, in_shape=(2, 6, 6), padding=1, groups=3), "groups"),
        (dict(kernel=k, in_shape=(2, 6, 6), padding=1, stride=0), "stride"),
        (dict(kernel=k, in_shape=(2, 6, 6), padding=-1), "padding"),
        (dict(kernel=k[0], in_shape=(2, 6, 6), padding=1), "kernel"),
        (dict(kernel=k * 0.5 + 0.25, in_shape=(2, 6, 6), padding=1), "kernel"),
        (dict(kernel=k, in_shape=(2, 6, 6), padding=1, delay=np.ones(3)), "delay"),
        (dict(kernel=k, in_shape=(2, 2, 2), padding=0), "in_shape"),
    ]
    for kw, fld in cases:
        with pytest.raises(NetworkError) as ei:
            net.connect_conv(a, b, name="c1", **kw)
        assert ei.value.field == fld, (kw, ei.value)
        assert "c1" in str(ei.value)
    odd = k.copy()
    odd[0, 0, 0, 0], odd[1, 0, 0, 0] = 3, -2  # odd weights are altered in mixed mode
    with pytest.raises(ParameterRangeError) as ei:
        net.connect_conv(a, b, odd, (2, 6, 6), padding=1, name="c1")
    assert ei.value.field == "kernel" and "kernel[0, 0, 0, 0]" in str(ei.value)
    c = net.connect_conv(a, b, k, (2, 6, 6), padding=1, name="c1")
    assert c.storage == "conv" and c.shape == (144, 72)
    # 6 outputs per axis with 3 taps each, 2 of them falling into the padding: 16 per axis
    assert c.n_synapses == c.weights.nnz == 4 * 2 * 16 * 16


def _pair(seed: int, shared: bool, spec: dict, delay: int = 0) -> Network:
    rng = np.random.default_rng(seed)
    geom = _geom(spec)
    k = rng.integers(-20, 21, spec["kernel_shape"]) * 2
    net = Network(name="convnet")
    a = net.add_input("in", geom.n_pre)
    h = net.add_lif("h", geom.n_post, du=int(rng.integers(0, 4096)), dv=int(rng.integers(0, 600)),
                    vth=int(rng.integers(5, 40)), bias_mant=rng.integers(-3, 4, geom.n_post))
    if shared:
        net.connect_conv(a, h, k, spec["in_shape"], stride=spec["stride"],
                         padding=spec["padding"], dilation=spec["dilation"],
                         groups=spec["groups"], delay=delay, weight_exp=int(rng.integers(-1, 2)))
    else:
        net.connect(a, h, geom.expand(k), storage="sparse", delay=delay,
                    weight_exp=int(rng.integers(-1, 2)))
    o = net.add_lif("o", 3, du=100, dv=200, vth=30)
    net.connect(h, o, rng.integers(-8, 9, (3, geom.n_post)) * 2)
    return net


@pytest.mark.parametrize("seed", range(6))
def test_conv_runs_bit_exact_with_the_expanded_synapses(seed: int) -> None:
    rng = np.random.default_rng(100 + seed)
    spec = _random_geometry(rng)
    delay = seed % 3
    img_c = neurochip.compile(_pair(seed, True, spec, delay), "loihi_like")
    img_e = neurochip.compile(_pair(seed, False, spec, delay), "loihi_like")
    assert img_c.connections[0].storage == "conv"
    assert img_c.connections[0].n_synapses == img_e.connections[0].n_synapses
    assert img_c.arrays["conn/0/w"].size == int(np.prod(spec["kernel_shape"]))
    assert len(img_c.cores) == len(img_e.cores) == 1  # same placement: same costs
    np.testing.assert_array_equal(img_c.weights("in->h"), img_e.weights("in->h"))
    n_in = img_c.n_inputs
    probes = ["h.u", "h.v", "o.v"]
    x = rng.random((3, 40, n_in)) < 0.35
    for inputs in ({"in": x}, {"in": x[0]}):  # batched and unbatched
        a = neurochip.Emulator(img_c).run(inputs, probes=probes)
        b = neurochip.Emulator(img_e).run(inputs, probes=probes)
        assert_same_results(a, b)  # spikes, u, v, op counters, cycles, latency, energy
        assert a.counters["syn_ops"].sum() > 0
    ref = neurochip.Emulator(img_c, backend="reference").run({"in": x[0]}, probes=probes)
    assert_same_results(neurochip.Emulator(img_c).run({"in": x[0]}, probes=probes), ref)


def test_conv_image_round_trip_and_verifier(tmp_path) -> None:
    spec = dict(in_shape=(2, 7, 7), kernel_shape=(4, 1, 3, 3), stride=(2, 2),
                padding=(1, 1, 1, 1), dilation=(1, 1), groups=2)
    img = neurochip.compile(_pair(3, True, spec), "loihi_like")
    path = img.save(tmp_path / "c.nchip")
    back = neurochip.ChipImage.load(path)
    assert back.equals(img)
    assert back.connections[0].conv == _geom(spec).to_dict()
    assert "conv" not in back.manifest()["connections"][1]  # non-conv entries unchanged
    W = back.weights_sparse("in->h")
    assert isinstance(W, sp.csr_matrix) and W.nnz == back.connections[0].n_synapses
    from neurochip.core.verify import verify_image
    from neurochip.errors import ImageError

    bad = neurochip.ChipImage(img.hw, img.populations, [
        type(c)(**{**c.__dict__, "conv": {**c.conv, "stride": [1, 1]}}) if c.conv else c
        for c in img.connections], img.cores, img.arrays, None, img.metadata)
    with pytest.raises(ImageError) as ei:
        verify_image(bad)
    assert "connections[0]" in ei.value.member
    short = dict(img.arrays)
    short["conn/0/w"] = short["conn/0/w"][:-1]
    with pytest.raises(ImageError) as ei:
        verify_image(neurochip.ChipImage(img.hw, img.populations, img.connections, img.cores,
                                         short, None, img.metadata))
    assert ei.value.member == "conn/0/w"
