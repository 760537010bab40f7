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


@pytest.mark.parametrize("layout", ["chw", "xyc"])
@pytest.mark.parametrize("rate", [0.002, 0.4])  # "chw": few adds go straight into the
def test_one_sample_split_over_threads_by_output_part(layout: str, rate: float,  # planes
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """One large sample on two threads splits a conv connection by output columns ("xyc")
    or channels ("chw"); spikes and state equal the serial run's and the expanded lists'."""
    import numba

    from emulator.kernels import run as kernel_run

    if numba.config.NUMBA_NUM_THREADS < 2:
        pytest.skip("needs two threads")
    rng = np.random.default_rng(3)
    spec = dict(in_shape=(3, 24, 40), kernel_shape=(6, 3, 3, 3), stride=(1, 2),
                padding=(1, 1, 0, 1), dilation=(1, 1), groups=1)
    geom = _geom(spec)
    k = rng.integers(-20, 21, spec["kernel_shape"]) * 2
    imgs = {}
    for shared in (True, False):
        net = Network(name="convnet")
        a = net.add_input("in", geom.n_pre)
        h = net.add_lif("h", geom.n_post, du=400, dv=300, vth=25)
        if shared:
            net.connect_conv(a, h, k, spec["in_shape"], stride=spec["stride"],
                             padding=spec["padding"], layout=layout)
        else:  # the same synapses, numbered as the layout numbers the neurons
            w = geom.expand(k).toarray()
            if layout == "xyc":
                pre = np.arange(geom.n_pre).reshape(3, 24, 40).transpose(2, 1, 0).reshape(-1)
                post = np.arange(geom.n_post).reshape(6, *geom.out_shape[1:]).transpose(
                    2, 1, 0).reshape(-1)
                w = w[np.ix_(post, pre)]
            net.connect(a, h, sp.csr_matrix(w), storage="sparse")
        imgs[shared] = neurochip.compile(net, "loihi_like")
    x = rng.random((30, geom.n_pre)) < rate
    serial = neurochip.Emulator(imgs[True], threads=1).run({"in": x}, probes=["h.u", "h.v"])
    expanded = neurochip.Emulator(imgs[False], threads=1).run({"in": x},
                                                              probes=["h.u", "h.v"])
    for m in ("THREADED_MIN_NEURONS", "THREADED_MIN_EVENTS", "THREADED_MIN_SOURCES"):
        monkeypatch.setattr(kernel_run, m, 0)
    calls = []
    threaded = kernel_run.run_threaded
    monkeypatch.setattr(kernel_run, "run_threaded",
                        lambda *a: (calls.append(a[-1].threads), threaded(*a)))
    split = neurochip.Emulator(imgs[True], threads=2).run({"in": x}, probes=["h.u", "h.v"])
    assert calls == [2]
    assert serial.probes["h.u"].any()
    assert_same_results(split, serial)
    for key in ("h.u", "h.v"):
        np.testing.assert_array_equal(serial.probes[key], expanded.probes[key])
    np.testing.assert_array_equal(serial.spikes["h"], expanded.spikes["h"])


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


def test_emulator_generates_conv_targets_from_the_kernel() -> None:
    from emulator.tables import ConnKind, build_tables

    spec = dict(in_shape=(2, 6, 6), kernel_shape=(4, 2, 3, 3), stride=(1, 1),
                padding=(1, 1, 1, 1), dilation=(1, 1), groups=1)
    tc = build_tables(neurochip.compile(_pair(1, True, spec), "loihi_like"))
    te = build_tables(neurochip.compile(_pair(1, False, spec), "loihi_like"))
    assert tc.c_kind[0] == ConnKind.CONV and te.c_kind[0] == ConnKind.SPARSE
    assert tc.ckw.size == 4 * 2 * 9 and tc.sw.size == 0  # no synapse list is built
    lists = te.sptr.nbytes + te.sbase.nbytes + te.soff.nbytes + te.sw.nbytes
    assert tc.ckw.nbytes + tc.cgeo.nbytes < lists / 10


def test_graded_input_through_conv_matches_expanded() -> None:
    rng = np.random.default_rng(7)
    k = rng.integers(-30, 31, (3, 2, 2, 3)) * 2

    def build(shared: bool) -> Network:
        net = Network("loihi2_like")  # a chip with graded spikes
        a = net.add_input("in", 2 * 5 * 5, payload_bits=8)
        h = net.add_lif("h", 3 * 4 * 2, du=200, dv=300, vth=5000)
        if shared:
            net.connect_conv(a, h, k, (2, 5, 5), stride=(1, 2), padding=(0, 0, 1, 0))
        else:
            g = conv_geometry((2, 5, 5), k.shape, stride=(1, 2), padding=(0, 0, 1, 0))
            net.connect(a, h, g.expand(k), storage="sparse")
        return net

    x = rng.integers(-100, 100, (30, 50)) * (rng.random((30, 50)) < 0.4)
    a = neurochip.Emulator(neurochip.compile(build(True), "loihi2_like")).run(
        {"in": x}, probes=["h.u", "h.v"])
    b = neurochip.Emulator(neurochip.compile(build(False), "loihi2_like")).run(
        {"in": x}, probes=["h.u", "h.v"])
    assert_same_results(a, b)
    assert np.abs(a.probes["h.u"]).max() > 0


@pytest.mark.parametrize("nd", [1, 2])
def test_ir_convolutions_lower_to_shared_weights(nd: int) -> None:
    from compiler.ir import Graph, Input, Neurons, Projection, pool
    from compiler.pipeline import compile_model

    rng = np.random.default_rng(nd)
    if nd == 1:
        conv = Conv(rng.normal(0.1, 0.5, (4, 1, 3)), (2, 12), stride=2, padding=((1, 2),),
                    dilation=2, groups=2)
        pl = pool("avg", conv.out_shape, (2,))
    else:
        conv = Conv(rng.normal(0.1, 0.5, (4, 2, 3, 2)), (2, 7, 8), stride=(2, 1),
                    padding=((1, 0), (1, 1)), dilation=(1, 2))
        pl = pool("sum", conv.out_shape, (2, 2))
    nodes = {"x": Input(conv.in_shape),
             "c": Neurons(conv.out_shape, alpha=0.2, beta=0.9, threshold=1.0),
             "p": Neurons(pl.out_shape, alpha=0.0, beta=0.8, threshold=0.5)}
    g = Graph(nodes, (Projection("conv", "x", "c", conv), Projection("pool", "c", "p", pl)),
              {"out": "p"})
    shared = compile_model(g, "loihi_like")
    exp = compile_model(g, "loihi_like", conv="expanded")
    assert [c.storage for c in shared.connections] == ["conv", "conv"]
    np.testing.assert_array_equal(shared.weights("conv"), exp.weights("conv"))
    np.testing.assert_array_equal(shared.weights("pool"), exp.weights("pool"))
    x = rng.random((40, int(np.prod(conv.in_shape)))) < 0.4
    a = neurochip.Emulator(shared).run({"x": x}, probes=["c.v", "p.v"])
    b = neurochip.Emulator(exp).run({"x": x}, probes=["c.v", "p.v"])
    for k in a.spikes:
        np.testing.assert_array_equal(a.spikes[k], b.spikes[k])
    for k in a.probes:
        np.testing.assert_array_equal(a.probes[k], b.probes[k])
    assert a.spikes["c"].any()


def test_conv_layers_tile_onto_few_cores_with_the_kernel_once_per_core() -> None:
    """2x32x32 -> 16x32x32 -> 32x16x16 (3x3): 24 cores (as many as the neurons need) and
    synapse memory that counts each core's kernel slices once, far below the expanded."""
    rng = np.random.default_rng(0)
    k1 = rng.integers(-20, 20, (16, 2, 3, 3)) * 2
    k2 = rng.integers(-20, 20, (32, 16, 3, 3)) * 2

    def build(shared: bool) -> Network:
        net = Network(name="conv3")
        net.add_input("img", 2 * 32 * 32)
        net.add_lif("c1", 16 * 32 * 32, du=0, dv=400, vth=20)
        net.add_lif("c2", 32 * 16 * 16, du=0, dv=400, vth=20)
        for pre, post, k, shape, st in (("img", "c1", k1, (2, 32, 32), 1),
                                        ("c1", "c2", k2, (16, 32, 32), 2)):
            if shared:
                net.connect_conv(pre, post, k, shape, stride=st, padding=1)
            else:
                g = conv_geometry(shape, k.shape, stride=st, padding=1)
                net.connect(pre, post, g.expand(k), storage="sparse")
        return net

    img = neurochip.compile(build(True), "loihi_like")
    exp = neurochip.compile(build(False), "loihi_like")
    assert len(img.cores) <= 24 < len(exp.cores)
    mem = sum(c.synapse_bits for c in img.cores)
    assert mem * 20 <= sum(c.synapse_bits for c in exp.cores)
    # each core: (distinct output channels it holds) x (kernel values per channel) x bits
    core_of = img.arrays["neurons/core"]
    for ci, c in enumerate(img.connections):
        post = img.population(c.post)
        geom = img.conv_geometry(ci)
        cores = core_of[post.offset: post.offset + post.size]
        for core in np.unique(cores):
            ch = np.unique(geom.channel_of_post()[cores == core]).size
            info = next(x for x in img.cores if x.core == core)
            assert info.synapse_bits == ch * geom.taps_per_channel * c.num_weight_bits
    # the tiles' input halos and fan-out fit, and the image routes what the synapses need
    lim = img.hw.core
    assert all(c.input_axons <= lim.max_input_axons and c.output_axons <= lim.max_output_axons
               for c in img.cores)
    x = rng.random((5, 2048)) < 0.3
    a = neurochip.Emulator(img).run({"img": x})
    b = neurochip.Emulator(exp).run({"img": x})
    for k in a.spikes:
        np.testing.assert_array_equal(a.spikes[k], b.spikes[k])
    np.testing.assert_array_equal(a.counters["syn_ops"].sum(1), b.counters["syn_ops"].sum(1))
    assert a.spikes["c2"].any()


def test_new_weights_for_a_conv_connection_must_share_its_kernel() -> None:
    from neurochip.board import with_weights
    from neurochip.errors import EmulatorInputError

    spec = dict(in_shape=(2, 6, 6), kernel_shape=(3, 2, 3, 3), stride=(1, 1),
                padding=(1, 1, 1, 1), dilation=(1, 1), groups=1)
    img = neurochip.compile(_pair(2, True, spec), "loihi_like")
    k = np.arange(54).reshape(3, 2, 3, 3) * 2 - 54
    W = _geom(spec).expand(k).toarray()
    new = with_weights(img, "in->h", W, "test")
    np.testing.assert_array_equal(new.weights("in->h"), W)
    assert new.arrays["conn/0/w"].size == 54
    W[5, np.flatnonzero(W[5])[0]] += 2  # one synapse leaves the shared kernel
    with pytest.raises(EmulatorInputError, match="kernel tap"):
        with_weights(img, "in->h", W, "test")


def test_conv_tables_pack_positions_and_refuse_oversized_maps() -> None:
    from emulator.tables import G_C, G_H, G_W, G_XYC, GEO_COLS, POS_BITS, conv_taps
    from neurochip.core.errors import EmulatorInputError

    geo = np.zeros(GEO_COLS, np.int64)
    geo[[G_C, G_H, G_W]] = (1, 2, 1 << POS_BITS)
    with pytest.raises(EmulatorInputError) as ei:
        conv_taps(geo)
    assert ei.value.field == "conv" and "2^21" in str(ei.value)
    geo[[G_C, G_H, G_W, G_XYC]] = (3, 4, 5, 1)  # neuron j = (x * 4 + y) * 3 + c
    pos = conv_taps(geo)[-60:]
    j = (2 * 4 + 1) * 3 + 2  # x = 2, y = 1, c = 2
    m = (1 << POS_BITS) - 1
    assert (pos[j] >> 2 * POS_BITS, (pos[j] >> POS_BITS) & m, pos[j] & m) == (2, 1, 2)


def test_conv_sources_are_charged_by_route_class_with_the_same_counts(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Neurons with conv fan-out whose axon lists are equal (all but the map's borders of
    a core's tile) share a route class, charged once per step; the counters equal those of
    charging every source on its own, and sources whose lists merely hash alike are told
    apart by the entry-by-entry check."""
    import emulator.tables as tables

    rng = np.random.default_rng(3)
    net = Network(name="conv-classes")
    net.add_input("img", 2 * 32 * 32)
    net.add_lif("c1", 16 * 32 * 32, du=0, dv=400, vth=20)
    net.add_lif("c2", 32 * 16 * 16, du=0, dv=400, vth=20)
    net.connect_conv("img", "c1", rng.integers(-20, 20, (16, 2, 3, 3)) * 2, (2, 32, 32),
                     padding=1)
    net.connect_conv("c1", "c2", rng.integers(-20, 20, (32, 16, 3, 3)) * 2, (16, 32, 32),
                     stride=2, padding=1)
    img = neurochip.compile(net, "loihi_like")
    assert len(img.cores) > 4
    x = rng.random((2, 12, 2048)) < 0.2

    def run() -> tuple[object, object]:
        em = neurochip.Emulator(img)
        return em.tables, em.run({"img": x}, probes=["c2.v"])

    tb, grouped = run()
    c1 = img.population("c1")
    cls = tb.cls_of_src[img.n_inputs + c1.offset: img.n_inputs + c1.offset + c1.size]
    assert (cls >= 0).mean() > 0.9  # nearly every c1 neuron is charged with its class
    assert np.unique(cls[cls >= 0]).size < c1.size // 50
    assert grouped.counters["syn_ops"].sum() > 0

    monkeypatch.setattr(tables, "_route_classes", lambda image, src_pop, *a: (
        np.full(src_pop.size, -1, np.int32), np.zeros(0, np.int64)))
    tb_one, one_by_one = run()
    assert (tb_one.cls_of_src < 0).all()
    assert_same_results(grouped, one_by_one)
    monkeypatch.undo()

    # every list hashing alike: the check splits them into the same classes as before
    monkeypatch.setattr(tables, "_route_hashes", lambda core, nsyn, local, start, lens:
                        np.zeros(lens.size, np.int64))
    tb_hash, colliding = run()
    assert_same_results(grouped, colliding)
    assert ((tb_hash.cls_of_src >= 0) <= (tb.cls_of_src >= 0)).all()
