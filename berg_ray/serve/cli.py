"""``berg-ray serve``: start (or join) a Ray cluster, deploy the service, print its URL, block until a signal."""

from __future__ import annotations

import argparse
import contextlib
import signal
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from berg_ray.config import DEFAULT_SERVE_PORT, SERVE_APP_NAME, ServeArgs
from berg_ray.errors import BergRayError


def add_serve_command(subparsers: Any) -> None:
    """Add the ``serve`` subcommand to the ``berg-ray`` parser."""
    parser = subparsers.add_parser("serve", help="run the Ray Serve HTTP service",
                                   description="Deploy the model as a Ray Serve application and block until "
                                               "SIGINT/SIGTERM. Flags override the config file's args.")
    parser.add_argument("--berg-dir", required=True, help="BERG directory holding the release")
    parser.add_argument("--sessions", default=None, help="comma-separated scans (session-8_scan-5,...) or 'all' "
                                                         "(default: the config's sessions, else all)")
    parser.add_argument("--host", default=None, help="HTTP host (default: the config's, else 127.0.0.1)")
    parser.add_argument("--port", type=int, default=None, help=f"HTTP port (default: the config's, else "
                                                               f"{DEFAULT_SERVE_PORT})")
    parser.add_argument("--token-env", default=None, help="environment variable holding the bearer token "
                                                          "(default: the config's, else no authentication)")
    parser.add_argument("--config", default=None,
                        help="Serve config YAML, e.g. deployments/local-cpu.yaml (default: none: the built-in "
                             "defaults of berg_ray.config.ServeArgs, whatever the working directory)")
    parser.add_argument("--address", default=None, help="join this Ray cluster instead of starting a local one "
                                                        "(default: a new local cluster)")
    parser.add_argument("--verbose", action="store_true", help="also show Ray's own logs (default: in Ray's log "
                                                               "files)")
    parser.set_defaults(func=_serve_command)


def serve_args_from(config: dict[str, Any], berg_dir: str, sessions: str | None, token_env: str | None
                    ) -> ServeArgs:
    """ServeArgs from a Serve config dict (its first application's ``args``) overridden by command-line flags."""
    apps = config.get("applications") or [{}]
    merged = dict(apps[0].get("args") or {}, berg_dir=berg_dir)
    if sessions is not None:
        merged["sessions"] = "all" if sessions.strip() == "all" else [s for s in sessions.split(",") if s.strip()]
    if token_env is not None:
        merged["token_env"] = token_env
    return ServeArgs.model_validate(merged)


def read_config(path: str | None) -> dict[str, Any]:
    """The Serve config YAML as a dict; ``{}`` (built-in defaults) when no path is given, in any directory."""
    if path is None:
        return {}
    file = Path(path)
    if not file.is_file():
        raise BergRayError(f"config file {str(file)!r} does not exist; pass a Serve config YAML (see deployments/)")
    return yaml.safe_load(file.read_text()) or {}


@contextlib.contextmanager
def running_service(args: ServeArgs, host: str, port: int, address: str | None = None, verbose: bool = False
                    ) -> Iterator[str]:
    """Start Ray (or join ``address``) and Serve, deploy the app, yield its URL; shut everything down after.

    Ray's own logs reach the console only when ``verbose`` (berg_ray.ray_setup). A cluster started here is shut
    down whole, Serve with it, without ``serve.shutdown()``: that kills Serve's controller while the controller's
    shutdown task runs, and Ray prints the killed task on the console (Serve drops a client of an earlier Ray
    session by itself)."""
    import ray
    from ray import serve

    from berg_ray.ray_setup import init_ray
    from berg_ray.serve.app import build_app

    started_ray = init_ray(address, verbose)
    try:
        serve.start(http_options={"host": host, "port": port})
        serve.run(build_app(args), name=SERVE_APP_NAME, route_prefix="/")
        yield f"http://{host}:{port}"
    finally:
        if started_ray:
            ray.shutdown()  # ends Serve's actors with the cluster
        else:
            serve.shutdown()  # a joined cluster keeps running; remove our application and Serve from it


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free on ``host`` right now."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def _serve_command(ns: argparse.Namespace) -> int:
    config = read_config(ns.config)
    args = serve_args_from(config, ns.berg_dir, ns.sessions, ns.token_env)
    http = config.get("http_options") or {}
    host, port = ns.host or http.get("host", "127.0.0.1"), ns.port or http.get("port", DEFAULT_SERVE_PORT)
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    with running_service(args, host, port, ns.address, ns.verbose) as url:
        print(f"berg-ray service ready at {url} (scans: {args.sessions}); Ctrl-C or SIGTERM stops it", flush=True)
        while not stop.wait(0.5):  # a timed wait keeps the main thread responsive to signals
            pass
    print("berg-ray service stopped", flush=True)
    return 0
