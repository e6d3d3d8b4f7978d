"""Starting or joining Ray the way every berg_ray command does: what a person reads stays berg_ray's own output.

Ray's INFO and WARNING lines (cluster start-up, Serve controller and replica logs, Ray Data's execution plan)
go to Ray's log files (``/tmp/ray/session_latest/logs``) unless ``verbose`` is set; errors still reach the
console, and Ray Data's progress bars are controlled separately (``show_progress`` of a sweep).
"""

from __future__ import annotations

import logging
import os
import socket
import sys

from berg_ray.config import ECHO_CHARS
from berg_ray.errors import BergRayError
from berg_ray.validation.numbers import ascii_int

# Loggers of the Ray libraries that print to the driver's console; quiet runs raise their console handlers to ERROR.
RAY_CONSOLE_LOGGERS = ("ray", "ray.serve", "ray.data", "ray.train", "ray.tune")


def quiet_ray_loggers(verbose: bool) -> None:
    """Unless ``verbose``, let only errors of Ray's loggers reach the console of this process.

    Only the console handlers (streams to stdout/stderr) are raised to ERROR; logger levels and file handlers stay
    as Ray configured them, so Ray's log files (e.g. Ray Data's ``ray-data.log``) keep every record.
    """
    if verbose:
        return
    for name in RAY_CONSOLE_LOGGERS:
        for handler in logging.getLogger(name).handlers:
            if _is_console(handler):
                handler.setLevel(max(handler.level, logging.ERROR))


def _is_console(handler: logging.Handler) -> bool:
    return (isinstance(handler, logging.StreamHandler) and not isinstance(handler, logging.FileHandler)
            and getattr(handler, "stream", None) in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__))


def metrics_port_from(text: str | None) -> int | None:
    """The port of a ``--metrics-export-port`` flag (None: not given); BergRayError unless a number in 1..65535."""
    if text is None:
        return None
    port = ascii_int(text)
    if port is None or not 0 < port < 65536:
        raise BergRayError(f"--metrics-export-port {text[:ECHO_CHARS]!r} is not a port number in 1..65535 "
                           "(ASCII digits)")
    return port


def check_metrics_export_port(port: int | None, address: str | None) -> None:
    """Refuse a metrics port that cannot be the one of a local cluster started by this command (checked before
    anything starts).

    The port is where this node's Ray metrics agent exports every metric, berg_ray's included, in Prometheus
    format. Only a cluster this command starts takes it: a joined cluster (``address`` or ``RAY_ADDRESS``) exports
    on the ports its nodes were started with (``ray start --metrics-export-port``), so the flag is refused there
    rather than ignored.
    """
    if port is None:
        return
    if not 0 < port < 65536:
        raise BergRayError(f"metrics export port {port} is not a port number in 1..65535")
    if address or os.environ.get("RAY_ADDRESS"):
        raise BergRayError("--metrics-export-port sets the metrics port of a local cluster started by this command; "
                           "a joined cluster (--address / RAY_ADDRESS) exports metrics on its own nodes' ports "
                           "(ray start --metrics-export-port): scrape those and drop the flag")
    if "ray" in sys.modules and sys.modules["ray"].is_initialized():
        raise BergRayError("a metrics export port applies to a local cluster that berg_ray starts, but Ray is "
                           "already initialised in this process: its metrics port is the one it was started with")
    with socket.socket() as sock:  # Ray's agent binds all interfaces (127.0.0.1 on a localhost-only node)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("", port))
        except OSError as exc:
            raise BergRayError(f"cannot export metrics on port {port} ({exc.strerror}); the port is in use: pick "
                               "another --metrics-export-port") from None


def init_ray(address: str | None = None, verbose: bool = False, metrics_export_port: int | None = None,
             **options) -> bool:
    """Start a local Ray cluster or join ``address`` unless Ray is already initialized in this process.

    Args:
        address: Ray cluster address; None: ``RAY_ADDRESS`` or a new local cluster.
        verbose: show Ray's own logs and the workers' output on the console.
        metrics_export_port: the port (1..65535) of the local cluster's Prometheus metrics endpoint
            (``http://127.0.0.1:PORT/metrics``); None: a port Ray picks. Refused when joining a cluster
            (:func:`check_metrics_export_port`).
        **options: further ``ray.init`` keyword arguments.

    Returns:
        True if this call initialized Ray (the caller then owns the ``ray.shutdown``).
    """
    import ray

    quiet_ray_loggers(verbose)
    if ray.is_initialized():
        return False
    if metrics_export_port is not None:
        check_metrics_export_port(metrics_export_port, address)
        options["_metrics_export_port"] = metrics_export_port
    options.setdefault("include_dashboard", False)
    ray.init(address=address, log_to_driver=verbose, logging_level=logging.INFO if verbose else logging.ERROR,
             **options)
    quiet_ray_loggers(verbose)  # ray.init configures the "ray" logger itself
    return True
