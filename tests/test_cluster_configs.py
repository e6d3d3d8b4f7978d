"""cluster/ and deployments/ checked with Ray's own validators and the CLI's own parser (fast: no cluster).

- the Ray cluster launcher config: ``prepare_config`` + ``validate_config`` of the autoscaler;
- each KubeRay cluster spec (RayCluster, RayService, RayJob): the autoscaler config the KubeRay autoscaler derives
  from it (``_derive_autoscaling_config_from_ray_cr``, which runs ``validate_config``);
- Serve configs: ``ServeDeploySchema`` for deployments/*.yaml and the RayService's serveConfigV2, which must equal
  deployments/gpu.yaml, and berg_ray's own ``ServeArgs`` for every application's args;
- the runtime env: ``ray.runtime_env.RuntimeEnv``;
- every ``berg-ray ...`` command line in cluster/ (YAML strings and the README's bash blocks): ``build_parser``,
  then the command's own option checks (sweep: ``sweep_args_from_cli``; download: ``parse_source``).
"""

from __future__ import annotations

import copy
import re
import shlex
from pathlib import Path

import pytest
import yaml

from berg_ray.cli import build_parser

REPO = Path(__file__).resolve().parents[1]
CLUSTER, DEPLOYMENTS = REPO / "cluster", REPO / "deployments"
KUBERAY_SPECS = {"kuberay-raycluster.yaml": ("spec",), "kuberay-rayservice.yaml": ("spec", "rayClusterConfig"),
                 "kuberay-rayjob.yaml": ("spec", "rayClusterSpec")}
SHELL_OPERATORS = {"&&", "||", ";", "|", "&", ";;"}


def load(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


def validated_launcher_config(config: dict) -> dict:
    from ray.autoscaler._private.util import prepare_config, validate_config

    prepared = prepare_config(copy.deepcopy(config))
    validate_config(prepared)
    return prepared


def kuberay_autoscaling_config(name: str) -> dict:
    """The autoscaler config KubeRay's autoscaler derives from the file's RayCluster spec (validated by Ray)."""
    from ray.autoscaler._private.kuberay.autoscaling_config import _derive_autoscaling_config_from_ray_cr

    manifest = load(CLUSTER / name)
    spec = manifest
    for key in KUBERAY_SPECS[name]:
        spec = spec[key]
    ray_cr = {"metadata": {"name": manifest["metadata"]["name"], "namespace": "default"}, "spec": spec}
    return _derive_autoscaling_config_from_ray_cr(ray_cr)


def test_launcher_config_is_valid_with_cpu_head_and_autoscaled_gpu_workers():
    config = validated_launcher_config(load(CLUSTER / "aws-autoscaler.yaml"))
    types = config["available_node_types"]
    head = types[config["head_node_type"]]
    gpu_types = [t for t in types.values() if t["resources"].get("GPU", 0) >= 1]
    assert head["resources"].get("GPU", 0) == 0 and gpu_types
    assert all(t["min_workers"] == 0 and t["max_workers"] >= 1 for t in gpu_types)  # 0..N: scales to zero
    setup = " ".join(config["setup_commands"])
    assert "pip install" in setup and "berg_ray" in setup and "berg-ray download" in setup


def test_launcher_validator_rejects_a_broken_config():
    """The validator really checks: an unknown key and a worker type without node_config fail."""
    from ray.autoscaler._private.util import validate_config

    config = load(CLUSTER / "aws-autoscaler.yaml")
    bad_key = copy.deepcopy(config)
    bad_key["available_node_types"]["gpu_worker"]["min_worker"] = 0
    with pytest.raises(Exception):
        validated_launcher_config(bad_key)
    no_node_config = validated_launcher_config(config)
    del no_node_config["available_node_types"]["gpu_worker"]["node_config"]
    with pytest.raises(Exception):
        validate_config(no_node_config)


@pytest.mark.parametrize("name", sorted(KUBERAY_SPECS))
def test_kuberay_clusters_are_valid_for_the_autoscaler(name):
    manifest = load(CLUSTER / name)
    assert manifest["apiVersion"] == "ray.io/v1"
    config = kuberay_autoscaling_config(name)
    types = config["available_node_types"]
    assert types["headgroup"]["resources"].get("GPU", 0) == 0
    gpu = types["gpu"]
    assert gpu["resources"]["GPU"] == 1 and gpu["max_workers"] >= gpu["min_workers"] >= 0
    spec = manifest
    for key in KUBERAY_SPECS[name]:
        spec = spec[key]
    assert spec["enableInTreeAutoscaling"] is True


def test_kuberay_raycluster_scales_gpu_workers_from_zero():
    assert kuberay_autoscaling_config("kuberay-raycluster.yaml")["available_node_types"]["gpu"]["min_workers"] == 0


def test_kuberay_validator_rejects_a_gpu_quantity_that_is_not_a_number():
    from ray.autoscaler._private.kuberay.autoscaling_config import _derive_autoscaling_config_from_ray_cr

    spec = copy.deepcopy(load(CLUSTER / "kuberay-raycluster.yaml")["spec"])
    spec["workerGroupSpecs"][0]["template"]["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] = "x"
    with pytest.raises(Exception):
        _derive_autoscaling_config_from_ray_cr({"metadata": {"name": "b", "namespace": "default"}, "spec": spec})


def serve_configs() -> dict[str, dict]:
    configs = {path.name: load(path) for path in sorted(DEPLOYMENTS.glob("*.yaml"))}
    configs["rayservice serveConfigV2"] = yaml.safe_load(
        load(CLUSTER / "kuberay-rayservice.yaml")["spec"]["serveConfigV2"])
    return configs


@pytest.mark.parametrize("name", sorted(serve_configs()))
def test_serve_configs_pass_serve_schema_and_serve_args(name):
    from ray.serve.schema import ServeDeploySchema

    from berg_ray.serve.cli import serve_args_from

    config = serve_configs()[name]
    schema = ServeDeploySchema.model_validate(config)
    assert [app.import_path for app in schema.applications] == ["berg_ray.serve.app:build_app"]
    args = config["applications"][0]["args"]
    serve_args_from(config, args["berg_dir"], None, None)  # berg_ray's ServeArgs accepts every arg (extra keys refused)


def test_serve_schema_rejects_a_broken_config():
    from ray.serve.schema import ServeDeploySchema

    config = load(DEPLOYMENTS / "gpu.yaml")
    twice = dict(config, applications=config["applications"] * 2)  # two applications of one name
    with pytest.raises(Exception, match="multiple configs"):
        ServeDeploySchema.model_validate(twice)
    with pytest.raises(Exception, match="proxy_location"):
        ServeDeploySchema.model_validate(dict(config, proxy_location="Everywhere"))


def test_rayservice_serve_config_equals_deployments_gpu_yaml():
    service = serve_configs()["rayservice serveConfigV2"]
    assert service == load(DEPLOYMENTS / "gpu.yaml")
    assert service["applications"] == load(DEPLOYMENTS / "gpu.yaml")["applications"]


def test_runtime_env_is_valid():
    from ray.runtime_env import RuntimeEnv

    env = RuntimeEnv(**load(CLUSTER / "runtime_env.yaml"))
    assert any("berg_ray" in p for p in env["pip"]["packages"])


def yaml_strings(node) -> list[str]:
    if isinstance(node, str):
        return [node]
    if isinstance(node, dict):
        return [s for value in node.values() for s in yaml_strings(value)]
    if isinstance(node, list):
        return [s for value in node for s in yaml_strings(value)]
    return []


def readme_shell_lines(text: str) -> list[str]:
    """Lines of the ```bash blocks, with backslash continuations joined and comments dropped."""
    lines: list[str] = []
    for block in re.findall(r"```(?:bash|sh)\n(.*?)```", text, flags=re.S):
        joined = re.sub(r"\\\n\s*", " ", block)
        lines += [line for line in joined.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    return lines


def berg_ray_commands(text: str) -> list[list[str]]:
    """Every ``berg-ray ...`` command in a shell text: its argv up to the next shell operator."""
    lexer = shlex.shlex(text, posix=True, punctuation_chars=True)
    lexer.whitespace_split, lexer.commenters = True, "#"
    tokens = list(lexer)
    commands = []
    for index, token in enumerate(tokens):
        if token == "berg-ray":
            argv = []
            for arg in tokens[index + 1:]:
                if arg in SHELL_OPERATORS:
                    break
                argv.append(arg)
            commands.append(argv)
    return commands


def cluster_commands() -> list[tuple[str, list[str]]]:
    found = []
    for path in sorted(CLUSTER.glob("*.yaml")):
        for text in yaml_strings(load(path)):
            if text.strip() == "berg-ray":  # a name (cluster_name, metadata.name), not a command
                continue
            found += [(path.name, argv) for argv in berg_ray_commands(text)]
    for line in readme_shell_lines((CLUSTER / "README.md").read_text()):
        found += [("README.md", argv) for argv in berg_ray_commands(line)]
    return found


def check_command(argv: list[str]) -> None:
    """Parse with the CLI's parser (argparse exits on an unknown flag or bad choice), then the command's own
    checks of the values."""
    args = build_parser().parse_args(argv)
    if args.command == "sweep":
        from berg_ray.sweep.cli import sweep_args_from_cli

        sweep_args_from_cli(args)
    elif args.command == "download":
        from berg_ray.download.files import parse_sessions
        from berg_ray.download.sources import parse_source

        parse_source(args.source, args.md5, args.s3_endpoint_url, args.metadata_source)
        parse_sessions(args.sessions)


def test_every_berg_ray_command_in_cluster_parses():
    commands = cluster_commands()
    by_file = {(name, argv[0]) for name, argv in commands}
    for expected in [("aws-autoscaler.yaml", "download"), ("kuberay-rayjob.yaml", "sweep"),
                     ("kuberay-rayservice.yaml", "download"), ("README.md", "sweep"), ("README.md", "download")]:
        assert expected in by_file, f"no `berg-ray {expected[1]}` found in cluster/{expected[0]}"
    for name, argv in commands:
        try:
            check_command(argv)
        except SystemExit as exc:
            pytest.fail(f"cluster/{name}: `berg-ray {shlex.join(argv)}` is refused by the CLI's parser ({exc})")


def test_command_check_catches_a_wrong_flag_and_a_bad_value(capsys):
    from berg_ray.errors import BergRayError

    [argv] = berg_ray_commands("ray job submit -- berg-ray sweep --berg-dir b --input i --out o --batchsize 8 && x")
    assert argv[-1] == "8"
    with pytest.raises(SystemExit):
        check_command(argv)
    with pytest.raises(BergRayError):
        check_command(["sweep", "--berg-dir", "b", "--input", "i", "--out", "o", "--batch-size", "0"])
    with pytest.raises(BergRayError):
        check_command(["download", "--out", "d", "--source", "gs://bucket/berg/"])


def test_rayservice_gpu_group_holds_every_core_replica():
    """The GPU worker group scales to the core's bounds: min_replicas..max_replicas replicas of num_gpus each."""
    core = serve_configs()["rayservice serveConfigV2"]["applications"][0]["args"]["core"]
    groups = load(CLUSTER / "kuberay-rayservice.yaml")["spec"]["rayClusterConfig"]["workerGroupSpecs"]
    gpu = next(group for group in groups if group["groupName"] == "gpu")
    per_pod = int(gpu["template"]["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/gpu"])
    assert gpu["minReplicas"] * per_pod >= core["min_replicas"] * core["num_gpus"]
    assert gpu["maxReplicas"] * per_pod >= core["max_replicas"] * core["num_gpus"]
