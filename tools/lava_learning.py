"""Learning exported to Lava against our engine: digits learned with a three-factor rule.

A 64-10 network (random 8-bit weights) learns scikit-learn's digits with the rule
``dw = 2^-lr * m * sg * x1`` (m: the output error, sg: the surrogate derivative) in our
emulator and, exported with ``export_lava(image, learning="lava")``, in Lava's CPU learning
engine (``LearningDense`` with a ``Loihi3FLearningRule`` fed by our learning neuron). Both
see the same stream (the training samples one after another, no reset in between). Prints
the test accuracy of both learned images (evaluated in the emulator) and the correlation
of their weight changes; writes JSON.

    PYTHONPATH=. .venv/bin/python tools/lava_learning.py --samples 400 --json out.json
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=int, default=400)
    ap.add_argument("--test", type=int, default=450)
    ap.add_argument("--lr", type=int, default=16)
    ap.add_argument("--sign-mode", default="mixed", choices=["mixed", "excitatory"])
    ap.add_argument("--json", default=None)
    a = ap.parse_args()
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
