"""The on-chip learning demonstrations, as functions that return their measurements.

``tools/learn_*.py``, ``tools/bench_learning.py`` and the tests call these (the tests with
reduced sizes). Every function is deterministic in its seed.

* :func:`digits_demo` -- digits (64-100-10, 8-bit weights) learned from random weights
  entirely on the emulator with DFA, FA or DCLL, next to the float64 reference rule.
* :func:`superspike_demo` -- one neuron taught a target spike train from frozen Poisson
  inputs (SuperSpike); van Rossum distance before and after.
* :func:`xor_demo` -- the temporal XOR learned on chip.
* :func:`adaptation_demo` -- a model trained offline (float64, same network and rule),
  compiled, then adapted on chip to shifted and noisy digits.
* :func:`cost_demo` -- time per step of learning against inference (wall clock on one core
  and chip latency from the cost model), cycles and energy per learning epoch.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np

from neurochip.core.image import ChipImage
from neurochip.learning import FloatLearner, SurrogateParams, TraceParams, add_learning, preset
from neurochip.tasks.digits import (
    DIGITS_STEPS,
    N_CLASSES,
    N_PIXELS,
    DigitsTask,
    decode_counts,
    digits_network,
    digits_task,
    distort_digits,
)
from neurochip.tasks.learning import (
    class_targets,
    predict,
    superspike_network,
    van_rossum,
    xor_network,
    xor_task,
)

__all__ = ["DIGITS_SETTINGS", "adaptation_demo", "cost_demo", "digits_demo", "digits_image",
           "superspike_demo", "xor_demo"]

# The digits protocol: rate code of 20 steps, one weight update per sample (20 steps),
# learning-rate shifts 2^-18 (hidden) and 2^-13 (output), halved every 3 passes.
DIGITS_SETTINGS: dict[str, Any] = {"steps": DIGITS_STEPS, "rate": 0.5, "epoch": 20, "lr_hidden": 18,
                                   "lr_out": 13, "feedback_shift": 7, "readout_shift": 10,
                                   "decay_every": 3, "n_hidden": 100}


def digits_image(rule: str = "dfa", *, seed: int = 0, **overrides: Any) -> ChipImage:
    """The random 64-100-10 digits network compiled for loihi_like, with ``rule``."""
    import neurochip

    s = {**DIGITS_SETTINGS, **overrides}
    img = neurochip.compile(digits_network(n_hidden=s["n_hidden"], seed=seed), "loihi_like")
    return add_learning(img, preset(img, rule, lr_hidden=s["lr_hidden"], lr_out=s["lr_out"],
                                    epoch=s["epoch"], feedback_shift=s["feedback_shift"],
                                    readout_shift=s["readout_shift"], seed=seed))


def _accuracy(image: ChipImage, x: np.ndarray, y: np.ndarray) -> float:
    return float((predict(image, x) == y).mean())


def _float_accuracy(fl: Any, x: np.ndarray, y: np.ndarray) -> float:
    counts, vsum = fl.forward(x, "out")
    return float((decode_counts(counts, vsum) == y).mean())


def digits_demo(rule: str = "dfa", *, passes: int = 8, seed: int = 0, limit: int | None = None,
                test_limit: int | None = None, float_reference: bool = True,
                progress: bool = False, task: DigitsTask | None = None,
                on_pass: Callable[[int, dict[str, Any]], None] | None = None,
                **overrides: Any) -> dict[str, Any]:
    """Learn digits on chip from random weights; test accuracy after every pass.

    limit / test_limit: use only the first samples of the splits (for quick runs).
    Returns accuracies per pass (chip and float reference), wall time per pass, and the
    learning counters, energy and latency of every pass.
    """
    import neurochip

    s = {**DIGITS_SETTINGS, **overrides}
    task = task or digits_task(s["steps"], s["rate"])
    xtr, ytr = task.x_train[:limit], task.y_train[:limit]
    xte, yte = task.x_test[:test_limit], task.y_test[:test_limit]
    img = digits_image(rule, seed=seed, **overrides)
    em = neurochip.Emulator(img)
    targets = {"out": class_targets(ytr, N_CLASSES, task.steps)}
    out: dict[str, Any] = {"rule": rule, "settings": s, "passes": passes,
                           "initial_accuracy": _accuracy(img, xte, yte), "accuracy": [],
                           "wall_s": [], "counters": [], "energy_uj": [], "latency_ms": [],
                           "float_accuracy": []}
    for k in range(passes):
        em.set_rate_shift(k // s["decay_every"])
        t0 = time.perf_counter()
        h = em.learn({"in": xtr}, targets, shuffle=seed + k, progress=progress)
        out["wall_s"].append(time.perf_counter() - t0)
        out["accuracy"].append(_accuracy(em.learned_image(), xte, yte))
        tot = h.totals()
        out["counters"].append({n: tot[n] for n in ("learn_updates", "trace_updates",
                                                    "error_messages", "syn_ops")})
        out["energy_uj"].append(tot["energy_pj"] / 1e6)
        out["latency_ms"].append(tot["latency_ns"] / 1e6)
        if on_pass is not None:
            on_pass(k, out)
    out["final_accuracy"] = out["accuracy"][-1]
    out["learned_image"] = em.learned_image()
    out["samples_per_pass"] = len(ytr)
    out["steps_per_pass"] = len(ytr) * task.steps
    if float_reference:
        fl = FloatLearner(img)
        for k in range(passes):
            fl.set_rate_shift(k // s["decay_every"])
            fl.learn(xtr, targets, shuffle=seed + k)
            out["float_accuracy"].append(_float_accuracy(fl, xte, yte))
        out["float_final_accuracy"] = out["float_accuracy"][-1]
    return out


def superspike_demo(*, trials: int = 200, blocks: int = 3, seed: int = 1, n_in: int = 100,
                    steps: int = 200, target_spikes: int = 5, w_max: int = 4,
                    float_reference: bool = True) -> dict[str, Any]:
    """Teach one neuron a target spike train (``blocks`` x ``trials`` presentations, the
    learning rate halved after each block); van Rossum distances (tau = 10 steps)."""
    import neurochip
    from compiler.training.data import spike_train_task

    d = spike_train_task(n_in=n_in, steps=steps, input_rate=0.05,
                         target_spikes=target_spikes, seed=seed)
    x, y = d.x[0], d.y[0]
    img = neurochip.compile(superspike_network(n_in=n_in, w_max=w_max, seed=seed), "loihi_like")
    img = add_learning(img, preset(img, "superspike", superspike={"lr": 20, "tau_e": 3,
                                                                   "elig": 6},
                                   trace=TraceParams(32, 512),
                                   surrogate=SurrogateParams(steepness=1.0), seed=seed))
    s0 = neurochip.Emulator(img).run({"in": x}).spikes["out"]
    d0 = van_rossum(s0, y)
    X, Y = np.repeat(x[None], trials, 0), np.repeat(y[None], trials, 0)
    em = neurochip.Emulator(img)
    curve = [d0]
    for b in range(blocks):
        em.set_rate_shift(b)
        em.learn({"in": X}, {"out": Y})
        s1 = neurochip.Emulator(em.learned_image()).run({"in": x}).spikes["out"]
        curve.append(van_rossum(s1, y))
    out: dict[str, Any] = {
        "target_steps": np.flatnonzero(y[:, 0]).tolist(),
        "initial_steps": np.flatnonzero(s0[:, 0]).tolist(),
        "final_steps": np.flatnonzero(s1[:, 0]).tolist(),
        "distance_initial": d0, "distance_final": curve[-1], "curve": curve,
        "reduction": 1.0 - curve[-1] / d0, "presentations": trials * blocks,
        "learned_image": em.learned_image()}
    if float_reference:
        fl = FloatLearner(img)
        for b in range(blocks):
            fl.set_rate_shift(b)
            fl.learn(X, {"out": Y})
        sf = fl.run(x, learn=False)[:, img.population("out").offset:][:, :1]
        out["float_distance_final"] = van_rossum(sf, y)
        out["float_reduction"] = 1.0 - out["float_distance_final"] / d0
    return out


def xor_demo(*, repeats: int = 100, blocks: int = 4, jitter: int = 1, seed: int = 0,
             n_hidden: int = 32) -> dict[str, Any]:
    """Temporal XOR on chip: DFA on both layers; accuracy on jittered test patterns."""
    import neurochip

    steps = 24
    x, y = xor_task(steps=steps, repeats=repeats, jitter=jitter, seed=seed)
    xt, yt = xor_task(steps=steps, repeats=25, jitter=jitter, seed=seed + 99)
    img = neurochip.compile(xor_network(n_hidden=n_hidden, seed=seed), "loihi_like")
    img = add_learning(img, preset(img, "dfa", lr_hidden=14, lr_out=12, epoch=1, seed=seed))
    tg = np.zeros((len(y), steps, 2), bool)
    for i, c in enumerate(y):
        tg[i, 10:, c] = True  # the right output should fire after both inputs arrived
    em = neurochip.Emulator(img)
    acc = [_accuracy(img, xt, yt)]
    for b in range(blocks):
        em.set_rate_shift(b)
        em.learn({"in": x}, {"out": tg}, shuffle=seed + b)
        acc.append(_accuracy(em.learned_image(), xt, yt))
    return {"accuracy_initial": acc[0], "accuracy": acc[1:], "final_accuracy": acc[-1],
            "train_presentations": len(y) * blocks, "test_patterns": len(yt),
            "jitter": jitter, "learned_image": em.learned_image()}


def adaptation_demo(*, offline_passes: int = 6, adapt_passes: int = 2, shift: int = 1,
                    noise: float = 0.3, seed: int = 0, limit: int | None = None,
                    rule: str = "dfa") -> dict[str, Any]:
    """Offline (float64) training on clean digits, compile, then on-chip adaptation to
    digits moved by ``shift`` pixels with uniform pixel noise; accuracies before/after."""
    import neurochip
    from neurochip.core.network import Network

    s = DIGITS_SETTINGS
    task = digits_task(s["steps"], s["rate"])
    img = digits_image(rule, seed=seed)
    xtr, ytr = task.x_train[:limit], task.y_train[:limit]
    tg = {"out": class_targets(ytr, N_CLASSES, task.steps)}
    fl = FloatLearner(img)
    for k in range(offline_passes):
        fl.set_rate_shift(k // s["decay_every"])
        fl.learn(xtr, tg, shuffle=seed + k)
    # compile the offline-trained float model: weights rounded to what the chip keeps
    trained = fl.to_image()
    net = Network("loihi_like", name="digits-offline")
    net.add_input("in", N_PIXELS)
    for p in trained.lif_populations:
        net.add_lif(p.name, p.size, du=p.du, dv=p.dv, vth=p.vth, reset=p.reset)  # type: ignore[arg-type]
    for c in trained.connections:
        net.connect(c.pre, c.post, trained.weights(c.name), weight_exp=c.weight_exp,
                    sign_mode=c.sign_mode)
    deployed = neurochip.compile(net, "loihi_like")
    deployed = add_learning(deployed, preset(deployed, rule, lr_hidden=s["lr_hidden"],
                                             lr_out=s["lr_out"], epoch=s["epoch"],
                                             feedback_shift=s["feedback_shift"],
                                             readout_shift=s["readout_shift"], seed=seed))
    shifted_tr = task.encode(distort_digits(task.images_train[:limit], shift=shift,
                                            noise=noise, seed=seed))
    shifted_te = task.encode(distort_digits(task.images_test, shift=shift, noise=noise,
                                            seed=seed + 1))
    clean = _accuracy(deployed, task.x_test, task.y_test)
    before = _accuracy(deployed, shifted_te, task.y_test)
    em = neurochip.Emulator(deployed)
    em.set_rate_shift(2)  # fine-tuning: a quarter of the initial learning rate
    after_curve = []
    for k in range(adapt_passes):
        em.learn({"in": shifted_tr}, tg, shuffle=100 + seed + k)
        after_curve.append(_accuracy(em.learned_image(), shifted_te, task.y_test))
    after = after_curve[-1]
    lost = clean - before
    return {"clean_accuracy": clean, "shifted_accuracy_before": before,
            "shifted_accuracy_after": after, "after_per_pass": after_curve,
            "recovered_fraction": (after - before) / lost if lost > 0 else float("nan"),
            "clean_accuracy_after": _accuracy(em.learned_image(), task.x_test, task.y_test),
            "shift_pixels": shift, "noise": noise, "offline_passes": offline_passes,
            "adapt_passes": adapt_passes, "learned_image": em.learned_image()}


def cost_demo(rule: str = "dfa", *, limit: int | None = None, repeats: int = 3,
              seed: int = 0, n_hidden: int | None = None, threads: int = 1) -> dict[str, Any]:
    """Learning against inference on the same network and samples, on ``threads`` Numba
    threads (one by default), the 64-``n_hidden``-10 digits network (100 by default).

    Wall clock: best of ``repeats`` interleaved rounds, each one pass of the training
    split through ``Emulator.learn`` and the same samples through ``Emulator.run``
    (batched: with one thread run serially; with more, the samples spread over the
    threads, while the learning stream, one sample after another, spreads its large
    weight updates). Chip time and energy: the cost model's latency and energy per step
    with and without learning; per learning epoch (``epoch`` steps between weight updates)
    the cycles, energy and its parts.
    """
    import numba

    import neurochip

    s = DIGITS_SETTINGS
    task = digits_task(s["steps"], s["rate"])
    xtr, ytr = task.x_train[:limit], task.y_train[:limit]
    img = digits_image(rule, seed=seed, n_hidden=n_hidden or s["n_hidden"])
    tg = {"out": class_targets(ytr, N_CLASSES, task.steps)}
    before = numba.get_num_threads()
    numba.set_num_threads(threads)
    try:
        inf = neurochip.Emulator(img)
        inf.run({"in": xtr[:4]})
        warm = neurochip.Emulator(img)
        warm.learn({"in": xtr[:4]}, {"out": tg["out"][:4]})
        best_inf = best_learn = np.inf
        r_inf = h = None
        for _ in range(repeats):
            inf.reset()
            t0 = time.perf_counter()
            r_inf = inf.run({"in": xtr})
            best_inf = min(best_inf, time.perf_counter() - t0)
            em = neurochip.Emulator(img)
            em.learner  # noqa: B018  (its tables are built once, like the emulator's)
            t0 = time.perf_counter()
            h = em.learn({"in": xtr}, tg, shuffle=seed)
            best_learn = min(best_learn, time.perf_counter() - t0)
    finally:
        numba.set_num_threads(before)
    assert r_inf is not None and h is not None
    steps = len(ytr) * task.steps
    tot = h.totals()
    hw = img.hw
    n_epochs = steps / s["epoch"]
    lat_inf = float(r_inf.latency_ns.sum())
    e_inf = float(r_inf.energy.sum())
    upd = tot["learn_updates"]
    return {
        "steps": steps, "samples": len(ytr), "epoch_steps": s["epoch"], "threads": threads,
        "n_hidden": int(img.population("hid").size),
        "wall_inference_us_per_step": best_inf / steps * 1e6,
        "wall_learning_us_per_step": best_learn / steps * 1e6,
        "wall_ratio": best_learn / best_inf,
        "wall_learning_pass_s": best_learn,
        "chip_inference_ns_per_step": lat_inf / steps,
        "chip_learning_ns_per_step": tot["latency_ns"] / steps,
        "chip_ratio": tot["latency_ns"] / lat_inf,
        "energy_inference_nj_per_step": e_inf / steps / 1e3,
        "energy_learning_nj_per_step": tot["energy_pj"] / steps / 1e3,
        "per_learning_epoch": {
            "cycles": tot["latency_ns"] / hw.timing.cycle_ns / n_epochs,
            "latency_us": tot["latency_ns"] / n_epochs / 1e3,
            "energy_nj": tot["energy_pj"] / n_epochs / 1e3,
            "weight_updates": upd / n_epochs,
            "weight_update_energy_nj": upd * hw.energy.learn_update_pj / n_epochs / 1e3,
            "trace_updates": tot["trace_updates"] / n_epochs,
            "error_messages": tot["error_messages"] / n_epochs,
            "learn_update_pj": hw.energy.learn_update_pj,
            "learn_update_ns": hw.timing.learn_update_ns,
        },
        "per_pass": {"energy_uj": tot["energy_pj"] / 1e6, "latency_ms": tot["latency_ns"] / 1e6,
                     "weight_updates": upd,
                     "weight_update_energy_uj": upd * hw.energy.learn_update_pj / 1e6},
    }
