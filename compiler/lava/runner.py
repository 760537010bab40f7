"""Running Lava without ever hanging: every Lava call runs in a helper thread while
Lava's worker processes are watched.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from numpy.typing import NDArray

from neurochip.core.errors import LavaExportError

__all__ = ["run_and_read"]


_POLL_S = 0.02  # how often a guarded Lava call checks on Lava's worker processes
_GRACE_S = 1.0  # how long to wait for Lava's own thread once its workers are gone
_STOP_TIMEOUT_S = 60.0  # an orderly stop that takes longer than this is abandoned


# Lava runs each process model in its own OS process. When one of them raises, Lava's
# runtime waits for (joins) every worker, but the others block on their channels, so a
# plain ``run`` hangs forever. Every Lava call below therefore runs in a helper thread
# while this thread watches the workers: if one ends before Lava is done, or the time is
# up, the workers (our own child processes) are killed, which unblocks Lava's thread, and
# a LavaExportError reports the worker's traceback. The attributes used for this
# (``Runtime._messaging_infrastructure.actors``, ``_is_started``, ``_is_running``) are
# those of lava-nc 0.10.0, the only release.


def _actors(root: Any) -> list[Any]:
    runtime = getattr(root, "_runtime", None)
    infra = getattr(runtime, "_messaging_infrastructure", None)
    return list(getattr(infra, "actors", []) or [])


def _alive(actor: Any) -> bool:
    try:
        return bool(actor.is_alive())
    except (ValueError, AssertionError):  # already joined and closed by Lava
        return False


def _worker_errors(actors: list[Any]) -> str:
    texts = []
    for a in actors:
        try:
            exc = a.exception
        except (OSError, ValueError, EOFError):
            continue
        if exc:
            texts.append(str(exc[1]).strip())
    return ("\n" + "\n".join(texts)) if texts else ""


class _Failure(Exception):
    def __init__(self, message: str, cause: BaseException | None = None) -> None:
        super().__init__(message)
        self.cause = cause


def _guarded(root: Any, action: Callable[[], Any], what: str, deadline: float | None,
             workers_may_end: bool = False) -> Any:
    """Run ``action`` (a Lava call) in a helper thread while watching Lava's workers.

    Unless ``workers_may_end`` (stopping), a worker that ends means it failed.
    """
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = action()
        except BaseException as exc:  # reported to the caller below
            box["error"] = exc

    th = threading.Thread(target=target, name=f"lava {what}", daemon=True)
    th.start()
    seen: list[Any] = []
    while True:
        th.join(_POLL_S)
        if not th.is_alive():
            break
        seen = _actors(root) or seen
        if not workers_may_end and any(not _alive(a) for a in seen):
            problem = "a Lava worker process ended unexpectedly"
        elif deadline is not None and time.monotonic() > deadline:
            problem = "Lava did not finish in time"
        else:
            continue
        _kill(seen)
        th.join(_GRACE_S)
        raise _Failure(f"{what}: {problem}{_worker_errors(seen)}")
    if "error" in box:
        err = box["error"]
        raise _Failure(f"{what}: {type(err).__name__}: {err}{_worker_errors(_actors(root))}",
                       err)
    return box.get("value")


def _kill(actors: list[Any]) -> None:
    for a in actors:
        if _alive(a):
            try:
                a.kill()
            except (OSError, ValueError, AttributeError):
                pass


def _abandon(root: Any) -> None:
    """Tear down a runtime whose workers are dead, without talking to them."""
    _kill(_actors(root))
    runtime = getattr(root, "_runtime", None)
    if runtime is None:
        return
    # With these cleared, stop() sends nothing to the dead services; it only joins the
    # workers and shuts down the shared memory and the watchdog manager.
    runtime._is_running = False
    runtime._is_started = False
    try:
        runtime.stop()
    except Exception:  # best effort: the run's own error is what matters
        pass


def run_and_read(root: Any, run_cfg: Any, condition: Any, targets: list[tuple[str, Any, Any]],
                 out_spikes: dict[str, NDArray[Any]],
                 out_probes: dict[str, NDArray[np.int32]], timeout_s: float | None,
                 reads: list[tuple[str, Any]] | None = None,
                 out_vars: dict[str, Any] | None = None) -> None:
    """Compile, run, read the monitors (and the Vars in ``reads`` into ``out_vars``), stop.
    Lava is stopped (or torn down) on every path."""
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    done = False
    try:
        _guarded(root, lambda: root.create_runtime(run_cfg=run_cfg), "compiling for Lava",
                 deadline)
        _guarded(root, lambda: root.run(condition=condition), "running in Lava", deadline)
        for key, target, mon in targets:
            data = _guarded(root, mon.get_data, "reading Lava monitors", deadline)
            arr = np.asarray(data[target.process.name][target.name])
            if key in out_spikes and out_spikes[key].dtype == np.bool_:
                out_spikes[key][:] = arr != 0
            else:
                vals = np.rint(arr)
                if not np.array_equal(vals, arr) or np.abs(vals).max(initial=0) >= 2 ** 31:
                    raise _Failure(f"reading Lava monitors: {key!r} holds non-int32 values")
                (out_spikes if key in out_spikes else out_probes)[key][:] = vals.astype(np.int32)
        for key, var in reads or []:
            value = _guarded(root, var.get, "reading Lava variables", deadline)
            if out_vars is not None:
                out_vars[key] = value
        done = True
    except _Failure as f:
        raise LavaExportError(str(f), where="lava runtime") from f.cause
    finally:
        if not done:
            # Whatever went wrong (a failed worker, a timeout, an interrupt), the workers'
            # state is unknown: kill them rather than ask them to stop.
            _abandon(root)
    if getattr(root, "_runtime", None) is not None:
        try:
            _guarded(root, root.stop, "stopping Lava", time.monotonic() + _STOP_TIMEOUT_S,
                     workers_may_end=True)
        except _Failure as f:
            _abandon(root)
            raise LavaExportError(str(f), where="lava runtime") from f.cause
