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
from pydantic import ValidationError

from berg_ray.cli.options import (add_cluster_options, add_device_options, add_release_options, add_sessions_option,
                                  add_verbosity_options)
from berg_ray.config import DEFAULT_SERVE_PORT, SERVE_APP_NAME, ServeArgs
from berg_ray.errors import BergRayError, validation_summary
from berg_ray.validation.numbers import int_flag
from berg_ray.cluster.session import check_metrics_export_port, metrics_port_from

PROXY_LOCATIONS = ("HeadOnly", "EveryNode", "Disabled")  # Serve's proxy_location values


def add_serve_command(subparsers: Any) -> None:
    """Add the ``serve`` subcommand to the ``berg-ray`` parser."""
    parser = subparsers.add_parser("serve", help="run the Ray Serve HTTP service",
                                   description="Deploy the model as a Ray Serve application and block until "
                                               "SIGINT/SIGTERM. Flags override the config file's args.")
    add_release_options(parser)
    add_sessions_option(parser, default=None, default_text="the config's sessions, else all")
    parser.add_argument("--host", default=None, help="HTTP host (default: the config's, else 127.0.0.1)")
    parser.add_argument("--port", type=int_flag, default=None, help=f"HTTP port (default: the config's, else "
                                                               f"{DEFAULT_SERVE_PORT})")
    parser.add_argument("--token-env", default=None, help="environment variable holding the bearer token "
                                                          "(default: the config's, else no authentication)")
    parser.add_argument("--config", default=None,
                        help="Serve config YAML, e.g. deployments/local-cpu.yaml (default: none: the built-in "
                             "defaults of berg_ray.config.ServeArgs, whatever the working directory)")
    add_device_options(parser, ray=True, from_config=True)
    add_cluster_options(parser, encoder_pool=False)
    add_verbosity_options(parser, quiet=False)
    parser.set_defaults(func=_serve_command)


def serve_args_from(config: dict[str, Any], berg_dir: str, sessions: str | None, token_env: str | None,
                    precision: str | None = None, device: str | None = None, s3_endpoint_url: str | None = None
                    ) -> ServeArgs:
    """ServeArgs from a Serve config dict (its first application's ``args``) overridden by command-line flags."""
    apps = config.get("applications") or [{}]
    if not isinstance(apps, list) or not isinstance(apps[0], dict) or not isinstance(apps[0].get("args") or {}, dict):
        raise BergRayError("config: 'applications' must be a list whose first entry has an 'args' mapping "
                           "(see deployments/local-cpu.yaml)")
    merged = dict(apps[0].get("args") or {}, berg_dir=berg_dir)
    if sessions is not None:
        merged["sessions"] = "all" if sessions.strip() == "all" else [s for s in sessions.split(",") if s.strip()]
    if token_env is not None:
        merged["token_env"] = token_env
    if device is not None:
        merged["device"] = device
    if s3_endpoint_url is not None:
        merged["s3_endpoint_url"] = s3_endpoint_url
    if precision is not None:
        merged["core"] = dict(merged.get("core") or {}, precision=precision)
    try:
        return ServeArgs.model_validate(merged)
    except ValidationError as exc:
        raise BergRayError(f"invalid service settings: {validation_summary(exc)} (the keys are the fields of "
                           "berg_ray.config.ServeArgs; --sessions takes session-X_scan-Y names or 'all')") from None


def read_config(path: str | None) -> dict[str, Any]:
    """The Serve config YAML as a dict; ``{}`` (built-in defaults) when no path is given, in any directory."""
    if path is None:
        return {}
    file = Path(path)
    if not file.is_file():
        raise BergRayError(f"config file {str(file)!r} does not exist; pass a Serve config YAML (see deployments/)")
    try:
        config = yaml.safe_load(file.read_text(encoding="utf-8")) or {}
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        where = getattr(exc, "problem_mark", None)
        line = f" at line {where.line + 1}" if where is not None else ""
        raise BergRayError(f"config file {str(file)!r} is not valid YAML{line} "
                           f"({getattr(exc, 'problem', None) or type(exc).__name__}); fix it or pass another "
                           "with --config") from None
    if not isinstance(config, dict):
        raise BergRayError(f"config file {str(file)!r} must hold a mapping (a Serve config), not "
                           f"{type(config).__name__}")
    return config


def check_port_free(host: str, port: int) -> None:
    """Raise BergRayError unless ``host:port`` can be bound now (checked before anything is started)."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the HTTP server binds it
        try:
            sock.bind((host, port))
        except OSError as exc:
            raise BergRayError(f"cannot listen on {host}:{port} ({exc.strerror}); the port is in use or the host "
                               "is not an address of this machine: pick another with --port / --host") from None


@contextlib.contextmanager
def running_service(args: ServeArgs, host: str, port: int, address: str | None = None, verbose: bool = False,
                    proxy_location: str | None = None, metrics_export_port: int | None = None) -> Iterator[str]:
    """Start Ray (or join ``address``) and Serve, deploy the app, yield its URL; shut everything down after.

    Ray's own logs reach the console only when ``verbose`` (berg_ray.cluster.session). A cluster started here is shut
    down whole, Serve with it, without ``serve.shutdown()`` (that kills Serve's controller while the controller's
    shutdown task runs, and Ray prints the killed task on the console), and its processes are reaped even if this
    process is killed (berg_ray.cluster.local); on a joined cluster only our application and Serve are removed.
    ``proxy_location``: where Serve runs HTTP proxies (HeadOnly, EveryNode; None: Serve's default).
    ``metrics_export_port``: the Prometheus port of a local cluster (berg_ray.cluster.session.init_ray).
    The bearer token (``args.token_env``) is read and removed from this process's environment before Ray starts,
    so no Ray process of a local cluster inherits it; the ingress replicas receive only its SHA-256 digest."""
    from ray import serve

    from berg_ray.cluster.local import ray_session
    from berg_ray.serve.app import build_app_with_digest, core_gpus, take_token_digest

    digest = take_token_digest(args.token_env)  # before Ray starts: its processes inherit this environment
    with ray_session(address, verbose=verbose, metrics_export_port=metrics_export_port) as owns:
        try:
            gpus, reason = core_gpus(args)  # decided once, here: the printed reason is what gets deployed
            args = args.model_copy(update={"core": args.core.model_copy(update={"num_gpus": gpus})})
            print(f"core replicas on {'GPU' if gpus else 'CPU'}: {reason}"
                  + ("; the service is ready once a GPU node runs a core replica" if gpus else ""), flush=True)
            serve.start(proxy_location=proxy_location, http_options={"host": host, "port": port})
            serve.run(build_app_with_digest(args, digest), name=SERVE_APP_NAME, route_prefix="/")
            yield f"http://{host}:{port}"
        finally:
            if not owns:
                serve.shutdown()  # a joined cluster keeps running


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
    args = serve_args_from(config, ns.berg_dir, ns.sessions, ns.token_env, ns.precision, ns.device,
                           ns.s3_endpoint_url)
    from berg_ray.serve.app import resolve_scan_ids

    scans = resolve_scan_ids(args)  # a missing or incomplete release fails here, before Ray starts
    http = config.get("http_options") or {}
    if not isinstance(http, dict):
        raise BergRayError("config: http_options must be a mapping with host and port")
    host, port = ns.host or http.get("host", "127.0.0.1"), ns.port or http.get("port", DEFAULT_SERVE_PORT)
    if not isinstance(host, str) or not isinstance(port, int) or not 0 < port < 65536:
        raise BergRayError(f"http_options: host {host!r} must be a string and port {port!r} a number in 1..65535")
    proxies = config.get("proxy_location")
    if proxies not in (None, *PROXY_LOCATIONS):
        raise BergRayError(f"config: proxy_location {proxies!r} must be one of {', '.join(PROXY_LOCATIONS)}")
    check_port_free(host, port)
    metrics_port = metrics_port_from(ns.metrics_export_port)
    check_metrics_export_port(metrics_port, ns.address)
    stop = threading.Event()
    with running_service(args, host, port, ns.address, ns.verbose, proxies, metrics_port) as url:
        for signum in (signal.SIGINT, signal.SIGTERM):  # after ray.init, whose own SIGTERM handler aborts
            signal.signal(signum, lambda *_: stop.set())
        print(f"berg-ray service ready at {url} (scans: {', '.join(scans)}); Ctrl-C or SIGTERM stops it", flush=True)
        print(f"Ray drivers join its cluster with: export {driver_environment()}", flush=True)
        if metrics_port is not None:
            print(f"Prometheus metrics (berg_ray_* as ray_berg_ray_*): http://127.0.0.1:{metrics_port}/metrics",
                  flush=True)
        while not stop.wait(0.5):  # a timed wait keeps the main thread responsive to signals
            pass
    print("berg-ray service stopped", flush=True)
    return 0
