"""In-silico experiments through the sweep machinery: stimulus sets -> ``berg_ray.sweep.run`` -> analysis tables.

``berg-ray experiment tuning|rf`` (cli.py) runs them; stimulus_sets.py builds the stimuli, responses.py runs the
sweep and reads its Parquet back, tuning.py and receptive_fields.py analyse and write the per-unit tables.
"""
