"""The compiler as a short list of named passes.

Register level (what ``neurochip.compile(network, hw)`` runs)::

    check_ranges -> partition -> place -> route -> check_rules -> emit_image

Front passes for model files and IR graphs (:func:`compile_model`) run before these and
hand over a register-level :class:`~neurochip.core.network.Network`::

    import -> normalize -> [calibrate] -> quantize -> lower -> (register level) -> emit_image

Every front pass is a pure function of a :class:`FrontState` (the graph so far, the
options, the chip spec, the report) returning the next one; :func:`compile_model` runs
the passes of :data:`FRONT_PASSES` in order (with ``calibrate`` before ``quantize`` when
calibration data is given), then the register passes of :data:`MAPPING_PASSES`. The IR
verifier (:func:`compiler.ir.verify`) runs after each pass that yields a graph, and
``dump_ir``/``on_pass`` expose the IR between passes.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from compiler.ir import Graph, format_graph, verify
from compiler.passes.emit import emit_image
from compiler.passes.lower import CONV_MODES, lower
from compiler.passes.mapping import Mapping as MappingState
from compiler.passes.mapping import partition, place, route
from compiler.passes.normalize import normalize
from compiler.passes.quantize import quantization_report, quantize_graph, weight_groups_for
from compiler.passes.rules import check_rules
from neurochip.core.errors import ConfigError, ModelImportError
from neurochip.core.hw import HardwareSpec, load_hw
from neurochip.core.image import ChipImage
from neurochip.core.network import Network

__all__ = ["CALIBRATE_PASS", "FRONT_PASSES", "MAPPING_PASSES", "ChipCheck", "FrontOptions",
           "FrontState", "compile_model", "compile_network", "import_model"]

#: ``chip_check(graph, image, calibration, scales) -> {population: report entry}``
ChipCheck = Callable[[Graph, ChipImage, Mapping[str, Any], Mapping[str, float]],
                     Mapping[str, Any]]


def check_ranges(m: MappingState) -> MappingState:
    """Every register value fits the *target* chip's number formats."""
    m.network.check(m.hw)
    return m


MAPPING_PASSES: list[tuple[str, Callable[[MappingState], Any]]] = [
    ("check_ranges", check_ranges),
    ("partition", partition),
    ("place", place),
    ("route", route),
    ("check_rules", check_rules),
]


def compile_network(network: Network, hw: HardwareSpec, *,
                    metadata: dict[str, Any] | None = None,
                    on_pass: Callable[[str, MappingState], None] | None = None,
                    placement: str = "traffic",
                    rates: Mapping[str, Any] | None = None) -> ChipImage:
    """Map a register-level network onto ``hw`` and emit its chip image.

    placement: "traffic" (minimise weighted NoC hops; never worse than next-fit) or
    "greedy" (next-fit in declaration order). rates: {population: spikes per step (one
    value or one per neuron)}, the traffic estimate's weights (default: equal rates).
    """
    m = MappingState(network, hw, options={"metadata": dict(metadata or {}),
                                           "placement": placement, "rates": dict(rates or {})})
    for name, fn in MAPPING_PASSES:
        m = fn(m)
        if on_pass is not None:
            on_pass(name, m)
    m = replace(m)
    return emit_image(m)


# ======================================================================================
# Front half: model files and IR graphs
# ======================================================================================


def _is_nir_graph(model: Any) -> bool:
    return type(model).__name__ == "NIRGraph" and type(model).__module__.startswith("nir")


def _is_onnx_model(model: Any) -> bool:
    return type(model).__name__ == "ModelProto" and type(model).__module__.startswith("onnx")


def import_model(model: Any, *, dt: float | None = None, decay: str | None = None,
                 reset: str | None = None, ann: Mapping[str, Any] | None = None) -> Graph:
    """The import pass: a ``.nir``/``.onnx`` path, a ``nir.NIRGraph``, an ONNX ModelProto
    or an IR :class:`~compiler.ir.Graph` -> a float IR graph."""
    if isinstance(model, Graph):
        given = [k for k, v in (("dt", dt), ("decay", decay), ("reset", reset)) if v is not None]
        if given:
            raise ConfigError(f"options {given} apply to model files; an IR graph is already "
                              "discrete (set the populations' fields instead)",
                              where="compile", field=given[0])
        return model
    if isinstance(model, (str, Path)):
        path = Path(model)
        suffix = path.suffix.lower()
        if suffix == ".nir":
            from compiler.frontends.nir import read_nir

            return read_nir(path, dt=dt, decay=decay, reset=reset)
        if suffix == ".onnx":
            from compiler.frontends.onnx import read_onnx

            _no_time_options(dt, decay)
            return read_onnx(path, reset=reset, **(ann or {}))
        if suffix == ".net":
            raise ModelImportError("a netx file (.net) is already fixed point: compile it "
                                   "with neurochip.compile(path, hw)", where=f"file {path}")
        raise ModelImportError(f"unknown model file type {suffix!r}; neurochip reads .nir, "
                               ".onnx and netx .net files", where=f"file {path}")
    if _is_nir_graph(model):
        from compiler.frontends.nir import from_nir

        return from_nir(model, dt=dt, decay=decay, reset=reset)
    if _is_onnx_model(model):
        from compiler.frontends.onnx import from_onnx

        _no_time_options(dt, decay)
        return from_onnx(model, reset=reset, **(ann or {}))
    raise ModelImportError(f"cannot compile a {type(model).__name__}: give a Network, a .nir "
                           "or .onnx path, a nir.NIRGraph, an ONNX model or an IR graph",
                           where="compile")


def _clean_name(name: str) -> str:
    from compiler.frontends.onnx import _clean

    return _clean(name)


def _no_time_options(dt: float | None, decay: str | None) -> None:
    if dt is not None or decay is not None:
        raise ConfigError("dt and decay apply to NIR files; ONNX graphs following neurochip's "
                          "convention carry discrete decays (alpha, beta)", where="compile",
                          field="dt" if dt is not None else "decay")


@dataclass(frozen=True)
class FrontOptions:
    """The options of :func:`compile_model` that the front passes read."""

    dt: float | None = None
    decay: str | None = None
    reset: str | None = None
    weight_bits: int | None = None
    calibration: Mapping[str, Any] | None = None
    calibration_percentile: float | None = None
    calibration_margin: float = 2.0
    name: str | None = None
    ann_calibration: Any = None
    ann_percentile: float | None = None
    ann_steps: int = 64
    conv: str = "shared"


@dataclass(frozen=True)
class FrontState:
    """What one front pass hands the next.

    ``model``: what was given to compile; ``imported``: the graph the import pass made
    (its metadata names the network and its source); ``float_graph``: the float graph after
    normalize (what the quantization report and ``chip_check`` compare with); ``graph``:
    the IR graph so far; ``state_max``: calibrated bounds on |I|, |U| per population;
    ``report``: the quantization report; ``network``: the register-level network (after
    lower); ``result``: what the latest pass produced, shown to ``on_pass``.
    """

    model: Any
    spec: HardwareSpec
    options: FrontOptions
    imported: Graph | None = None
    float_graph: Graph | None = None
    graph: Graph | None = None
    state_max: dict[str, float] | None = None
    report: dict[str, Any] = field(default_factory=dict)
    network: Network | None = None
    result: Any = None


def _graph(state: FrontState, pass_name: str) -> Graph:
    if state.graph is None:
        raise ConfigError(f"the {pass_name} pass needs an IR graph; run the passes before it "
                          "first", where="compile", field=pass_name)
    return state.graph


def import_pass(state: FrontState) -> FrontState:
    """The model file, NIR/ONNX object or IR graph -> a float IR graph."""
    o = state.options
    ann: dict[str, Any] = {}
    if o.ann_calibration is not None:
        ann["ann_calibration"] = o.ann_calibration
    if o.ann_percentile is not None:
        ann["ann_percentile"] = o.ann_percentile
    g = import_model(state.model, dt=o.dt, decay=o.decay, reset=o.reset, ann=ann or None)
    return replace(state, imported=g, graph=g, result=g)


def normalize_pass(state: FrontState) -> FrontState:
    """One threshold per population (see :func:`compiler.passes.normalize.normalize`)."""
    g = normalize(_graph(state, "normalize"))
    return replace(state, float_graph=g, graph=g, result=g)


def calibrate_pass(state: FrontState) -> FrontState:
    """Each population's largest |I| and |U| on the calibration data, times the margin."""
    o = state.options
    if o.calibration is None:
        raise ConfigError("the calibrate pass needs calibration data", where="compile",
                          field="calibration")
    state_max = _calibrate(_graph(state, "calibrate"), o.calibration,
                           o.calibration_percentile, o.calibration_margin)
    return replace(state, state_max=state_max, result=dict(state_max))


def quantize_pass(state: FrontState) -> FrontState:
    """Chip registers for every population and projection, and the quantization report."""
    g = _graph(state, "quantize")
    q = quantize_graph(g, state.spec, weight_bits=state.options.weight_bits,
                       state_max=state.state_max,
                       weight_groups=weight_groups_for(state.imported))
    bounds = {k: (v, "calibration") for k, v in (state.state_max or {}).items()}
    report = quantization_report(state.float_graph or g, q, state.spec, bounds)
    return replace(state, graph=q, report=report, result=q)


def lower_pass(state: FrontState) -> FrontState:
    """The quantized graph -> a register-level network."""
    g = _graph(state, "lower")
    source = state.imported or g
    net_name = state.options.name or str(source.metadata.get("name", "network"))
    net = lower(g, state.spec, name=net_name, conv=state.options.conv)
    return replace(state, network=net, result=net)


#: The front passes, in order. ``calibrate`` runs only when calibration data is given.
FRONT_PASSES: list[tuple[str, Callable[[FrontState], FrontState]]] = [
    ("import", import_pass),
    ("normalize", normalize_pass),
    ("quantize", quantize_pass),
    ("lower", lower_pass),
]
#: Runs just before ``quantize`` when calibration data is given.
CALIBRATE_PASS: tuple[str, Callable[[FrontState], FrontState]] = ("calibrate", calibrate_pass)


def _front_schedule(calibrate: bool) -> list[tuple[str, Callable[[FrontState], FrontState]]]:
    """The front passes to run: :data:`FRONT_PASSES`, with calibrate before quantize."""
    passes = list(FRONT_PASSES)
    if calibrate:
        at = [n for n, _ in passes].index("quantize")
        passes.insert(at, CALIBRATE_PASS)
    return passes


def _dump_targets(dump_ir: str | Sequence[str] | bool | None) -> set[str]:
    names = {n for n, _ in FRONT_PASSES}
    if dump_ir is None or dump_ir is False:
        return set()
    if dump_ir is True or dump_ir == "all":
        return names - {"lower"}
    want = {dump_ir} if isinstance(dump_ir, str) else set(dump_ir)
    bad = want - names
    if bad or "lower" in want:
        raise ConfigError(f"dump_ir names IR passes {sorted(names - {'lower'})} or 'all', got "
                          f"{sorted(bad or want)}", where="compile", field="dump_ir")
    return want


def _calibrate(graph: Graph, calibration: Mapping[str, Any], percentile: float | None,
               margin: float) -> dict[str, float]:
    from compiler.float_sim import state_statistics

    if not (isinstance(margin, (int, float)) and margin >= 1.0):
        raise ConfigError(f"calibration_margin must be >= 1, got {margin!r}", where="compile",
                          field="calibration_margin")
    stats = state_statistics(graph, calibration, percentile=percentile)
    return {k: v * margin for k, v in stats.items() if v > 0}


def compile_netx(path: str | Path, hw: HardwareSpec | str | Path = "loihi_like", *,
                 reset_interval: int | None = None, name: str | None = None,
                 placement: str = "traffic",
                 on_pass: Callable[[str, Any], None] | None = None,
                 conv: str = "shared") -> ChipImage:
    """Compile a lava-dl netx file (``.net``): already fixed point, so no float front
    passes; the register-level network netx describes is mapped as it is.

    ``image.metadata["netx"]`` holds the layer table (group, type, population, shape,
    kernel, stride, padding, neuron type), the input layer's transform and the ports.
    """
    from compiler.frontends.netx import read_netx

    spec = load_hw(hw)
    if conv not in CONV_MODES:
        raise ConfigError(f"must be one of {CONV_MODES}, got {conv!r}", where="compile",
                          field="conv")
    net, meta = read_netx(path, spec, reset_interval=reset_interval, conv=conv)
    if name is not None:
        net.name = name
    if on_pass is not None:
        on_pass("import", net)
    metadata = {"netx": meta,
                "import": {"format": "netx", "file": meta["file"]},
                "compiler": {"front_passes": [], "register_passes": [n for n, _ in MAPPING_PASSES],
                             "options": {"reset_interval": reset_interval}}}
    if conv != "shared":  # recorded only when not the default
        metadata["compiler"]["options"]["conv"] = conv
    return compile_network(net, spec, metadata=metadata, on_pass=on_pass, placement=placement)


def compile_model(model: Any, hw: HardwareSpec | str | Path = "loihi_like", *,
                  dt: float | None = None, decay: str | None = None, reset: str | None = None,
                  weight_bits: int | None = None,
                  calibration: Mapping[str, Any] | None = None,
                  calibration_percentile: float | None = None,
                  calibration_margin: float = 2.0,
                  dump_ir: str | Sequence[str] | bool | None = None,
                  dump_file: TextIO | None = None,
                  on_pass: Callable[[str, Any], None] | None = None,
                  name: str | None = None,
                  chip_check: ChipCheck | None = None,
                  placement: str = "traffic",
                  ann_calibration: Any = None, ann_percentile: float | None = None,
                  ann_steps: int = 64, conv: str = "shared") -> ChipImage:
    """Compile a model file or IR graph for ``hw``: the front passes, then the register level.

    model: a ``.nir`` / ``.onnx`` path, a ``nir.NIRGraph``, an ONNX ``ModelProto`` or a
    float IR :class:`~compiler.ir.Graph`.
    dt (s), decay ("euler" | "exp"), reset ("zero" | "subtract"): how a NIR file is
    discretised; default from the file's ``neurochip.*`` metadata, else its source
    profile (``reset`` also applies to ONNX). weight_bits: weight precision (default and
    maximum: the chip's). calibration: {input name: spikes (T, n) or (B, T, n)}: the float
    model runs on them and each population's scale is chosen from the largest (or the
    ``calibration_percentile``-th percentile of) |I| and |U|, times ``calibration_margin``;
    without it a conservative worst-case bound is used. The float vs chip spike agreement
    on these inputs is then added to the report.
    dump_ir: a front pass name, a list of them, or "all"/True: print the IR after them
    (to ``dump_file``, default stderr). on_pass(name, state): called after every pass with
    the IR graph (front passes), the Network ("lower") or the register-level mapping.
    chip_check(graph, image, calibration, scales): with calibration, compares the float
    graph (after normalize) with the image run on a chip and returns a report entry per
    population, added as ``agreement``; the compiler runs no chip itself, so the caller
    supplies the runner (``neurochip.compile`` uses the emulator).
    placement: see :func:`compile_network`; with calibration, the input spike rates it
    measures weight the traffic estimate.
    ann_calibration: for an ONNX ReLU classifier (ANN conversion), inputs (N, *input shape)
    whose activations set each layer's threshold (the ``ann_percentile``-th percentile,
    default 99.9); required for such files (a ConfigError names it otherwise). Without
    ``calibration``, the first 64 of them, rate coded over ``ann_steps`` steps, calibrate
    the chip's scales too.
    conv: "shared" (default: convolutions and pooling store their kernel once per core,
    see :meth:`~neurochip.core.network.Network.connect_conv`) or "expanded" (one stored
    synapse per pair, as before shared weights existed).

    ``image.metadata`` gets ``quantization`` (per population: scale, registers, effective
    decays and threshold, per projection weight errors; ``agreement`` with calibration),
    ``outputs`` ({output: {"population", "signal": "spikes" | "v", "scale"}}), ``import``
    (format, profile, dt, notes) and ``compiler`` (passes and options).
    """
    spec = load_hw(hw)
    if conv not in CONV_MODES:
        raise ConfigError(f"must be one of {CONV_MODES}, got {conv!r}", where="compile",
                          field="conv")
    if isinstance(model, (str, Path)) and Path(model).suffix.lower() == ".net":
        return compile_netx(model, spec, name=name, placement=placement, on_pass=on_pass,
                            conv=conv)
    dumps = _dump_targets(dump_ir)
    out = dump_file if dump_file is not None else sys.stderr
    options = FrontOptions(dt=dt, decay=decay, reset=reset, weight_bits=weight_bits,
                           calibration=calibration,
                           calibration_percentile=calibration_percentile,
                           calibration_margin=calibration_margin, name=name,
                           ann_calibration=ann_calibration, ann_percentile=ann_percentile,
                           ann_steps=ann_steps, conv=conv)
    state = FrontState(model=model, spec=spec, options=options)
    schedule = _front_schedule(calibrate=calibration is not None)
    if calibration is None and ann_calibration is not None:
        state = import_pass(state)  # the converted network's own inputs calibrate it
        assert state.imported is not None
        verify(state.imported, None)
        if "import" in dumps:
            print(f"--- IR after import ---\n{format_graph(state.imported)}", file=out)
        conversion = state.imported.metadata.get("import", {}).get("conversion")
        if conversion is not None:
            from compiler.frontends.onnx.ann import encode

            calibration = {_clean_name(conversion["input"]): encode(
                np.asarray(ann_calibration)[:64], ann_steps, conversion["input_scale"])}
            state = replace(state, options=replace(options, calibration=calibration))
            schedule = _front_schedule(calibrate=True)
        if on_pass is not None:
            on_pass("import", state.result)
        schedule = schedule[1:]
    for pass_name, run_pass in schedule:
        state = run_pass(state)
        if isinstance(state.result, Graph):
            verify(state.result, spec if state.result.quantized else None)
            if pass_name in dumps:
                print(f"--- IR after {pass_name} ---\n{format_graph(state.result)}", file=out)
        if on_pass is not None:
            on_pass(pass_name, state.result)
    g0, g1, g2, net = state.imported, state.float_graph, state.graph, state.network
    assert g0 is not None and g1 is not None and g2 is not None and net is not None
    scales = {k: p.registers.scale for k, p in g2.populations.items() if p.registers}
    outputs = {oname: {"population": src,
                       "signal": "spikes" if g2.populations[src].spiking else "v",
                       "scale": scales[src]} for oname, src in g2.outputs.items()}
    meta: dict[str, Any] = {
        "compiler": {"front_passes": [n for n, _ in FRONT_PASSES],
                     "register_passes": [n for n, _ in MAPPING_PASSES],
                     "options": {"dt": dt, "decay": decay, "reset": reset,
                                 "weight_bits": weight_bits,
                                 "calibration": calibration is not None,
                                 "calibration_percentile": calibration_percentile,
                                 "calibration_margin": calibration_margin}},
        "quantization": state.report,
        "outputs": outputs,
    }
    if ann_calibration is not None:  # recorded only for ANN conversions: other images
        # keep the manifest they always had
        meta["compiler"]["options"].update(ann_calibration=True, ann_percentile=ann_percentile,
                                           ann_steps=ann_steps)
    if conv != "shared":  # recorded only when not the default: other images keep theirs
        meta["compiler"]["options"]["conv"] = conv
    for key in ("import", "file_metadata"):
        if key in g0.metadata:
            meta[key] = g0.metadata[key]
    rates = None if calibration is None else {
        k: np.asarray(v, np.float64).reshape(-1, np.shape(v)[-1]).mean(axis=0)
        for k, v in calibration.items() if k in g2.inputs}
    image = compile_network(net, spec, metadata=meta, on_pass=on_pass, placement=placement,
                            rates=rates)
    if calibration is not None and chip_check is not None:
        for k, entry in chip_check(g1, image, calibration, scales).items():
            image.metadata["quantization"][k]["agreement"] = entry
    return image
