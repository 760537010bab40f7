"""Learning exported to Lava against our engine: digits learned with a three-factor rule,
and the weight-change trend of R-STDP and SuperSpike.

``--rule digits`` (default): a 64-10 network (random 8-bit weights) learns scikit-learn's
digits with the rule ``dw = 2^-lr * m * sg * x1`` (m: the output error, sg: the surrogate
derivative) in our emulator and, exported with ``export_lava(image, learning="lava")``, in
Lava's CPU learning engine (``LearningDense`` with a ``Loihi3FLearningRule`` fed by our
learning neuron). Both see the same stream (the training samples one after another, no
reset in between). Prints the test accuracy of both learned images (evaluated in the
emulator) and the correlation of their weight changes; writes JSON.

    PYTHONPATH=. .venv/bin/python tools/lava_learning.py --samples 400 --json out.json

``--rule rstdp`` / ``--rule superspike``: a 16 -> 8 plastic connection whose post neurons
are driven by a fixed connection (its weight exponent -8 makes the plastic one add
nothing, so both engines see the same spikes and only their learning differs) learns for
``--steps`` steps in both engines; prints the correlation of the weight changes per seed.
R-STDP sees inputs with spike-timing structure (each input repeats one post neuron's
spikes 2 steps earlier, LTP, or 2 steps later, LTD, plus 3 % background spikes) and a
constant reward (``--reward``; 0: a random reward in [-20, 120)); SuperSpike sees
Poisson inputs at rates 2 % .. 30 % and target spikes at rates 0 .. 30 %.

    PYTHONPATH=. .venv/bin/python tools/lava_learning.py --rule rstdp --steps 1000
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from typing import Any

import numpy as np

import neurochip
from compiler.lava import LavaExportWarning, export_lava, learned_image
from neurochip.learning import (
    LearningConfig,
    NeuronLearning,
    SurrogateParams,
    SynapseLearning,
    ThirdFactor,
    add_learning,
)
from neurochip.tasks.digits import digits_task
from neurochip.tasks.learning import class_targets, predict


def digits_learning_image(lr: int = 16, epoch: int = 1, seed: int = 0,
                          sign_mode: str = "mixed") -> neurochip.ChipImage:
    """64 -> 10 LIF, random 8-bit weights, three-factor rule on in->out. ``sign_mode``
    "excitatory" gives weights of step 1, as Lava's learning engine keeps them (mixed 8-bit
    weights step by 2 on the chip)."""
    rng = np.random.default_rng(seed)
    net = neurochip.Network("loihi_like", name="digits-64-10")
    net.add_input("in", 64)
    net.add_lif("out", 10, du=4095, dv=1024, vth=60)
    w = (rng.integers(-10, 11, (10, 64)) * 2 if sign_mode == "mixed"
         else rng.integers(0, 21, (10, 64)))
    net.connect("in", "out", w, sign_mode=sign_mode)
    image = neurochip.compile(net, "loihi_like")
    cfg = LearningConfig(
        (SynapseLearning("in->out", "three_factor", {"lr": lr}),),
        (NeuronLearning("out", surrogate=SurrogateParams("fast_sigmoid", steepness=1.0),
                        third_factor=ThirdFactor("error")),), epoch, seed)
    return add_learning(image, cfg)


def compare(samples: int, test: int, lr: int = 16, sign_mode: str = "mixed",
            timeout_s: float = 1200.0) -> dict[str, Any]:
    """Learn ``samples`` training digits in both engines; accuracy on ``test`` test digits."""
    task = digits_task()
    image = digits_learning_image(lr, sign_mode=sign_mode)
    x = task.x_train[:samples].reshape(-1, 64)  # one stream, sample after sample
    y = class_targets(task.y_train[:samples], 10, task.steps).reshape(-1, 10)
    T = x.shape[0]
    t0 = time.perf_counter()
    em = neurochip.Emulator(image)
    em.run({"in": x}, T, learn=True, targets={"out": y}, spikes=None)
    ours = em.learned_image()
    t_ours = time.perf_counter() - t0
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", LavaExportWarning)  # our learning neuron, announced
        lnet = export_lava(image, {"in": x}, T, learning="lava", targets={"out": y})
    r = lnet.run(T, spikes=None, timeout_s=timeout_s)
    lava = learned_image(image, r.weights)
    t_lava = time.perf_counter() - t0
    W0 = image.weights("in->out")
    d_ours = ours.weights("in->out") - W0
    d_lava = lava.weights("in->out") - W0
    xt, yt = task.x_test[:test], task.y_test[:test]
    acc = {k: float((predict(im, xt) == yt).mean())
           for k, im in (("initial", image), ("ours", ours), ("lava", lava))}
    return {"samples": samples, "steps": T, "test": int(yt.size), "lr": lr,
            "sign_mode": sign_mode,
            "accuracy": acc, "weight_change_correlation":
                float(np.corrcoef(d_ours.ravel(), d_lava.ravel())[0, 1]),
            "weight_change_l1": {"ours": int(np.abs(d_ours).sum()),
                                 "lava": int(np.abs(d_lava).sum())},
            "wall_s": {"ours": t_ours, "lava": t_lava}}


def driven_image(rule: str, seed: int = 0) -> neurochip.ChipImage:
    """in (16) -> hid (8) plastic under ``rule`` ("rstdp" or "superspike"), hid driven one
    to one by "drive" (8) so that the plastic connection (weight exponent -8) never changes
    the spikes."""
    rng = np.random.default_rng(seed)
    net = neurochip.Network("loihi_like", name=f"{rule}-driven")
    net.add_input("in", 16)
    net.add_input("drive", 8)
    net.add_lif("hid", 8, du=4095, dv=1024, vth=40)
    net.connect("drive", "hid", np.eye(8, dtype=np.int64) * 254, weight_exp=2,
                sign_mode="excitatory")
    net.connect("in", "hid", rng.integers(-40, 60, (8, 16)) * 2, weight_exp=-8)
    if rule == "rstdp":
        nl = NeuronLearning("hid", third_factor=ThirdFactor("reward"))
    else:
        nl = NeuronLearning("hid", surrogate=SurrogateParams(), third_factor=ThirdFactor("error"))
    cfg = LearningConfig((SynapseLearning("in->hid", rule),), (nl,))
    return add_learning(neurochip.compile(net, "loihi_like"), cfg)


def trend_inputs(image: neurochip.ChipImage, rule: str, steps: int, seed: int,
                 reward: int = 120) -> tuple[dict[str, Any], dict[str, Any]]:
    """(inputs, third-factor keyword arguments) of the trend protocol (see the module doc)."""
    rng = np.random.default_rng(100 + seed)
    drive = rng.random((steps, 8)) < 0.1
    if rule == "rstdp":
        # the post spikes do not depend on the plastic weights: read them once
        hid = neurochip.Emulator(image).run({"drive": drive}, steps).spikes["hid"]
        pre = rng.random((steps, 16)) < 0.03
        for i in range(16):
            lag = -2 if i < 8 else 2  # input i fires 2 steps before (LTP) / after (LTD)
            pre[:, i] |= np.roll(hid[:, i % 8], lag, axis=0)
        rw = (np.full(steps, reward) if reward else
              np.random.default_rng(3 + seed).integers(-20, 120, steps))
        return {"in": pre, "drive": drive}, {"reward": rw}
    x = rng.random((steps, 16)) < np.linspace(0.02, 0.3, 16)
    tgt = np.random.default_rng(7 + seed).random((steps, 8)) < np.linspace(0.0, 0.3, 8)
    return {"in": x, "drive": drive}, {"targets": {"hid": tgt}}


def trend(rule: str, steps: int = 1000, seed: int = 0, reward: int = 120,
          timeout_s: float = 600.0) -> dict[str, Any]:
    """Learn ``steps`` steps under ``rule`` in both engines from the same spikes; the
    correlation and size of the weight changes."""
    image = driven_image(rule)
    x, third = trend_inputs(image, rule, steps, seed, reward)
    t0 = time.perf_counter()
    em = neurochip.Emulator(image)
    er = em.run(x, steps, learn=True, **third)
    t_ours = time.perf_counter() - t0
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", LavaExportWarning)  # our learning neuron, announced
        lnet = export_lava(image, x, steps, learning="lava", **third)
    r = lnet.run(steps, timeout_s=timeout_s)
    t_lava = time.perf_counter() - t0
    if not np.array_equal(r.spikes["hid"], er.spikes["hid"]):
        raise RuntimeError("the two engines saw different spikes")
    W0 = image.weights("in->hid")
    d_ours = em.weights("in->hid") - W0
    d_lava = r.weights["in->hid"] - W0
    rs = lnet.learning.rules["in->hid"] if lnet.learning else None
    return {"rule": rule, "steps": steps, "seed": seed,
            "reward": reward if rule == "rstdp" else None,
            "lava_dt": rs.dt if rs else None, "lava_dw": rs.dw if rs else None,
            "weight_change_correlation": float(np.corrcoef(d_ours.ravel(),
                                                           d_lava.ravel())[0, 1]),
            "weight_change_l1": {"ours": int(np.abs(d_ours).sum()),
                                 "lava": int(np.abs(d_lava).sum())},
            "wall_s": {"ours": t_ours, "lava": t_lava}}


def main_trend(a: argparse.Namespace) -> None:
    rows = [trend(a.rule, a.steps, s, a.reward) for s in range(a.seeds)]
    print(f"{a.rule}: {a.steps} steps, weight changes of the 8 x 16 plastic connection"
          + (f", reward {a.reward or 'random'}" if a.rule == "rstdp" else ""))
    print(f"  Lava rule: dt = {rows[0]['lava_dt']}; dw = {rows[0]['lava_dw']}")
    print(f"{'seed':>6}{'r':>8}{'L1 ours':>10}{'L1 lava':>10}{'wall s lava':>13}")
    for o in rows:
        print(f"{o['seed']:>6}{o['weight_change_correlation']:>8.3f}"
              f"{o['weight_change_l1']['ours']:>10}{o['weight_change_l1']['lava']:>10}"
              f"{o['wall_s']['lava']:>13.1f}")
    if a.json:
        with open(a.json, "w") as fh:
            json.dump(rows, fh, indent=1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rule", default="digits", choices=["digits", "rstdp", "superspike"])
    ap.add_argument("--samples", type=int, default=400)
    ap.add_argument("--test", type=int, default=450)
    ap.add_argument("--lr", type=int, default=16)
    ap.add_argument("--sign-mode", default="mixed", choices=["mixed", "excitatory"])
    ap.add_argument("--steps", type=int, default=1000, help="rstdp / superspike: steps")
    ap.add_argument("--seeds", type=int, default=3, help="rstdp / superspike: seeds")
    ap.add_argument("--reward", type=int, default=120,
                    help="rstdp: constant reward (0: random in [-20, 120))")
    ap.add_argument("--json", default=None)
    a = ap.parse_args()
    if a.rule != "digits":
        main_trend(a)
        return
    out = compare(a.samples, a.test, a.lr, a.sign_mode)
    acc = out["accuracy"]
    print(f"{out['samples']} training digits ({out['steps']} steps), {out['test']} test digits")
    print(f"{'':24}{'ours':>10}{'lava':>10}")
    print(f"{'test accuracy':24}{100 * acc['ours']:>9.1f}%{100 * acc['lava']:>9.1f}%  "
          f"(before learning {100 * acc['initial']:.1f}%)")
    print(f"{'weight change L1':24}{out['weight_change_l1']['ours']:>10}"
          f"{out['weight_change_l1']['lava']:>10}")
    print(f"{'wall s':24}{out['wall_s']['ours']:>10.1f}{out['wall_s']['lava']:>10.1f}")
    print(f"weight change correlation {out['weight_change_correlation']:.3f}")
    if a.json:
        with open(a.json, "w") as fh:
            json.dump(out, fh, indent=1)


if __name__ == "__main__":
    main()
