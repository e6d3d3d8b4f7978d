"""Behaviour inputs of the model: validation (:mod:`.inputs`) and standardisation of recorded traces
(:mod:`.standardise`)."""

from berg_ray.behaviour.inputs import BEHAVIOUR_INPUTS, validate_behaviour, validate_behaviours
from berg_ray.behaviour.standardise import Behaviour, BehaviourStats, standardise

__all__ = ["BEHAVIOUR_INPUTS", "Behaviour", "BehaviourStats", "standardise", "validate_behaviour",
           "validate_behaviours"]
