"""``neurochip board-serve``: serve a board over the board protocol (for HIL tests)."""

from __future__ import annotations

import argparse
from typing import Any


def register(sub: Any) -> None:
    p = sub.add_parser(
        "board-serve", help="serve a board (emulator, reference, lava, ...) over TCP",
        description="Serve a board with the board protocol (version 2), so hardware-in-the-"
                    "loop tests can run with --board=tcp://HOST:PORT. Prints tcp://HOST:PORT "
                    "on its first line. Binds to 127.0.0.1 by default; each connection gets "
                    "a fresh board.")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=7410, help="TCP port (default 7410; 0 = any)")
    p.add_argument("--board", default=None, metavar="URI",
                   help="board to serve: emulator (default), reference, lava, null, "
                        "faulty:SPEC+INNER, or tcp://HOST:PORT (a relay)")
    p.add_argument("--backend", choices=["numba", "reference"], default=None,
                   help="(older spelling) emulator backend: numba = --board emulator, "
                        "reference = --board reference")
    p.add_argument("--token-file", default=None, metavar="PATH",
                   help="require clients to prove they hold the secret in this file "
                        "(HMAC challenge-response; default: $NEUROCHIP_BOARD_TOKEN if set)")
    p.add_argument("--max-frame", type=int, default=256 << 20, metavar="BYTES",
                   help="largest accepted frame (default 256 MiB)")
    p.add_argument("--max-connections", type=int, default=32, metavar="N",
                   help="connections served at once (default 32)")
    p.add_argument("--idle-timeout", type=float, default=300.0, metavar="S",
                   help="seconds a connection may idle between requests (default 300)")
    p.add_argument("--read-timeout", type=float, default=30.0, metavar="S",
                   help="seconds to finish a started frame or take a sent one (default 30)")
    p.add_argument("--in-process", action="store_true",
                   help="serve every session in the server process (default: each session in "
                        "its own worker process, so a crash or a blow-up stays in it)")
    p.add_argument("--max-request-seconds", type=float, default=3600.0, metavar="S",
                   help="time budget of one request (default 3600; 0 = none)")
    p.add_argument("--max-memory", type=int, default=None, metavar="BYTES",
                   help="memory a session's worker may add to its size (default 4 GiB; "
                        "0 = none; needs worker processes)")
    p.add_argument("--max-neuron-steps", type=int, default=10**12, metavar="N",
                   help="steps x samples x neurons of one run or learning call "
                        "(default 10^12; 0 = none)")
    p.add_argument("--busy-poll", type=float, default=0.0005, metavar="S",
                   help="seconds a session polls for the next request after a reply before "
                        "sleeping: cuts the round trip of short calls by the wake-up latency, "
                        "at the price of up to that much CPU time per request (default "
                        "0.0005; 0 = never poll)")
    p.set_defaults(func=_serve)


def _serve(args: argparse.Namespace) -> int:
    import functools
    import os
    import sys
    from pathlib import Path

    from neurochip.board import open_board
    from neurochip.board_remote import BoardServer, keep_freed_memory
    from neurochip.errors import ConfigError

    if args.board and args.backend:
        raise ConfigError("give --board or --backend, not both", where="board-serve")
    uri = args.board or ("reference" if args.backend == "reference" else "emulator")
    for name in ("max_frame", "max_connections"):
        if getattr(args, name) < 1:
            raise ConfigError("must be positive", where="board-serve",
                              field=f"--{name.replace('_', '-')}")
    for name in ("idle_timeout", "read_timeout"):
        if not getattr(args, name) > 0:
            raise ConfigError("must be a positive number of seconds", where="board-serve",
                              field=f"--{name.replace('_', '-')}")
    if args.max_memory is not None and args.in_process and args.max_memory > 0:
        raise ConfigError("a memory budget needs a worker process per session; drop "
                          "--in-process or --max-memory", where="board-serve",
                          field="--max-memory")
    if args.max_memory is None:
        args.max_memory = 0 if args.in_process else 4 << 30
    for name in ("max_request_seconds", "max_memory", "max_neuron_steps", "busy_poll"):
        if not getattr(args, name) >= 0:
            raise ConfigError("must be 0 (no limit) or positive", where="board-serve",
                              field=f"--{name.replace('_', '-')}")
    if not 0 <= args.port < 65536:
        raise ConfigError(f"{args.port} is not a TCP port", where="board-serve", field="--port")
    token = os.environ.get("NEUROCHIP_BOARD_TOKEN")
    if args.token_file:
        try:
            token = Path(args.token_file).read_text().strip()
        except OSError as exc:
            raise ConfigError(f"cannot read: {exc.strerror}", where="board-serve",
                              field="--token-file") from None
        if not token:
            raise ConfigError("the token file is empty", where="board-serve",
                              field="--token-file")
    open_board(uri).close()  # a bad URI fails here, with one line, before serving
    keep_freed_memory()  # this process serves boards only: reuse memory across calls
    try:
        server = BoardServer((args.host, args.port), functools.partial(open_board, uri),
                             token=token, max_frame=args.max_frame,
                             idle_timeout=args.idle_timeout, read_timeout=args.read_timeout,
                             max_connections=args.max_connections,
                             isolate=not args.in_process,
                             max_request_seconds=args.max_request_seconds or None,
                             max_memory=args.max_memory or None,
                             max_neuron_steps=args.max_neuron_steps or None,
                             busy_poll=args.busy_poll)
    except OSError as exc:
        raise ConfigError(f"cannot listen on {args.host}:{args.port}: {exc.strerror}",
                          where="board-serve") from None
    print(server.uri, flush=True)
    mode = "in-process sessions" if args.in_process else "a worker process per session"
    print(f"serving board {uri!r} with protocol 2, {mode}"
          f"{' (token required)' if token else ''}", flush=True)
    if args.host not in ("127.0.0.1", "localhost", "::1") and not token:
        print("warning: listening beyond loopback without a token", file=sys.stderr,
              flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0
