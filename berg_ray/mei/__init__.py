"""Most exciting inputs (MEIs): per unit, the video that drives it most, optimised through the model's gradients.

Follows the reference's own MEI machinery (cajal/fnn, MIT: ``fnn/train/objectives.py`` ``Excitation``,
``fnn/model/stimuli.py`` ``VisualNlm`` / ``StaticVisualNlm``, ``fnn/model/utils.py`` ``Gaussian3d``,
``fnn/train/optimizers.py`` ``SgdClip``, ``fnn/train/schedulers.py`` ``CosineLr``); written anew here:

* objective (objective.py): maximise the unit's mean log-rate over the frames after the burn-in (the
  zero-temperature limit of the reference's ``rate^-T``), minus ``penalty`` x the blur penalty;
* stimulus (stimulus.py): a raw image normalised to unit RMS, times a learned gain plus a learned offset, bounded
  by a sigmoid into [0, 255]; static (one image for all frames, gradient averaged over frames) or dynamic;
* penalty (penalty.py): the energy a Gaussian blur removes, per frame (spatial blur; temporal too when dynamic);
* optimizer (optimizer.py, schedule.py): SGD with adaptive gradient clipping, per unit, on a cosine schedule.

Defaults (berg_ray/config/mei.py) and why:

* 30 frames with 10 of burn-in: the model's response settles within ~10 frames of a change (the reference
  drops 10 frames when scoring); 20 frames (0.67 s) of objective average over its slower dynamics.
* 200 steps, ``lr`` 1e6, ``clip`` 1e-7: the adaptive clip bounds every step to ``lr x clip`` = 10 % of a
  parameter's norm, and ``lr`` is huge so that this bound, not the gradient's scale (which differs between units
  and weights by orders of magnitude; ~1e-5 per pixel for the mean log-rate), sets the step: normalised-gradient
  ascent whose step the cosine schedule anneals from 10 % to ~0 (5 % on average). Over 200 steps the image can
  turn many times over and the gain can grow far beyond the ~30-fold (0.1 -> ~3) that saturates the sigmoid.
* ``eps`` 1e-8: the floor of the clip (``lr x eps`` = 0.01 per element) lets the offset leave 0.
* ``penalty`` 5e-5 with a 2-pixel spatial blur: white noise of unit RMS loses ~0.7 of its energy per pixel to
  the blur, ~26,000 per 144 x 256 frame, a penalty of ~1.3 log units (a factor ~3.7 in rate), while structure
  coarser than ~6 pixels (what the core's stride-2 stem on the 128 x 192 retina resolves) costs next to nothing:
  the MEI keeps what the model sees and drops texture it cannot.
* temporal blur of 1 frame (dynamic MEIs): frame-to-frame flicker is penalised like pixel noise.
* ``init_gain`` 0.1 (the reference's): the start is mid grey with a faint (sd ~6 levels) seeded texture.
* 8 units per batch: one video each; memory grows with units x chunk frames (activation checkpointing), and the
  GPU is well used from a few videos on.

``optimise_meis`` (optimise.py) runs B units of one scan together; berg_ray.experiments.mei spreads batches over
Ray actors, writes each MEI as uint8 and validates it through the ordinary inference path.
"""

from berg_ray.mei.optimise import MeiResult, optimise, optimise_meis
from berg_ray.mei.settings import MeiSettings

__all__ = ["MeiResult", "MeiSettings", "optimise", "optimise_meis"]
