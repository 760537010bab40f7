"""Lava's processes for an image's populations and connections, and our ChipLIF process
and its fixed-point model (created on first use, so importing this does not import
Lava).
"""

from __future__ import annotations

import functools
from types import SimpleNamespace
from typing import Any

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray

from compiler.lava.checks import lava_weight_bits
from compiler.lava.compat import import_lava
from compiler.lava.learning import NeuronSpec, RuleSpec
from compiler.lava.plan import LAVA_READOUT_VTH, ProcessPlan
from neurochip.core import fixedpoint as fx
from neurochip.core.errors import LavaExportError
from neurochip.core.image import ChipImage, PopulationInfo

__all__ = ["components", "lava_classes", "learning_neuron_process", "learning_synapse_process",
           "neuron_process", "synapse_process"]


@functools.cache
def lava_classes() -> SimpleNamespace:
    """Lava's processes, run config and our ChipLIF process and model, imported once."""
    import_lava()
    from lava.magma.core.decorator import implements, requires, tag
    from lava.magma.core.learning.learning_rule import Loihi2FLearningRule, Loihi3FLearningRule
    from lava.magma.core.model.py.neuron import LearningNeuronModelFixed
    from lava.magma.core.model.py.ports import PyOutPort
    from lava.magma.core.model.py.type import LavaPyType
    from lava.magma.core.resources import CPU
    from lava.magma.core.run_conditions import RunSteps
    from lava.magma.core.run_configs import Loihi2SimCfg
    from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol
    from lava.proc.atrlif.process import ATRLIF
    from lava.proc.dense.process import DelayDense, Dense, LearningDense
    from lava.proc.io.source import RingBuffer
    from lava.proc.lif.models import AbstractPyLifModelFixed
    from lava.proc.lif.process import LIF, LearningLIF, LIFReset, TernaryLIF
    from lava.proc.monitor.process import Monitor
    from lava.proc.resfire.process import RFZero
    from lava.proc.rf.process import RF
    from lava.proc.rf_iz.process import RF_IZ
    from lava.proc.sdn.process import ActivationMode, Delta, Sigma, SigmaDelta
    from lava.proc.sparse.process import DelaySparse, LearningSparse, Sparse
    from lava.utils.weightutils import SignMode

    class ChipLIF(LIF):  # type: ignore[misc, valid-type]
        """Lava's LIF process with our core's two extra modes.

        ``reset``: "zero" (v <- 0 on a spike, as Lava's LIF) or "subtract"
        (v <- v - vth * 2**6). ``spiking=False`` makes a non-spiking readout whose
        threshold is never tested (it integrates like any LIF and never fires).
        Both are process parameters; u, v, du, dv, vth and the bias are Lava's own Vars.
        """

        def __init__(self, *, shape: tuple[int, ...], du: int, dv: int, vth: int,
                     bias_mant: NDArray[np.int64], bias_exp: NDArray[np.int64],
                     reset: str, spiking: bool, name: str | None = None) -> None:
            super().__init__(shape=shape, du=du, dv=dv, vth=vth, bias_mant=bias_mant,
                             bias_exp=bias_exp, name=name, reset=reset, spiking=spiking)

    class _ChipThresholdReset:
        """Our core's threshold test and reset on Lava's LIF arithmetic, shared by the
        inference and the learning models: a readout (``spiking=False``) never fires; a
        spike resets v to 0 or subtracts the threshold (``reset="subtract"``)."""

        v: Any
        vth: Any
        vth_shift: Any

        def __init__(self, proc_params: Any) -> None:
            super().__init__(proc_params)  # type: ignore[call-arg]
            self.subtract = proc_params["reset"] == "subtract"
            self.spiking = bool(proc_params["spiking"])
            self.effective_vth = 0

        def scale_threshold(self) -> None:
            # The 17-bit threshold mantissa is MSB-aligned with the 24-bit voltage
            # register, as the synaptic input is with the current: << vth_shift (6).
            self.effective_vth = np.left_shift(self.vth, self.vth_shift)
            self.isthrscaled = True

        def spiking_activation(self) -> NDArray[np.bool_]:
            if not self.spiking:
                # A readout's comparator is disabled: it only integrates.
                return np.zeros(self.v.shape, dtype=bool)
            return self.v > self.effective_vth  # strict, as the stock LIF

        def reset_voltage(self, spike_vector: NDArray[np.bool_]) -> None:
            if self.subtract:
                # Only where v > theta >= 0, so v - theta stays inside the saturated
                # 24-bit range: no further wrap or clip is needed.
                self.v[spike_vector] -= self.effective_vth
            else:
                self.v[spike_vector] = 0

    @implements(proc=ChipLIF, protocol=LoihiProtocol)
    @requires(CPU)
    @tag("fixed_pt")
    class PyChipLifModelFixed(_ChipThresholdReset,  # type: ignore[misc, valid-type]
                              AbstractPyLifModelFixed):
        """Fixed-point model of :class:`ChipLIF`, bit-exact with our core.

        The sub-threshold update (current decay with the hidden +1 offset, 24-bit single
        wrap of u, saturation of v, bias) is Lava's own ``AbstractPyLifModelFixed``; only
        the threshold test and the reset differ from ``PyLifModelBitAcc``.
        """

        s_out: Any = LavaPyType(PyOutPort.VEC_DENSE, np.int32, precision=24)
        vth: Any = LavaPyType(int, np.int32, precision=17)

    class ChipLearningLIF(LearningLIF):  # type: ignore[misc, valid-type]
        """Lava's learning LIF process, carrying our learning engine's post side.

        ``learn`` (a process parameter) says what the neuron computes each step after its
        spike phase: the post traces y1, y2, the surrogate sg (a lookup table of the voltage
        before the reset), the third factor m from what arrives on ``a_third_factor_in``
        (``error``: target spikes or values; ``reward``: the reward) and the post-side
        products of the rules, sent on ``s_out_y1..3``; ``s_out_bap`` carries the spikes.
        """

        def __init__(self, *, shape: tuple[int, ...], du: int, dv: int, vth: int,
                     bias_mant: NDArray[np.int64], bias_exp: NDArray[np.int64], reset: str,
                     spiking: bool, learn: dict[str, Any], seed: int,
                     learning_rule: Any = None, name: str | None = None) -> None:
            super().__init__(shape=shape, du=du, dv=dv, vth=vth, bias_mant=bias_mant,
                             bias_exp=bias_exp, name=name, learning_rule=learning_rule,
                             reset=reset, spiking=spiking, learn=learn, seed=seed)

    @implements(proc=ChipLearningLIF, protocol=LoihiProtocol)
    @requires(CPU)
    @tag("fixed_pt")
    class PyChipLearningLifModel(_ChipThresholdReset,  # type: ignore[misc, valid-type]
                                 LearningNeuronModelFixed, AbstractPyLifModelFixed):
        """Fixed-point model of :class:`ChipLearningLIF`: Lava's LIF arithmetic, our reset
        and readout, then our learning engine's post side (stochastic rounding from a
        seeded generator: Lava's learning is bit-approximate, and so is this)."""

        s_out: Any = LavaPyType(PyOutPort.VEC_DENSE, np.int32, precision=24)
        vth: Any = LavaPyType(int, np.int32, precision=17)

        def __init__(self, proc_params: Any) -> None:
            super().__init__(proc_params)
            lp = dict(proc_params["learn"])
            self.lp = lp
            self.rng = np.random.default_rng(int(proc_params["seed"]))
            n = int(np.prod(proc_params["shape"]))
            self.t1 = np.zeros(n, np.int64)
            self.t2 = np.zeros(n, np.int64)
            self.yt = np.zeros(n, np.int64)
            self.sg = np.zeros(n, np.int64)
            self.m = np.zeros(n, np.int64)
            self.lut = None if lp["lut"] is None else np.asarray(lp["lut"], np.int64)

        def _sround(self, x: NDArray[np.int64], k: int) -> NDArray[np.int64]:
            if k <= 0:
                return x << -k
            return (x + self.rng.integers(0, 1 << k, x.shape)) >> k

        def _trace(self, x: NDArray[np.int64], spike: NDArray[np.int64],
                   tp: tuple[int, int]) -> NDArray[np.int64]:
            impulse, decay = tp
            return np.minimum(self._sround(x * (4096 - decay), 12) + impulse * spike,
                              self.lp["trace_max"])

        def run_spk(self) -> None:
            a_in = self.a_in.recv()
            third = (self.a_third_factor_in.recv().astype(np.int64)
                     if self.lp["kind"] != "none" else None)
            self.scale_bias()
            if not self.isthrscaled:
                self.scale_threshold()
            self.subthr_dynamics(activation_in=a_in)
            v_pre = self.v.astype(np.int64)
            spikes = self.spiking_activation()
            self.reset_voltage(spikes)
            self.s_out.send(spikes)
            lp = self.lp
            y0 = spikes.astype(np.int64)
            self.t1 = self._trace(self.t1, y0, lp["y1"])
            self.t2 = self._trace(self.t2, y0, lp["y2"])
            if self.lut is not None:
                size = self.lut.size
                k = np.clip(((v_pre - lp["theta"]) >> lp["lut_shift"]) + size // 2, 0,
                            size - 1)
                self.sg = self.lut[k]
            tf_max = lp["tf_max"]
            if lp["kind"] == "error" and third is not None:
                if lp.get("target_values"):
                    self.yt = np.clip(third, 0, lp["trace_max"])
                else:
                    self.yt = self._trace(self.yt, (third != 0).astype(np.int64), lp["y1"])
                d, s = self.yt - self.t1, int(lp["tf_shift"])
                r = d << -s if s <= 0 else (d + (1 << (s - 1))) >> s
                self.m = np.clip(r, -tf_max, tf_max)
            elif lp["kind"] == "reward" and third is not None:
                self.m = np.clip(third, -tf_max, tf_max)
            values = {"y1": self.t1, "y2": self.t2, "sg": self.sg, "m": self.m,
                      "v": self.v.astype(np.int64), "u": self.u.astype(np.int64)}
            out = [np.zeros(self.v.shape, np.int64) for _ in range(3)]
            for i, (factors, k) in enumerate(lp["slots"]):
                prod = np.ones(self.v.shape, np.int64)
                for name, off in factors:
                    prod = prod * (values[name] + off)
                out[i] = np.clip(self._sround(prod, int(k)), -128, 127)
            self.y1, self.y2, self.y3 = (o.astype(np.int32) for o in out)
            self.s_out_bap.send(spikes)
            self.s_out_y1.send(self.y1)
            self.s_out_y2.send(self.y2)
            self.s_out_y3.send(self.y3)

    sign_modes = {fx.SIGN_MIXED: SignMode.MIXED, fx.SIGN_EXCITATORY: SignMode.EXCITATORY,
                  fx.SIGN_INHIBITORY: SignMode.INHIBITORY}
    return SimpleNamespace(
        LIF=LIF, LIFReset=LIFReset, TernaryLIF=TernaryLIF, Sigma=Sigma, Delta=Delta,
        ATRLIF=ATRLIF, RF=RF, RF_IZ=RF_IZ, RFZero=RFZero,
        SigmaDelta=SigmaDelta, ActivationMode=ActivationMode, ChipLIF=ChipLIF,
        ChipLifModel=PyChipLifModelFixed, Dense=Dense,
        DelayDense=DelayDense, Sparse=Sparse, DelaySparse=DelaySparse, RingBuffer=RingBuffer,
        Monitor=Monitor, Loihi2SimCfg=Loihi2SimCfg, RunSteps=RunSteps, SignMode=sign_modes,
        ChipLearningLIF=ChipLearningLIF, ChipLearningLifModel=PyChipLearningLifModel,
        LearningDense=LearningDense, LearningSparse=LearningSparse,
        Loihi2FLearningRule=Loihi2FLearningRule, Loihi3FLearningRule=Loihi3FLearningRule,
    )


def neuron_process(L: SimpleNamespace, image: ChipImage, p: PopulationInfo,
                   plan: ProcessPlan, bias_mant: NDArray[np.int64] | None = None) -> Any:
    """The population's process as ``plan`` says: Lava's ``LIF`` (reset to zero, and every
    readout, with a threshold it never reaches), ``LIFReset``, ``TernaryLIF``, ``Sigma``,
    ``Delta`` or ``SigmaDelta`` (our models of the same names), or our ``ChipLIF`` (reset
    by subtraction). ``bias_mant``: the population's mantissas, when they replace the
    image's."""
    proc = _neuron_process(L, image, p, plan, bias_mant)
    proc.proc_params["neurochip_placement"] = plan.hint()
    return proc


def _model_process(L: SimpleNamespace, image: ChipImage, p: PopulationInfo) -> Any:
    """Lava's process of a sigma-delta population (its registers as Lava takes them)."""
    shape, name = (p.size,), p.name
    proc: Any
    if p.model == "sigma":
        proc = L.Sigma(shape=shape)
    else:
        proc = _sdn_process(L, image, p, shape)
    # Lava's Sigma and Delta take no name: set it as Lava's constructor would
    proc.name = name
    return proc


def _sdn_process(L: SimpleNamespace, image: ChipImage, p: PopulationInfo,
                 shape: tuple[int, ...]) -> Any:
    r = p.registers
    common = {"shape": shape, "vth": int(r["vth"]),
              "cum_error": bool(r["cum_error"]), "spike_exp": int(r["spike_exp"]),
              "state_exp": int(r["state_exp"])}
    if p.model == "delta":
        return L.Delta(**common)
    # Lava's SigmaDelta scales the bias by 2^(spike_exp + state_exp) itself, as ours does
    bias = image.arrays["neurons/bias"][p.offset: p.offset + p.size].astype(np.int64)
    return L.SigmaDelta(bias=bias, act_mode=L.ActivationMode(int(r["act_mode"])), **common)



def _neuron_process(L: SimpleNamespace, image: ChipImage, p: PopulationInfo,
                    plan: ProcessPlan, bias_mant: NDArray[np.int64] | None) -> Any:
    regs = _regs(image, p)
    if bias_mant is not None:
        regs["bias_mant"] = np.asarray(bias_mant, np.int64)
    if p.model in ("sigma", "delta", "sigma_delta"):
        return _model_process(L, image, p)
    if p.model in LOIHI2_MODELS:
        return _loihi2_process(L, image, p, regs)
    if p.model == "ternary_lif":
        del regs["vth"]
        return L.TernaryLIF(vth_hi=int(p.registers["vth_hi"]),
                            vth_lo=int(p.registers["vth_lo"]), **regs)
    if p.model == "lif_reset":
        return L.LIFReset(reset_interval=int(p.registers["reset_interval"]),
                          reset_offset=int(p.registers["reset_offset"]), **regs)
    if not p.spiking:
        # A readout never fires: v saturates at 2^23 - 1 and never exceeds vth * 2^6.
        regs["vth"] = LAVA_READOUT_VTH
    if plan.lava_process == "LIF":
        return L.LIF(**regs)  # Lava's own model: the cross-check tests Lava itself
    regs["vth"] = int(p.vth)  # our model tests spiking itself
    return L.ChipLIF(reset=p.reset, spiking=bool(p.spiking), **regs)


#: the Loihi 2 models, exported as Lava's processes of the same names
LOIHI2_MODELS = ("atrlif", "rf", "rf_iz", "rf_zero")
#: each model's synaptic input ports, by connection port (0: the first input, 1: "imag")
INPUT_PORT_NAMES: dict[str, tuple[str, ...]] = {
    "rf": ("a_real_in", "a_imag_in"), "rf_iz": ("a_real_in", "a_imag_in"),
    "rf_zero": ("u_in", "v_in")}


def input_port(proc: Any, model: str, port: int) -> Any:
    """The Lava InPort of ``proc`` that a connection to input ``port`` of a ``model``
    population feeds."""
    return getattr(proc, INPUT_PORT_NAMES.get(model, ("a_in",))[port])


def _loihi2_process(L: SimpleNamespace, image: ChipImage, p: PopulationInfo,
                    regs: dict[str, Any]) -> Any:
    """Lava's ATRLIF, RF, RF_IZ or RFZero with our registers. Lava's constructors take
    float decays (per 2^12 for ATRLIF) or derive them from a period and decay (RF, RF_IZ,
    RFZero); the RF decays are then set to the image's integer registers, which are the
    values Lava's fixed-point models read."""
    r = p.registers
    if p.model == "atrlif":
        unity = float(1 << 12)
        return L.ATRLIF(shape=regs["shape"], delta_i=regs["du"] / unity,
                        delta_v=regs["dv"] / unity, delta_theta=int(r["delta_theta"]) / unity,
                        delta_r=int(r["delta_r"]) / unity, theta_0=int(r["theta_0"]),
                        theta=int(r["theta_0"]), theta_step=int(r["theta_step"]),
                        bias_mant=regs["bias_mant"], bias_exp=regs["bias_exp"],
                        name=p.name)
    if p.model == "rf_zero":
        proc = L.RFZero(shape=(p.size,), freqs=np.ones(p.size), decay_tau=np.ones(p.size),
                        uth=int(r["uth"]))
        sl = slice(p.offset, p.offset + p.size)
        proc.lct.init = image.arrays["neurons/lct"][sl].astype(np.int32)
        proc.lst.init = image.arrays["neurons/lst"][sl].astype(np.int32)
        proc.name = p.name  # RFZero takes no name
        return proc
    cls = L.RF if p.model == "rf" else L.RF_IZ
    proc = cls(shape=(p.size,), period=8.0, alpha=0.0, state_exp=int(r["state_exp"]),
               decay_bits=int(r["decay_bits"]), vth=int(r["vth"]), name=p.name)
    proc.sin_decay.init = np.array([int(r["sin_decay"])], np.int32)
    proc.cos_decay.init = np.array([int(r["cos_decay"])], np.int32)
    return proc


def synapse_process(L: SimpleNamespace, image: ChipImage, ci: int, plan: ProcessPlan) -> Any:
    proc = _synapse_process(L, image, ci)
    proc.proc_params["neurochip_placement"] = plan.hint()
    return proc


def _synapse_process(L: SimpleNamespace, image: ChipImage, ci: int) -> Any:
    c = image.connections[ci]
    params = {
        "weight_exp": int(c.weight_exp),
        "num_weight_bits": lava_weight_bits(c, image.hw.formats.weight_bits),
        "sign_mode": L.SignMode[c.sign_mode],
        "name": c.name,
    }
    bits = image.population(c.pre).payload_bits
    if bits:
        # graded spikes: Lava's synapse then adds weight x payload
        params["num_message_bits"] = int(bits)
    delayed = c.has_delays or c.delay != 0
    if c.storage == "dense":
        W = image.weights(c.name)
        if not delayed:
            return L.Dense(weights=W, **params)
        return L.DelayDense(weights=W, delays=image.delays(c.name), **params)
    Ws = image.weights_sparse(c.name)
    if not delayed:
        return L.Sparse(weights=Ws, **params)
    pre_idx, post_idx = image.synapse_coords(ci)
    d = (image.arrays[f"conn/{ci}/delay"].astype(np.int64) if c.has_delays
         else np.full(pre_idx.size, c.delay, np.int64))
    # Same structure as the weights; Lava reads a stored 0 (or no entry) as delay 0.
    Ds = sp.csr_matrix((d, (post_idx, pre_idx)), shape=(c.n_post, c.n_pre))
    return L.DelaySparse(weights=Ws, delays=Ds, **params)


def components(image: ChipImage) -> list[list[str]]:
    """Populations grouped into the parts that connections join (order of the image)."""
    parent = {p.name: p.name for p in image.populations}

    def root(x: str) -> str:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for c in image.connections:
        parent[root(c.pre)] = root(c.post)
    groups: dict[str, list[str]] = {}
    for p in image.populations:
        groups.setdefault(root(p.name), []).append(p.name)
    return list(groups.values())


def _regs(image: ChipImage, p: PopulationInfo) -> dict[str, Any]:
    bm = image.arrays["neurons/bias_mant"][p.offset: p.offset + p.size].astype(np.int64)
    be = image.arrays["neurons/bias_exp"][p.offset: p.offset + p.size].astype(np.int64)
    return {"shape": (p.size,), "du": int(p.du), "dv": int(p.dv), "vth": int(p.vth),
            "bias_mant": bm, "bias_exp": be, "name": p.name}


def learning_neuron_process(L: SimpleNamespace, image: ChipImage, p: PopulationInfo,
                            plan: ProcessPlan, spec: NeuronSpec, seed: int,
                            target_values: bool) -> Any:
    """Our learning neuron for a population that carries a third factor (see
    :class:`~compiler.lava.learning.NeuronSpec`)."""
    learn = {**spec.params(), "target_values": bool(target_values)}
    proc = L.ChipLearningLIF(reset=p.reset, spiking=bool(p.spiking), learn=learn, seed=seed,
                             **_regs(image, p))
    proc.proc_params["neurochip_placement"] = plan.hint()
    return proc


def learning_synapse_process(L: SimpleNamespace, image: ChipImage, ci: int,
                             plan: ProcessPlan, rule: RuleSpec, seed: int) -> Any:
    """Lava's ``LearningDense`` (``LearningSparse`` for sparse storage) with the rule."""
    c = image.connections[ci]
    cls = L.Loihi3FLearningRule if rule.three_factor else L.Loihi2FLearningRule
    try:
        lr = cls(rng_seed=seed, **rule.rule_args())
    except (ValueError, TypeError, AssertionError) as exc:
        raise LavaExportError(f"Lava rejects the rule {rule.dw or rule.dt!r}: {exc}",
                              where=f"connection '{c.name}'", field="rule") from None
    params = {
        "weight_exp": int(c.weight_exp),
        "num_weight_bits": lava_weight_bits(c, image.hw.formats.weight_bits),
        "sign_mode": L.SignMode[c.sign_mode],
        "name": c.name,
        "learning_rule": lr,
    }
    if c.storage == "dense":
        proc = L.LearningDense(weights=image.weights(c.name), **params)
    else:
        proc = L.LearningSparse(weights=image.weights_sparse(c.name), **params)
    proc.proc_params["neurochip_placement"] = plan.hint()
    proc.proc_params["neurochip_rule"] = {"ours": rule.text, "dw": rule.dw, "dt": rule.dt,
                                          "tag_scale": rule.tag_scale}
    return proc
