"""Most exciting inputs (berg_ray.mei, `berg-ray experiment mei`): defaults of the optimisation and its validation.

Why each value is what it is: berg_ray/mei/__init__.py (module docstring) and docs/mei.md.
"""

MEI_FRAMES = 30  # frames of every MEI video (1 s at 30 Hz), burn-in included
MEI_BURN_IN_FRAMES = 10  # leading frames left out of the objective (the model's start-up transient)
MEI_STEPS = 200  # gradient steps per MEI
MEI_LR = 1e6  # SGD learning rate; huge on purpose: the adaptive clip (lr x clip) sets every step's size
MEI_CLIP = 1e-7  # adaptive clip: a step changes a parameter by at most lr x clip = 10 % of its norm
MEI_CLIP_EPS = 1e-8  # clip floor per element (lr x eps = 0.01): lets a parameter at 0 (the offset) move
MEI_PENALTY = 5e-5  # weight of the blur penalty (per frame) against the mean log-rate
MEI_SPATIAL_STD_PX = 2.0  # Gaussian blur of the penalty, monitor pixels (finer detail barely reaches the core)
MEI_TEMPORAL_STD_FRAMES = 1.0  # temporal blur of a dynamic MEI's penalty, frames
MEI_BLUR_CUTOFF = 4.0  # blur kernels reach this many standard deviations
MEI_INIT_GAIN = 0.1  # starting contrast gain: 255 sigmoid(0.1 z + 0) is mid grey, sd ~6 levels
MEI_UNITS_PER_BATCH = 8  # units optimised together (one video each) per forward/backward pass
MEI_SEED = 0
MEI_VALIDATION_DIRECTIONS = 16  # directions of the drifting-grating and directional-noise validation sets
MEI_VALIDATION_REPEATS = 2  # grating phases / noise seeds per direction
