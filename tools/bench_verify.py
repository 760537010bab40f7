"""Cost of checking an image at load: a full loihi_like chip (128 cores x 1024 neurons,
as in tools/bench_emulator.py part (e)).

Compares, in one run and interleaved, ``ChipImage.load(path)`` (capped reading, digests and
the verifier) with ``ChipImage.load(path, verify=False)`` (capped reading only), and times
the verifier alone on the loaded image. Prints a table and writes JSON to bench_results/.

    PYTHONPATH=. python tools/bench_verify.py [--repeats 7]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import neurochip  # noqa: E402
from neurochip.core.verify import verify_image  # noqa: E402
from tools.bench_emulator import full_chip_network  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--out", type=Path, default=ROOT / "bench_results" / "bench_verify.json")
    args = ap.parse_args()
    t = time.perf_counter()
    img = neurochip.compile(full_chip_network(), "loihi_like")
    compile_s = time.perf_counter() - t
    with tempfile.TemporaryDirectory() as td:
        path = img.save(Path(td) / "full.nchip")
        size = path.stat().st_size
        del img
        import hashlib
        import zipfile

        with zipfile.ZipFile(path) as zf:
            blobs = [zf.read(n) for n in zf.namelist()]
        t = time.perf_counter()
        for b in blobs:
            hashlib.sha256(b).hexdigest()
        sha_s = time.perf_counter() - t
        del blobs
        plain, checked, verify = [], [], []
        neurochip.ChipImage.load(path)  # warm the file cache
        for _ in range(args.repeats):
            t = time.perf_counter()
            neurochip.ChipImage.load(path, verify=False)
            plain.append(time.perf_counter() - t)
            t = time.perf_counter()
            im = neurochip.ChipImage.load(path)
            checked.append(time.perf_counter() - t)
            t = time.perf_counter()
            verify_image(im)
            verify.append(time.perf_counter() - t)
    p, c, v = (statistics.median(x) for x in (plain, checked, verify))
    res = {"neurons": im.n_neurons, "synapses": im.n_synapses, "cores": len(im.cores),
           "file_mb": size / 1e6, "compile_s": compile_s, "repeats": args.repeats,
           "load_unverified_s": p, "load_verified_s": c, "verify_only_s": v,
           "added_fraction": (c - p) / p, "verify_fraction": v / p,
           "sha256_members_s": sha_s, "sha256_fraction": sha_s / p}
    rows = [("image", f"{im.n_neurons} neurons, {im.n_synapses:,} synapses, "
                      f"{len(im.cores)} cores, {size / 1e6:.1f} MB"),
            ("load, verify=False (median)", f"{p * 1e3:.1f} ms"),
            ("load, verified + digests (median)", f"{c * 1e3:.1f} ms"),
            ("verifier alone (median)", f"{v * 1e3:.1f} ms"),
            ("added by verification + digest check", f"{100 * (c - p) / p:+.1f} %"),
            ("verifier alone / unverified load", f"{100 * v / p:.1f} %"),
            ("sha256 of every member (in both loads)", f"{sha_s * 1e3:.1f} ms = "
                                                       f"{100 * sha_s / p:.1f} % of the load")]
    w = max(len(r[0]) for r in rows)
    for k, val in rows:
        print(f"{k:<{w}}  {val}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(res, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
