"""ANN -> SNN conversion of standard ONNX classifiers by rate coding (the SNN Toolbox method).

A ReLU network ``a_l = relu(W_l a_{l-1} + b_l)`` becomes integrate-and-fire neurons
(alpha = 0, beta = 1, reset by subtraction) whose spike rate r_l approximates
``a_l / lambda_l``; ``lambda_l`` is the ``percentile``-th percentile of the layer's positive
activations on calibration data (data-based normalisation, Rueckauer et al. 2017, the SNN
Toolbox's default 99.9). Each neuron keeps the ANN's weights, gets the ANN's bias as its
membrane bias and threshold ``lambda_l``; the spikes of a converted layer enter the next
ops scaled by ``lambda_l`` (so residual ``Add``s and every linear op compose unchanged).
The input image x >= 0 is sent as a regular rate code of ``x / lambda_in``
(:func:`encode`). The logits become a non-spiking integrator (beta = 1) whose voltage after
T steps is about ``T * logits``: the class is its argmax at the last step.

The ANN itself runs on ``onnx.reference.ReferenceEvaluator`` (onnx's maintained reference
implementation of every operator), which also gives the activations on calibration data.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from neurochip.core.errors import ConfigError

__all__ = ["DEFAULT_PERCENTILE", "activation_scales", "ann_outputs", "encode"]

DEFAULT_PERCENTILE = 99.9


def ann_outputs(model: Any, X: NDArray[Any], names: list[str] | None = None,
                batch: int = 256) -> dict[str, NDArray[np.float64]]:
    """Run the ONNX ``model`` on ``X`` with onnx's reference evaluator; every intermediate
    tensor named in ``names`` (default: the graph outputs), stacked over the batch."""
    from onnx.reference import ReferenceEvaluator

    sess = ReferenceEvaluator(model)
    inp = next(i.name for i in model.graph.input
           if i.name not in {t.name for t in model.graph.initializer})
    want = names or [o.name for o in model.graph.output]
    out: dict[str, list[NDArray[Any]]] = {k: [] for k in want}
    Xa = np.asarray(X, np.float32)
    for s in range(0, len(Xa), batch):
        res: Any = sess.run(None, {inp: Xa[s:s + batch]}, intermediate=True)
        for k in want:
            out[k].append(np.asarray(res[k], np.float64))
    return {k: np.concatenate(v) for k, v in out.items()}


def activation_scales(model: Any, X: Any, relu_outputs: list[str], percentile: float
                      ) -> tuple[float, dict[str, float]]:
    """(lambda_in, {relu output: lambda}) from calibration inputs ``X`` (N, *input shape)."""
    if X is None:
        raise ConfigError("converting an ANN (ReLU network) to spikes needs calibration "
                          "images: pass ann_calibration=X (N, *input shape), e.g. a few "
                          "hundred training inputs", where="compile", field="ann_calibration")
    if not (isinstance(percentile, (int, float)) and 0 < percentile <= 100):
        raise ConfigError(f"ann_percentile must be in (0, 100], got {percentile!r}",
                          where="compile", field="ann_percentile")
    Xa = np.asarray(X, np.float64)
    if Xa.ndim < 2 or len(Xa) == 0 or not np.all(np.isfinite(Xa)):
        raise ConfigError(f"ann_calibration must be a finite array (N, *input shape), got "
                          f"shape {Xa.shape}", where="compile", field="ann_calibration")
    if np.any(Xa < 0):
        raise ConfigError("ann_calibration holds negative inputs; a rate code carries "
                          "intensities >= 0 (shift or scale the inputs, as the model was "
                          "trained)", where="compile", field="ann_calibration")
    acts = ann_outputs(model, Xa, relu_outputs)
    lam_in = float(np.percentile(Xa[Xa > 0], percentile)) if np.any(Xa > 0) else 1.0
    lams = {}
    for k, a in acts.items():
        pos = a[a > 0]
        lams[k] = float(np.percentile(pos, percentile)) if pos.size else 1.0
    return lam_in, lams


def encode(X: NDArray[Any], steps: int, input_scale: float = 1.0) -> NDArray[np.bool_]:
    """Images (N, *shape) -> spikes (N, steps, prod(shape)): the regular rate code of
    ``x / input_scale`` (clipped to 1), as the converted network expects (``input_scale``:
    ``image.metadata["import"]["conversion"]["input_scale"]``)."""
    from compiler.training.data import encode_rate

    Xa = np.asarray(X, np.float64).reshape(len(X), -1) / float(input_scale)
    return encode_rate(np.clip(Xa, 0.0, 1.0), steps, mode="regular")
