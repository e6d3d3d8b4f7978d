"""Ray Data sweeps: stream a corpus of videos (local or s3://) through the model, write Parquet (local or s3://).

``berg_ray.sweep.run(berg_dir=..., input=..., output=..., sessions=[...])`` and ``berg-ray sweep`` take the same
options (:class:`berg_ray.config.SweepArgs`). Output layout and exactly-once design: layout.py and pipeline.py.
"""

from berg_ray.config import SweepArgs
from berg_ray.sweep.runner import SweepResult, run

__all__ = ["SweepArgs", "SweepResult", "run"]
