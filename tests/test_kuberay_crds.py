"""cluster/kuberay-*.yaml validated against the KubeRay v1 CRD schemas, as the Kubernetes API server would.

The schemas are vendored in tests/fixtures/kuberay-crds/ (source, tag and licence in its README). A CRD schema is
OpenAPI v3, checked here with ``jsonschema`` after two translations of what Kubernetes adds to it:

- unknown fields: the API server's strict field validation (``kubectl apply``'s default, ``--validate=strict``)
  refuses a field the schema does not declare, so every object schema that lists ``properties`` and says nothing
  of ``additionalProperties`` (or ``x-kubernetes-preserve-unknown-fields``) is closed here;
- ``nullable: true`` becomes a ``null`` type. ``x-kubernetes-int-or-string`` always comes with
  ``anyOf: [integer, string]`` in these schemas, which jsonschema checks; the other ``x-kubernetes-*`` keys (list
  and map types, CEL ``x-kubernetes-validations``) and ``format`` (int32, date-time) are not checked.
"""

from __future__ import annotations

import copy
import json

import pytest
from jsonschema import Draft7Validator

from berg_ray.config import KUBERAY_VERSION
from tests.test_cluster_configs import CLUSTER, REPO, load

CRDS = REPO / "tests" / "fixtures" / "kuberay-crds"
SCHEMAS = {"RayCluster": "ray.io_rayclusters.v1.json", "RayJob": "ray.io_rayjobs.v1.json",
           "RayService": "ray.io_rayservices.v1.json"}
MANIFESTS = ("kuberay-raycluster.yaml", "kuberay-rayjob.yaml", "kuberay-rayservice.yaml")


def as_kubernetes_validates(schema: dict) -> dict:
    """A copy of an OpenAPI v3 schema in which undeclared fields are refused and ``nullable`` allows null."""
    out = dict(schema)
    if isinstance(schema.get("properties"), dict):
        out["properties"] = {name: as_kubernetes_validates(sub) for name, sub in schema["properties"].items()}
        if "additionalProperties" not in schema and not schema.get("x-kubernetes-preserve-unknown-fields"):
            out["additionalProperties"] = False
    for key in ("items", "additionalProperties", "not"):
        if isinstance(schema.get(key), dict):
            out[key] = as_kubernetes_validates(schema[key])
    for key in ("anyOf", "allOf", "oneOf"):
        if key in schema:
            out[key] = [as_kubernetes_validates(sub) for sub in schema[key]]
    if schema.get("nullable") is True and isinstance(schema.get("type"), str):
        out["type"] = [schema["type"], "null"]
    return out


def validator(kind: str, closed: bool = True) -> Draft7Validator:
    schema = json.loads((CRDS / SCHEMAS[kind]).read_text())
    return Draft7Validator(as_kubernetes_validates(schema) if closed else schema)


def schema_errors(manifest: dict, closed: bool = True) -> list[str]:
    """Every violation of the manifest's CRD schema, as ``path: message``."""
    errors = validator(manifest["kind"], closed).iter_errors(manifest)
    return sorted(f"{'.'.join(str(p) for p in e.absolute_path) or '<root>'}: {e.message}" for e in errors)


@pytest.mark.parametrize("name", MANIFESTS)
def test_manifest_is_valid_for_its_kuberay_crd(name):
    manifest = load(CLUSTER / name)
    assert manifest["apiVersion"] == "ray.io/v1" and manifest["kind"] in SCHEMAS
    assert schema_errors(manifest) == [], f"cluster/{name} does not validate against the {manifest['kind']} CRD"


def test_vendored_schemas_are_the_v1_crds():
    for file in SCHEMAS.values():
        schema = json.loads((CRDS / file).read_text())
        assert set(schema["properties"]) >= {"apiVersion", "kind", "metadata", "spec", "status"}, file
        Draft7Validator.check_schema(as_kubernetes_validates(schema))
    readme = (CRDS / "README.md").read_text()
    assert "ray-project/kuberay" in readme and "Apache-2.0" in readme and (CRDS / "LICENSE").is_file()
    assert f"tag **v{KUBERAY_VERSION}**" in readme, "the vendored CRDs are not those of berg_ray.config.KUBERAY_VERSION"


def _cluster_spec(manifest: dict) -> dict:
    """The RayClusterSpec of a RayCluster, RayJob or RayService."""
    spec = manifest["spec"]
    return spec.get("rayClusterSpec") or spec.get("rayClusterConfig") or spec


def _worker_group(manifest: dict) -> dict:
    return _cluster_spec(manifest)["workerGroupSpecs"][0]


@pytest.mark.parametrize("name", MANIFESTS)
def test_schema_check_refuses_broken_manifests(name):
    """A misspelt field, a wrong type, a value outside an enum and a bad quantity are each reported by path."""
    manifest = load(CLUSTER / name)
    misspelt = copy.deepcopy(manifest)
    _worker_group(misspelt)["minReplica"] = 0
    assert any("minReplica" in e and "Additional properties" in e for e in schema_errors(misspelt))
    assert schema_errors(misspelt, closed=False) == []  # only the strict-field translation catches it

    wrong_type = copy.deepcopy(manifest)
    _worker_group(wrong_type)["replicas"] = "four"
    assert any(e.endswith("replicas: 'four' is not of type 'integer'") for e in schema_errors(wrong_type))

    bad_enum = copy.deepcopy(manifest)
    _cluster_spec(bad_enum)["authOptions"] = {"mode": "tokens"}
    assert any("authOptions.mode: 'tokens' is not one of" in e for e in schema_errors(bad_enum))

    bad_quantity = copy.deepcopy(manifest)
    container = _worker_group(bad_quantity)["template"]["spec"]["containers"][0]
    container["resources"]["limits"]["memory"] = "64 GB"
    assert any("resources.limits.memory" in e for e in schema_errors(bad_quantity))


def test_nullable_allows_null_only_where_declared():
    schema = as_kubernetes_validates({"type": "object", "properties": {
        "at": {"type": "string", "nullable": True}, "name": {"type": "string"}}})
    assert Draft7Validator(schema).is_valid({"at": None, "name": "x"})
    assert not Draft7Validator(schema).is_valid({"name": None})
    assert not Draft7Validator(schema).is_valid({"other": 1})


def test_a_field_named_properties_is_not_mistaken_for_a_schema_keyword():
    schema = as_kubernetes_validates({"type": "object", "properties": {"properties": {"type": "string"}}})
    assert Draft7Validator(schema).is_valid({"properties": "x"})
    assert not Draft7Validator(schema).is_valid({"properties": "x", "extra": 1})
