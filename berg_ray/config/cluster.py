"""The Ray version berg_ray runs on, and the container image built on it (cluster/Dockerfile).

``RAY_VERSION`` is the one source of truth: Ray refuses a driver whose Ray version differs from the cluster's, so
the client's ``pip install berg_ray`` (pyproject's ``ray[serve,data]`` pin), the image's base, every KubeRay
manifest's ``rayVersion`` and image tag, and the cluster launcher's image must all name it.
tests/test_image_version.py checks that they do.
"""

RAY_VERSION = "2.60.0"
# Official Ray image variant: Python 3.11 (as the dev machines and CI) on an NVIDIA CUDA 12.8 base. An explicit
# -cuXXX tag, not -gpu, whose CUDA version is whatever Ray's release chose.
RAY_IMAGE_PYTHON, RAY_IMAGE_CUDA = "py311", "cu128"
RAY_BASE_IMAGE = f"rayproject/ray:{RAY_VERSION}-{RAY_IMAGE_PYTHON}-{RAY_IMAGE_CUDA}"
# berg_ray's own image: YOUR-REGISTRY/berg-ray:<berg_ray version>-ray<RAY_VERSION>, e.g. 0.1.0-ray2.60.0.
IMAGE_NAME = "berg-ray"
IMAGE_RAY_SUFFIX = f"-ray{RAY_VERSION}"
# KubeRay: Ray's token auth through spec.authOptions needs KubeRay >= 1.5.1 and rayVersion >= 2.52.0; the
# manifests are validated against the CRDs of this release (tests/fixtures/kuberay-crds/README.md).
KUBERAY_VERSION = "1.7.0"
