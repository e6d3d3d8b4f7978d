"""``berg-ray serve``: start (or join) a Ray cluster, deploy the service, print its URL, block until a signal."""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from berg_ray.config import DEFAULT_SERVE_PORT, SERVE_APP_NAME, ServeArgs
from berg_ray.errors import BergRayError

DEFAULT_CONFIG = "deployments/local-cpu.yaml"


def add_serve_command(subparsers: Any) -> None:
    """Add the ``serve`` subcommand to the ``berg-ray`` parser."""
    parser = subparsers.add_parser("serve", help="run the Ray Serve HTTP service",
                                   description="Deploy the model as a Ray Serve application and block until "
                                               "SIGINT/SIGTERM. Flags override the config file's args.")
    parser.add_argument("--berg-dir", required=True, help="BERG directory of the release, or s3://bucket/prefix")
    parser.add_argument("--sessions", default=None, help="comma-separated scans (session-8_scan-5,...) or 'all'")
    parser.add_argument("--host", default=None, help="HTTP host (default: the config's, else 127.0.0.1)")
    parser.add_argument("--port", type=int, default=None, help=f"HTTP port (default: the config's, else "
                                                               f"{DEFAULT_SERVE_PORT})")
    parser.add_argument("--token-env", default=None, help="environment variable holding the bearer token")
    parser.add_argument("--config", default=None, help=f"Serve config YAML (default: {DEFAULT_CONFIG} if present)")
    parser.add_argument("--address", default=None, help="join this Ray cluster instead of starting a local one")
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
    """The Serve config YAML as a dict ({} when no path is given and the default file is absent)."""
    if path is None and not Path(DEFAULT_CONFIG).is_file():
        return {}
    file = Path(path or DEFAULT_CONFIG)
    if not file.is_file():
        raise BergRayError(f"config file {str(file)!r} does not exist; pass a Serve config YAML (see deployments/)")
    return yaml.safe_load(file.read_text()) or {}


@contextlib.contextmanager
def running_service(args: ServeArgs, host: str, port: int, address: str | None = None) -> Iterator[str]:
    """Start Ray (or join ``address``) and Serve, deploy the app, yield its URL; shut everything down after."""
    import ray
    from ray import serve

    from berg_ray.serve.app import build_app

    started_ray = not ray.is_initialized()
    if started_ray:
        ray.init(address=address, include_dashboard=False)
    try:
        serve.start(http_options={"host": host, "port": port})
        serve.run(build_app(args), name=SERVE_APP_NAME, route_prefix="/")
        yield f"http://{host}:{port}"
    finally:
        serve.shutdown()
        if started_ray:
            ray.shutdown()


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free on ``host`` right now."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def driver_environment() -> str:
    """``RAY_ADDRESS=host:port`` of the running Ray cluster, plus ``RAY_AUTH_MODE=token`` when it uses token auth.

    An explicit address never switches token authentication on by itself in Ray, so a driver of a token cluster
    (Ray's default for a local ``ray.init()``) needs both variables; the token is read from ``~/.ray/auth_token``.
    """
    import ray

    variables = [f"RAY_ADDRESS={ray.get_runtime_context().gcs_address}"]
    if os.environ.get("RAY_AUTH_MODE", "").lower() == "token":
        variables.append("RAY_AUTH_MODE=token")
    return " ".join(variables)


def _serve_command(ns: argparse.Namespace) -> int:
    config = read_config(ns.config)
    args = serve_args_from(config, ns.berg_dir, ns.sessions, ns.token_env)
    from berg_ray.serve.app import resolve_scan_ids

    scans = resolve_scan_ids(args)  # a missing or incomplete release fails here, before Ray starts
    http = config.get("http_options") or {}
    host, port = ns.host or http.get("host", "127.0.0.1"), ns.port or http.get("port", DEFAULT_SERVE_PORT)
    stop = threading.Event()
    with running_service(args, host, port, ns.address) as url:
        for signum in (signal.SIGINT, signal.SIGTERM):  # after ray.init, whose own SIGTERM handler aborts
            signal.signal(signum, lambda *_: stop.set())
        print(f"berg-ray service ready at {url} (scans: {', '.join(scans)}); Ctrl-C or SIGTERM stops it", flush=True)
        print(f"Ray drivers join its cluster with: export {driver_environment()}", flush=True)
        while not stop.wait(0.5):  # a timed wait keeps the main thread responsive to signals
            pass
    print("berg-ray service stopped", flush=True)
    return 0
