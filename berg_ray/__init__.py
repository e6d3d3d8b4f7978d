"""berg_ray: the Wang et al. (Nature 2025) mouse visual cortex foundation model at cluster scale.

Public surface: ``BERG`` (BERG-compatible facade), ``load_model`` (release -> EncodingModel), ``EncodingModel``.
Importing berg_ray before torch sets ``OMP_WAIT_POLICY=passive`` unless it is set (see ``berg_ray.runtime.threads``); a
process that loads the model (``load_model``) also lets glibc keep freed heap memory for reuse.
"""

from berg_ray.runtime.threads import default_openmp_env

default_openmp_env()  # before torch loads the OpenMP runtime, which reads the variables once

from berg_ray.berg_api import BERG  # noqa: E402
from berg_ray.checkpoint.release import load_model  # noqa: E402
from berg_ray.model.network import EncodingModel  # noqa: E402
from berg_ray import _moved  # noqa: E402

_moved.install()  # old module paths (berg_ray.threads, ...) still import, with a DeprecationWarning

__all__ = ["BERG", "EncodingModel", "load_model"]
