"""Behaviour inputs of the model: validation (:mod:`.inputs`) and standardisation of recorded traces."""

from berg_ray.behaviour.inputs import BEHAVIOUR_INPUTS, validate_behaviour, validate_behaviours

__all__ = ["BEHAVIOUR_INPUTS", "validate_behaviour", "validate_behaviours"]
