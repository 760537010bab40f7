"""``neurochip inspect IMAGE``: what a chip image holds and how well it was quantized.

Light at import time (``neurochip --help`` imports it). The tables are built by
:func:`describe` (a JSON-ready dict, also printed by ``--json``) and rendered by
:func:`render`; ``quickstart`` reuses both.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from neurochip.core.image import ChipImage

__all__ = ["describe", "netx_layers", "register", "render", "table"]


def register(sub: Any) -> None:
    p = sub.add_parser(
        "inspect", help="show a chip image: cores, neurons, synapse memory, quantization",
        description="Describe a chip image (.nchip): the cores it uses (neurons, synapse "
                    "memory, input and output axons against the chip's limits), its "
                    "populations (fan-in and fan-out), its connections, how the model was "
                    "imported, and the per-layer quantization table (scale, registers, "
                    "decays and threshold on the chip, weight exponent and weight errors "
                    "per projection, float/chip agreement when compiled with calibration).")
    p.add_argument("image", metavar="IMAGE", help="chip image file (.nchip)")
    p.add_argument("--json", action="store_true",
                   help="print the description as JSON instead of tables")
    p.set_defaults(func=_inspect)


def table(headers: list[str], rows: list[list[Any]], indent: str = "  ") -> str:
    """A plain-text table: columns left-aligned for text, right-aligned for numbers."""
    cells = [[str(h) for h in headers]] + [[_cell(v) for v in r] for r in rows]
    numeric = [all(isinstance(r[i], (int, float)) for r in rows) if rows else False
               for i in range(len(headers))]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = []
    for j, row in enumerate(cells):
        parts = [c.rjust(w) if numeric[i] and j else c.ljust(w)
                 for i, (c, w) in enumerate(zip(row, widths))]
        lines.append(indent + "  ".join(parts).rstrip())
    return "\n".join(lines)


def _cell(v: Any) -> str:
    if isinstance(v, bool) or v is None:
        return "-" if v is None else ("yes" if v else "no")
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def describe(image: ChipImage) -> dict[str, Any]:
    """Everything ``inspect`` shows, as plain data."""
    hw = image.hw
    lim = hw.core
    fan_in: dict[str, int] = {p.name: 0 for p in image.populations}
    fan_out: dict[str, int] = {p.name: 0 for p in image.populations}
    for c in image.connections:
        fan_in[c.post] += c.n_synapses
        fan_out[c.pre] += c.n_synapses
    cores = [{"core": c.core, "neurons": c.neurons, "neurons_max": lim.max_neurons,
              "synapse_bits": c.synapse_bits, "synapse_bits_max": lim.synapse_memory_bits,
              "synapse_kib": c.synapse_bits / 8192,
              "synapse_fill": c.synapse_bits / lim.synapse_memory_bits,
              "input_axons": c.input_axons, "input_axons_max": lim.max_input_axons,
              "output_axons": c.output_axons, "output_axons_max": lim.max_output_axons,
              "populations": list(c.populations)} for c in image.cores]
    pops = [{"name": p.name, "kind": p.kind if p.spiking else "readout", "size": p.size,
             "cores": sorted(set(p.cores)), "fan_in_synapses": fan_in[p.name],
             "fan_in_per_neuron": fan_in[p.name] / p.size if p.size else 0.0,
             "fan_out_synapses": fan_out[p.name],
             "fan_out_per_neuron": fan_out[p.name] / p.size if p.size else 0.0,
             "reset": p.reset if p.kind == "lif" else None}
            for p in image.populations]
    conns = [{"name": c.name, "pre": c.pre, "post": c.post, "storage": c.storage,
              "synapses": c.n_synapses, "weight_exp": c.weight_exp, "sign_mode": c.sign_mode,
              "weight_bits": c.num_weight_bits,
              "delay": "per synapse" if c.has_delays else c.delay, "plastic": c.plastic}
             for c in image.connections]
    q = image.metadata.get("quantization") or {}
    layers = []
    for pop, e in q.items():
        projs = e.get("projections") or {}
        layers.append({
            "population": pop, "scale": e.get("scale"), "du": e.get("du"), "dv": e.get("dv"),
            "vth": e.get("vth"), "alpha": e.get("alpha"), "alpha_chip": e.get("alpha_chip"),
            "beta": e.get("beta"), "beta_chip": e.get("beta_chip"),
            "threshold": e.get("threshold") if e.get("spiking", True) else None,
            "threshold_chip": e.get("threshold_chip") if e.get("spiking", True) else None,
            "bias_max_abs_error": e.get("bias_max_abs_error"),
            "state_bound": e.get("state_bound"), "state_source": e.get("state_source"),
            "agreement": e.get("agreement"),
            "projections": [{"name": k, "pre": v.get("pre"), "weight_exp": v.get("weight_exp"),
                             "weight_bits": v.get("num_weight_bits"),
                             "sign_mode": v.get("sign_mode"), "synapses": v.get("synapses"),
                             "rel_weight_error": v.get("rel_weight_error"),
                             "max_abs_error": v.get("max_abs_error"),
                             "zeroed": v.get("zeroed")} for k, v in projs.items()],
        })
    return {
        "netx_layers": netx_layers(image),
        "traffic": traffic(image),
        "hw": hw.name, "cores_used": len(image.cores), "cores_total": hw.n_cores,
        "neurons": image.n_neurons, "inputs": image.n_inputs, "synapses": image.n_synapses,
        "synapse_bits": sum(c.synapse_bits for c in image.cores),
        "cores": cores, "populations": pops, "connections": conns,
        "outputs": image.metadata.get("outputs") or {},
        "import": image.metadata.get("import"), "quantization": layers,
        "learning": image.learning is not None,
        "digest": image.digest, "signed": image.signed,
        "lava": lava_export(image),
    }


def netx_layers(image: ChipImage) -> list[dict[str, Any]]:
    """The layer table of an image compiled from a lava-dl netx file (empty otherwise):
    per netx layer group its type, shape (x, y, c), kernel, stride, padding, neuron type,
    the cores its population uses and the synapse memory of its incoming synapses."""
    import numpy as np

    meta = (image.metadata.get("netx") or {}).get("layers") or []
    hw = image.hw
    pops = {p.name: p for p in image.populations}
    mem: dict[str, int] = {}
    for ci, c in enumerate(image.connections):
        if c.storage == "conv":  # the kernel slice of a channel, once per core holding it
            geom = image.conv_geometry(ci)
            post = pops[c.post]
            cores = image.arrays["neurons/core"][post.offset: post.offset + post.size]
            pairs = np.unique(cores.astype(np.int64) * geom.out_shape[0]
                              + geom.channel_of_post()).size
            mem[c.post] = mem.get(c.post, 0) + pairs * geom.taps_per_channel * c.num_weight_bits
            continue
        bits = (c.num_weight_bits + (hw.formats.delay_bits if c.has_delays else 0)
                + (hw.index_bits if c.storage == "sparse" else 0))
        mem[c.post] = mem.get(c.post, 0) + c.n_synapses * bits
    rows = []
    for r in meta:
        name = r.get("population")
        p = pops.get(name) if name else None
        rows.append({"group": r.get("group"), "type": r.get("type"), "population": name,
                     "shape": r.get("shape"), "kernel": r.get("kernel"),
                     "stride": r.get("stride"), "padding": r.get("padding"),
                     "neuron": r.get("neuron"),
                     "cores": len(set(p.cores)) if p is not None else 0,
                     "synapse_bits": mem.get(name, 0) if name else 0})
    return rows


def traffic(image: ChipImage) -> dict[str, Any]:
    """NoC traffic per step of the placement at one spike per neuron per step: messages,
    tile hops, chip-link crossings, the busiest link and the slowest core (estimates of
    the emulator's cost model; scale them by the real spike rate)."""
    import numpy as np

    from compiler.passes.mapping import traffic_report

    a = image.arrays
    src_core = np.concatenate([np.full(image.n_inputs, -1, np.int64),
                               a["neurons/core"].astype(np.int64)])
    return traffic_report(image.hw, src_core, a["route/ptr"], a["route/core"], a["route/nsyn"],
                          {c.core: c.neurons for c in image.cores},
                          np.ones(src_core.size))


def render(d: dict[str, Any]) -> str:
    """The description as text tables."""
    out = [f"chip image for '{d['hw']}': {d['cores_used']} of {d['cores_total']} cores, "
           f"{d['neurons']} neurons, {d['inputs']} inputs, {d['synapses']} synapses, "
           f"{d['synapse_bits'] / 8192:.1f} KiB synapse memory"
           + (", on-chip learning configured" if d.get("learning") else "")]
    if d.get("digest"):
        out.append(f"digest sha256:{d['digest']}"
                   + ("" if d.get("signed") else " (unsigned: the file records no digests)"))
    imp = d.get("import")
    if imp:
        line = f"imported from {imp.get('format', '?')}"
        if imp.get("format") == "nir":
            line += (f": profile {imp.get('profile')}, dt {imp.get('dt')} s, decay "
                     f"{imp.get('decay')}, reset {imp.get('reset')}")
        out.append(line)
        for n in imp.get("notes") or []:
            out.append(f"  note: {n}")
    out.append("\ncores")
    out.append(table(
        ["core", "neurons", "synapse memory", "input axons", "output axons", "populations"],
        [[c["core"], f"{c['neurons']}/{c['neurons_max']}",
          f"{c['synapse_kib']:.2f} KiB ({c['synapse_fill']:.1%})",
          f"{c['input_axons']}/{c['input_axons_max']}",
          f"{c['output_axons']}/{c['output_axons_max']}", ", ".join(c["populations"])]
         for c in d["cores"]]))
    if d.get("netx_layers"):
        def xy(v: Any) -> str:
            return "-" if not v else "x".join(str(int(a)) for a in v)

        out.append("\nnetx layers")
        out.append(table(
            ["group", "type", "population", "shape (x,y,c)", "kernel", "stride", "padding",
             "neuron", "cores", "synapse memory"],
            [[r["group"], r["type"], r["population"] or "-", xy(r["shape"]), xy(r["kernel"]),
              xy(r["stride"]), xy(r["padding"]), r["neuron"] or "-", r["cores"],
              f"{r['synapse_bits'] / 8192:.2f} KiB"] for r in d["netx_layers"]]))
    tr = d.get("traffic")
    if tr:
        out.append("\ntraffic per step at 1 spike per neuron per step (estimated; scale by "
                   "the spike rate)")
        trows = [["messages", f"{tr['messages_per_step']:,.0f}"],
                 ["NoC hops", f"{tr['hops_per_step']:,.0f}"],
                 ["chip-link crossings", f"{tr['chip_links_per_step']:,.0f}"],
                 ["busiest link", f"{tr['busiest_link']['link']}: "
                                  f"{tr['busiest_link']['messages_per_step']:,.0f} messages"]]
        sc = tr.get("slowest_core")
        if sc:
            trows.append(["slowest core", f"core {sc['core']}: {sc['ns_per_step']:,.0f} ns "
                                          f"({sc['synops_per_step']:,.0f} synaptic ops, "
                                          f"{sc['spikes_in_per_step']:,.0f} axon events, "
                                          f"{sc['neurons']} neurons)"])
        out.append(table(["", "per step"], trows))
    out.append("\npopulations")
    out.append(table(
        ["name", "kind", "neurons", "cores", "fan-in", "in/neuron", "fan-out", "out/neuron",
         "reset"],
        [[p["name"], p["kind"], p["size"], ",".join(map(str, p["cores"])) or "host",
          p["fan_in_synapses"], round(p["fan_in_per_neuron"], 1), p["fan_out_synapses"],
          round(p["fan_out_per_neuron"], 1), p["reset"]] for p in d["populations"]]))
    out.append("\nconnections")
    out.append(table(
        ["name", "pre -> post", "storage", "synapses", "weight bits", "weight exp", "delay"],
        [[c["name"], f"{c['pre']} -> {c['post']}", c["storage"], c["synapses"],
          c["weight_bits"], c["weight_exp"], c["delay"]] for c in d["connections"]]))
    if d["outputs"]:
        out.append("\noutputs")
        out.append(table(["name", "population", "signal", "scale"],
                         [[k, v["population"], v["signal"], float(v["scale"])]
                          for k, v in d["outputs"].items()]))
    if d["quantization"]:
        out.append("\nquantization per layer (float -> chip)")
        rows = []
        for q in d["quantization"]:
            th = ("-" if q["threshold"] is None else
                  f"{q['threshold']:.4g} -> {q['threshold_chip']:.4g}")
            agr = q.get("agreement") or {}
            agree = (f"{agr['spike_agreement']:.2%} spikes" if "spike_agreement" in agr else
                     f"{agr['v_rel_error']:.2%} v error" if "v_rel_error" in agr else "-")
            rows.append([q["population"], float(q["scale"]), q["du"], q["dv"], q["vth"],
                         f"{q['alpha']:.4g} -> {q['alpha_chip']:.4g}",
                         f"{q['beta']:.4g} -> {q['beta_chip']:.4g}", th, agree])
        out.append(table(["population", "scale", "du", "dv", "vth", "alpha", "beta",
                          "threshold", "calibration agreement"], rows))
        prow = []
        for q in d["quantization"]:
            for pr in q["projections"]:
                prow.append([pr["name"], f"{pr['pre']} -> {q['population']}",
                             pr["weight_bits"], pr["weight_exp"], pr["sign_mode"],
                             f"{pr['rel_weight_error']:.3%}", float(pr["max_abs_error"]),
                             f"{pr['zeroed']:.2%}"])
        out.append("")
        out.append(table(["projection", "pre -> post", "bits", "exp", "signs",
                          "rel. weight error", "max abs error", "zeroed"], prow))
    lv = d.get("lava")
    if lv:
        out.append("")
        out.extend(render_lava(lv))
    return "\n".join(out)


def _slices_text(slices: list[dict[str, int]]) -> str:
    shown = slices[:4]
    text = ", ".join(f"core {s['core']}[{s['start']}:{s['start'] + s['count']}]" for s in shown)
    return text + (f", ... ({len(slices)} slices)" if len(slices) > len(shown) else "")


def render_lava(lv: dict[str, Any]) -> list[str]:
    """The Lava export section: process, Lava class, Lava's own or ours, placement hint."""
    if not lv.get("exportable"):
        return [f"Lava export: not exportable ({lv.get('reason')})"]
    out = ["Lava export (export_lava; placement hints: our cores for each process's neurons, "
           "in proc_params['neurochip_placement'])"]
    rows = []
    for p in lv["processes"]:
        where = "host" if p["role"] == "source" else _slices_text(p["slices"])
        rows.append([p["name"], p["lava_process"], "Lava" if p["stock"] else "ours", where])
    out.append(table(["process", "Lava process", "model", "placement"], rows))
    for p in lv["processes"]:
        if not p["stock"]:
            out.append(f"  note: '{p['name']}' is {p['lava_process']}: {p['reason']}")
    lrn = lv.get("learning")
    if lrn and not lrn.get("exported"):
        out.append(f"  note: learning not exported: {lrn.get('reason')}")
    elif lrn:
        for name, r in lrn["rules"].items():
            out.append(f"  learning '{name}': "
                       f"{'Loihi3FLearningRule' if r['three_factor'] else 'Loihi2FLearningRule'}"
                       f" dw = {r['dw']}" + (f"; dt = {r['dt']}" if r["dt"] else ""))
    return out


def _inspect(args: argparse.Namespace) -> int:
    import json

    from neurochip.commands.run_cmd import load_image

    d = describe(load_image(args.image))
    if args.json:
        print(json.dumps(d, indent=1, sort_keys=True, default=str))
    else:
        print(render(d))
    return 0


def lava_export(image: ChipImage) -> dict[str, Any]:
    """The Lava export of the image: each process's Lava class and our cores for it."""
    from compiler.lava.plan import export_summary

    return export_summary(image)
