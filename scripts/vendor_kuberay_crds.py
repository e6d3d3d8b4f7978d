"""Write tests/fixtures/kuberay-crds/*.json: the v1 OpenAPI schemas of KubeRay's CRDs at one release tag.

Usage: python scripts/vendor_kuberay_crds.py KUBERAY_GIT_DIR TAG   (a clone of github.com/ray-project/kuberay)

Each output is ``spec.versions[name == v1].schema.openAPIV3Schema`` of
``ray-operator/config/crd/bases/ray.io_<plural>.yaml`` at TAG, with every ``description`` text removed (they are
four fifths of the bytes and validate nothing), as compact JSON with sorted keys. Re-running it with the same tag
reproduces the files byte for byte; tests/fixtures/kuberay-crds/README.md names the tag and commit in use.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import yaml

CRDS = ("rayclusters", "rayjobs", "rayservices")
CRD_DIR = "ray-operator/config/crd/bases"
OUT = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "kuberay-crds"


def read_crd(git_dir: str, tag: str, plural: str) -> dict:
    """The CRD document ``ray.io_<plural>.yaml`` at ``tag``, read with ``git show`` (no checkout needed)."""
    text = subprocess.run(["git", "-C", git_dir, "show", f"{tag}:{CRD_DIR}/ray.io_{plural}.yaml"], check=True,
                          capture_output=True, text=True).stdout
    return yaml.safe_load(text)


def v1_schema(crd: dict) -> dict:
    """The openAPIV3Schema of the CRD's ``v1`` version; KeyError if the CRD has none."""
    for version in crd["spec"]["versions"]:
        if version["name"] == "v1":
            return version["schema"]["openAPIV3Schema"]
    raise KeyError(f"{crd['metadata']['name']}: no v1 version")


def without_descriptions(node):
    """``node`` with every ``description: <text>`` entry dropped (a property *named* description is kept)."""
    if isinstance(node, dict):
        return {key: without_descriptions(value) for key, value in node.items()
                if not (key == "description" and isinstance(value, str))}
    if isinstance(node, list):
        return [without_descriptions(value) for value in node]
    return node


def main(argv: list[str]) -> None:
    if len(argv) != 2:
        raise SystemExit(__doc__)
    git_dir, tag = argv
    OUT.mkdir(parents=True, exist_ok=True)
    for plural in CRDS:
        schema = without_descriptions(v1_schema(read_crd(git_dir, tag, plural)))
        path = OUT / f"ray.io_{plural}.v1.json"
        path.write_text(json.dumps(schema, sort_keys=True, separators=(",", ":")) + "\n")
        print(f"{path.relative_to(OUT.parents[2])}: {path.stat().st_size:,} bytes")


if __name__ == "__main__":
    main(sys.argv[1:])
