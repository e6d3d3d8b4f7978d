"""Starting or joining Ray the way every berg_ray command does: what a person reads stays berg_ray's own output.

Ray's INFO and WARNING lines (cluster start-up, Serve controller and replica logs, Ray Data's execution plan)
go to Ray's log files (``/tmp/ray/session_latest/logs``) unless ``verbose`` is set; errors still reach the
console, and Ray Data's progress bars are controlled separately (``show_progress`` of a sweep).
"""

from __future__ import annotations

import logging
import sys

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


def init_ray(address: str | None = None, verbose: bool = False, **options) -> bool:
    """Start a local Ray cluster or join ``address`` unless Ray is already initialized in this process.

    Args:
        address: Ray cluster address; None: ``RAY_ADDRESS`` or a new local cluster.
        verbose: show Ray's own logs and the workers' output on the console.
        **options: further ``ray.init`` keyword arguments.

    Returns:
        True if this call initialized Ray (the caller then owns the ``ray.shutdown``).
    """
    import ray

    quiet_ray_loggers(verbose)
    if ray.is_initialized():
        return False
    options.setdefault("include_dashboard", False)
    ray.init(address=address, log_to_driver=verbose, logging_level=logging.INFO if verbose else logging.ERROR,
             **options)
    quiet_ray_loggers(verbose)  # ray.init configures the "ray" logger itself
    return True
