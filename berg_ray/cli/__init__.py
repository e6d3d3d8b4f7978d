"""The ``berg-ray`` command line: ``main`` (flags -> validated arguments -> the package's functions), the options
several subcommands share (``options``), the argparse machinery (``parser``) and the input files of
``berg-ray encode`` (``encode_input``). Each area's subcommand lives with its area (``berg_ray.serve.cli``,
``berg_ray.sweep.cli``, ``berg_ray.experiments.cli``, ``berg_ray.download.cli``).

``python -m berg_ray.cli`` is the same entry point as ``berg-ray``.
"""

from berg_ray.cli.main import build_parser, main

__all__ = ["build_parser", "main"]
