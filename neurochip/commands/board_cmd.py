"""``neurochip board-serve``: serve a board over the board protocol (for HIL tests)."""

from __future__ import annotations

import argparse
from typing import Any


def register(sub: Any) -> None:
    p = sub.add_parser(
        "board-serve", help="serve the emulator (or another board) over TCP",
        description="Serve a board with the board protocol, so hardware-in-the-loop tests "
                    "can run with --board tcp://HOST:PORT. Binds to 127.0.0.1 by default.")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=7410, help="TCP port (default 7410; 0 = any)")
    p.add_argument("--backend", choices=["numba", "reference"], default="numba",
                   help="emulator backend behind the board")
    p.set_defaults(func=_serve)


def _serve(args: argparse.Namespace) -> int:
    from neurochip.board import BoardServer, EmulatorBoard

    server = BoardServer((args.host, args.port), lambda: EmulatorBoard(args.backend))
    print(f"board server on tcp://{args.host}:{server.port} (emulator, {args.backend})",
          flush=True)
    try:
        server.serve_forever()
    finally:
        server.server_close()
    return 0
