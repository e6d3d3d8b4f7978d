"""``python -m berg_ray.cli``: the ``berg-ray`` command."""

import sys

from berg_ray.cli.main import main

sys.exit(main())
