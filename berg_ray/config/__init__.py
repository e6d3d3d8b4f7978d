"""Every constant and default of berg_ray, with one import point: ``from berg_ray.config import NAME``.

Split by area: ``model`` (network geometry, scans, precision), ``storage`` (S3, video decoding, download),
``serve`` (the Serve application's options), ``sweep`` (sweep options and sizing constants), ``experiments``
(in-silico stimulus and experiment defaults), ``cluster`` (the pinned Ray version and the container image).
"""

from berg_ray.config.cluster import *  # noqa: F401,F403
from berg_ray.config.experiments import *  # noqa: F401,F403
from berg_ray.config.mei import *  # noqa: F401,F403
from berg_ray.config.model import *  # noqa: F401,F403
from berg_ray.config.serve import *  # noqa: F401,F403
from berg_ray.config.storage import *  # noqa: F401,F403
from berg_ray.config.sweep import *  # noqa: F401,F403
