"""In-silico experiments (berg_ray.stimuli, berg_ray.analysis, berg_ray.experiments: `berg-ray experiment`)."""

# Degrees -> monitor pixels: the MICrONS monitor, 55.2 x 31.0 cm at 15 cm from the eye, as 256 x 144 pixels (width /
# distance 3.68; the model's own monitor plane, spec §3.2.3, has 4: the same wide-field geometry).
MONITOR_WIDTH_CM, MONITOR_HEIGHT_CM = 55.2, 31.0
MONITOR_DISTANCE_CM = 15.0
# Stimulus defaults (uint8 pixel values; luminance is the pixel value, the model's input).
STIMULUS_MEAN_LUMINANCE = 127.5  # mid grey
STIMULUS_CONTRAST = 1.0  # Michelson contrast of gratings and Gabors
GRATING_SPATIAL_FREQUENCY_CPD = 0.04  # cycles per degree (mouse V1 prefers about 0.04)
GRATING_TEMPORAL_FREQUENCY_HZ = 2.0  # cycles per second
DOT_SIGMA_DEG = 4.0  # Gaussian dot standard deviation
NOISE_SPEED_DEG_S = 20.0  # directional pink noise drift speed
NOISE_ORIENTATION_BANDWIDTH_DEG = 15.0  # Gaussian sd of the noise's orientation filter
NOISE_RMS_CONTRAST = 0.25  # RMS contrast (std / mean) of the noise before clipping
RDK_DENSITY_PER_DEG2 = 0.01  # dots per square degree
RDK_DOT_DIAMETER_DEG = 4.0
RDK_SPEED_DEG_S = 60.0
TRIAL_BLANK_FRAMES = 15  # grey frames before and after a stimulus in a trial (0.5 s at 30 Hz)
EXPERIMENT_DIRECTIONS = 16  # drifting-grating directions, uniformly spaced over 360 deg
EXPERIMENT_REPEATS = 2  # repeats per direction, each with another spatial phase (the model is deterministic)
EXPERIMENT_TRIAL_FRAMES = 60  # stimulus frames per trial (2 s at 30 Hz), averaged into one response
EXPERIMENT_BURN_IN_FRAMES = 30  # grey frames before every stimulus, dropped from the mean (model start-up)
EXPERIMENT_RF_GRID = (6, 10)  # dot positions (rows, cols) of the RF mapping grid
EXPERIMENT_RF_DOT_FRAMES = 10  # frames each dot is shown
EXPERIMENT_DOMAIN_FRAMES = 60  # frames of each out-of-distribution domain's stimulus
# Prediction accuracy (berg_ray.analysis.accuracy, `berg-ray evaluate`): frames dropped from the start of every video
# before correlating, as in the reference's evaluation (cajal/fnn demos/6 - evaluate_digital_twin.ipynb).
ACCURACY_BURN_IN_FRAMES = 10
# Structure-function properties (`berg-ray experiment properties`): the generated stimulus set of the in-silico
# signal correlations (noise, gratings, Gabors, dot kinematograms in turn; 12 x 2 s = 24 s of video per scan) and
# the most unit pairs a run computes unless raised (200,000 pairs: ~633 units; each pair is one Parquet row).
PROPERTIES_CLIPS = 12
PROPERTIES_CLIP_FRAMES = 60
PROPERTIES_MAX_PAIRS = 200_000
