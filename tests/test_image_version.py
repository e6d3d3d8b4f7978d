"""One Ray version everywhere: berg_ray.config.RAY_VERSION is the source of truth (fast: files only).

Ray refuses a driver whose Ray version differs from the cluster's, and nodes added later must run the head's Ray,
so every place that names a Ray version or the image must agree with it: pyproject's ``ray[serve,data]`` pin (the
client), cluster/Dockerfile's base image, each KubeRay manifest's ``rayVersion`` and every image it runs, the
cluster launcher's image, and the image names in the docs. ``version_mismatches`` lists each disagreement with
its file and value; a test runs it on a broken copy to show it catches them.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import yaml
from packaging.requirements import Requirement
from packaging.version import Version

from berg_ray.config import IMAGE_NAME, IMAGE_RAY_SUFFIX, RAY_BASE_IMAGE, RAY_IMAGE_CUDA, RAY_VERSION
from tests.test_cluster_configs import KUBERAY_SPECS, REPO

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: the test extra installs tomli
    import tomli as tomllib

REGISTRY = "YOUR-REGISTRY"
DOCS = ("README.md", "docs/cluster.md", "cluster/README.md", "cluster/Dockerfile")
_ARG = re.compile(r"^ARG (\w+)=(\S+)$", re.MULTILINE)
_FROM = re.compile(r"^FROM (\S+)", re.MULTILINE)
_DOC_IMAGE = re.compile(r"(?:rayproject/ray|berg-ray):[\w.-]*[\w]")


def berg_ray_image(root: Path) -> str:
    """``YOUR-REGISTRY/berg-ray:<berg_ray version>-ray<RAY_VERSION>``, the package version read from pyproject."""
    version = tomllib.loads((root / "pyproject.toml").read_text())["project"]["version"]
    return f"{REGISTRY}/{IMAGE_NAME}:{version}{IMAGE_RAY_SUFFIX}"


def pyproject_mismatches(root: Path) -> list[str]:
    """The client's Ray: pyproject must allow RAY_VERSION and no other patch or minor release."""
    dependencies = tomllib.loads((root / "pyproject.toml").read_text())["project"]["dependencies"]
    [ray] = [Requirement(d) for d in dependencies if Requirement(d).name == "ray"]
    pinned = Version(RAY_VERSION)
    others = [f"{pinned.major}.{pinned.minor}.{pinned.micro + 1}", f"{pinned.major}.{pinned.minor + 1}.0",
              f"{pinned.major}.{max(pinned.minor - 1, 0)}.{pinned.micro}"]
    problems = [] if ray.specifier.contains(RAY_VERSION) else [f"pyproject.toml: {ray} excludes Ray {RAY_VERSION}"]
    problems += [f"pyproject.toml: {ray} allows Ray {v}, the cluster runs {RAY_VERSION}" for v in others
                 if ray.specifier.contains(v)]
    return problems


def dockerfile_mismatches(root: Path) -> list[str]:
    """cluster/Dockerfile: ARG RAY_VERSION, the base image its FROM resolves to, the torch index's CUDA."""
    text = (root / "cluster" / "Dockerfile").read_text()
    args = dict(_ARG.findall(text))
    base = re.sub(r"\$\{(\w+)\}", lambda m: args.get(m.group(1), m.group(0)), _FROM.search(text).group(1))
    problems = []
    if args.get("RAY_VERSION") != RAY_VERSION:
        problems.append(f"cluster/Dockerfile: ARG RAY_VERSION={args.get('RAY_VERSION')} (expected {RAY_VERSION})")
    if base != RAY_BASE_IMAGE:
        problems.append(f"cluster/Dockerfile: FROM {base} (expected {RAY_BASE_IMAGE})")
    if not args.get("TORCH_INDEX_URL", "").endswith(f"/{RAY_IMAGE_CUDA}"):
        problems.append(f"cluster/Dockerfile: TORCH_INDEX_URL={args.get('TORCH_INDEX_URL')} is not the base "
                        f"image's CUDA ({RAY_IMAGE_CUDA})")
    return problems


def images(node, where: str = "") -> list[tuple[str, str]]:
    """Every ``image:`` value in a YAML tree, with its path (``spec.headGroupSpec...containers[0]``)."""
    if isinstance(node, dict):
        found = [(f"{where}.image".lstrip("."), node["image"])] if isinstance(node.get("image"), str) else []
        return found + [i for key, value in node.items() for i in images(value, f"{where}.{key}")]
    if isinstance(node, list):
        return [i for index, value in enumerate(node) for i in images(value, f"{where}[{index}]")]
    return []


def manifest_mismatches(root: Path) -> list[str]:
    """Each KubeRay manifest: rayVersion of its cluster spec, token auth on, every image the berg_ray image."""
    expected, problems = berg_ray_image(root), []
    for name, keys in sorted(KUBERAY_SPECS.items()):
        manifest = yaml.safe_load((root / "cluster" / name).read_text())
        spec = manifest
        for key in keys:
            spec = spec[key]
        where = f"cluster/{name}: {'.'.join(keys)}"
        if str(spec.get("rayVersion")) != RAY_VERSION:
            problems.append(f"{where}.rayVersion = {spec.get('rayVersion')!r} (expected {RAY_VERSION!r})")
        if spec.get("authOptions", {}).get("mode") != "token":
            problems.append(f"{where}.authOptions = {spec.get('authOptions')!r} (expected mode: token)")
        found = images(manifest)
        if not found:
            problems.append(f"cluster/{name}: no image")
        problems += [f"cluster/{name}: {path} = {image} (expected {expected})" for path, image in found
                     if image != expected]
    return problems


def launcher_mismatches(root: Path) -> list[str]:
    """cluster/aws-autoscaler.yaml: the docker image of every node (no per-type images) is the pinned Ray image."""
    config = yaml.safe_load((root / "cluster" / "aws-autoscaler.yaml").read_text())
    allowed = {RAY_BASE_IMAGE, berg_ray_image(root)}
    return [f"cluster/aws-autoscaler.yaml: {path} = {image} (expected {RAY_BASE_IMAGE} or {berg_ray_image(root)})"
            for path, image in images(config) if image not in allowed]


def doc_mismatches(root: Path) -> list[str]:
    """Image names written in the docs (``rayproject/ray:...``, ``berg-ray:...``) and no ``:latest`` in cluster/."""
    allowed = {RAY_BASE_IMAGE.split("/", 1)[1], berg_ray_image(root).split("/", 1)[1]}
    problems = []
    for name in DOCS:
        for line_number, line in enumerate((root / name).read_text().splitlines(), 1):
            problems += [f"{name}:{line_number}: {image} (expected one of {sorted(allowed)})"
                         for image in _DOC_IMAGE.findall(line) if image.split("/")[-1] not in allowed]
    for path in sorted((root / "cluster").iterdir()):
        if ":latest" in path.read_text():
            problems.append(f"cluster/{path.name}: names a :latest image")
    return problems


def version_mismatches(root: Path) -> list[str]:
    return (pyproject_mismatches(root) + dockerfile_mismatches(root) + manifest_mismatches(root)
            + launcher_mismatches(root) + doc_mismatches(root))


def test_one_ray_version_everywhere():
    assert version_mismatches(REPO) == []


def test_the_client_installs_the_pinned_ray():
    from importlib.metadata import version

    assert version("ray") == RAY_VERSION, "this environment's Ray is not the pinned one: re-run scripts/bootstrap.sh"


def _copy(tmp_path: Path) -> Path:
    (tmp_path / "cluster").mkdir()
    (tmp_path / "docs").mkdir()
    for name in ("pyproject.toml", "README.md", "docs/cluster.md"):
        shutil.copy(REPO / name, tmp_path / name)
    for path in (REPO / "cluster").iterdir():
        shutil.copy(path, tmp_path / "cluster" / path.name)
    return tmp_path


def _replace(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{path.name} no longer contains {old!r}; update this test"
    path.write_text(text.replace(old, new, 1))


def test_version_check_reports_each_mismatch_with_file_and_value(tmp_path):
    root = _copy(tmp_path)
    assert version_mismatches(root) == []
    _replace(root / "pyproject.toml", f'"ray[serve,data]=={RAY_VERSION}"', '"ray[serve,data]>=2.40"')
    _replace(root / "cluster" / "Dockerfile", f"ARG RAY_VERSION={RAY_VERSION}", "ARG RAY_VERSION=2.59.0")
    _replace(root / "cluster" / "kuberay-rayjob.yaml", f'rayVersion: "{RAY_VERSION}"', 'rayVersion: "2.59.0"')
    _replace(root / "cluster" / "kuberay-rayservice.yaml", berg_ray_image(REPO), f"{REGISTRY}/berg-ray:latest")
    _replace(root / "cluster" / "aws-autoscaler.yaml", RAY_BASE_IMAGE, "rayproject/ray:2.59.0-py311-gpu")
    _replace(root / "cluster" / "kuberay-raycluster.yaml", "authOptions: {mode: token}", "authOptions: {}")
    problems = "\n".join(version_mismatches(root))
    for expected in ["pyproject.toml: ray[data,serve]>=2.40 allows Ray 2.61.0",
                     "cluster/Dockerfile: ARG RAY_VERSION=2.59.0", "cluster/Dockerfile: FROM rayproject/ray:2.59.0-",
                     "cluster/kuberay-rayjob.yaml: spec.rayClusterSpec.rayVersion = '2.59.0'",
                     "cluster/kuberay-rayservice.yaml: spec.rayClusterConfig.headGroupSpec.template.spec."
                     "initContainers[0].image = YOUR-REGISTRY/berg-ray:latest",
                     "cluster/kuberay-rayservice.yaml: names a :latest image",
                     "cluster/aws-autoscaler.yaml: docker.image = rayproject/ray:2.59.0-py311-gpu",
                     "cluster/kuberay-raycluster.yaml: spec.authOptions = {}"]:
        assert expected in problems, f"not reported: {expected}\n{problems}"


def test_doc_check_reports_a_stale_image_name(tmp_path):
    root = _copy(tmp_path)
    _replace(root / "cluster" / "README.md", "## Walkthrough", "Image: `berg-ray:0.0.9-ray2.59.0`.\n\n## Walkthrough")
    assert any("cluster/README.md" in p and "berg-ray:0.0.9-ray2.59.0" in p for p in doc_mismatches(root))
