"""berg_ray: the Wang et al. (Nature 2025) mouse visual cortex foundation model at cluster scale.

Public surface: ``BERG`` (BERG-compatible facade), ``load_model`` (release -> EncodingModel), ``EncodingModel``.
"""

from berg_ray.berg_api import BERG
from berg_ray.checkpoint.release import load_model
from berg_ray.model.network import EncodingModel

__all__ = ["BERG", "EncodingModel", "load_model"]
