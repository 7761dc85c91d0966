"""The KubeRay manifests in clusters/kuberay/ as far as they can be checked without a Kubernetes cluster: every field
against KubeRay v1.7.0's own CRD schemas (kuberay_crds.yaml, unknown fields refused, so a misspelled or misplaced field
fails), the pod templates and the PersistentVolumeClaim against Kubernetes' own schemas (kubernetes-validate, strict),
the RayService's Serve config against Ray Serve's schema and our config loader, and the project's rules: the image the
Dockerfile builds, a head that does no work, autoscaling, /dev/shm in RAM, the run directory on a ReadWriteMany volume
on every pod, resources on every container, secrets only from Kubernetes Secrets."""

from __future__ import annotations

import copy
import re
import tomllib
from pathlib import Path

import jsonschema
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
KUBERAY = ROOT / "clusters" / "kuberay"
CRDS = yaml.safe_load((Path(__file__).with_name("kuberay_crds.yaml")).read_text())
KUBERNETES_VERSION = "1.33.0"
VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
IMAGE = f"parallel-r1:{VERSION}-cuda"
CLUSTER_SPEC = {"RayCluster": ("spec",), "RayJob": ("spec", "rayClusterSpec"),
                "RayService": ("spec", "rayClusterConfig")}
SECRET_NAME = re.compile(r"TOKEN|KEY|SECRET|PASSWORD", re.I)
RUN_DIR = yaml.safe_load((ROOT / "configs" / "cluster.yaml").read_text())["workdir"]


def _manifest(name: str) -> dict:
    return yaml.safe_load((KUBERAY / name).read_text())


RAY_MANIFESTS = {"RayCluster": _manifest("raycluster.yaml"), "RayJob": _manifest("rayjob.yaml"),
                 "RayService": _manifest("rayservice.yaml")}


def _closed(schema):
    """The CRD schema as the API server applies it with strict field validation: an object that lists its
    properties accepts no other field (pod templates were left open by trim_kuberay_crds.py)."""
    if isinstance(schema, list):
        return [_closed(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: _closed(v) for k, v in schema.items()}
    if "properties" in out and "additionalProperties" not in out \
            and not out.get("x-kubernetes-preserve-unknown-fields"):
        out["additionalProperties"] = False
    return out


def _crd_errors(manifest: dict) -> list[str]:
    validator = jsonschema.Draft7Validator(_closed(CRDS["schemas"][manifest["kind"]]))
    return sorted(f"{'.'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(manifest))


def _cluster(manifest: dict) -> dict:
    spec = manifest
    for key in CLUSTER_SPEC[manifest["kind"]]:
        spec = spec[key]
    return spec


def _groups(manifest: dict) -> list[tuple[str, dict]]:
    cluster = _cluster(manifest)
    return [("head", cluster["headGroupSpec"])] + [(g["groupName"], g) for g in cluster["workerGroupSpecs"]]


def _pod(template: dict) -> dict:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "check", **template.get("metadata", {})},
            "spec": template["spec"]}


def test_the_pinned_crds_are_kuberay_v1_7():
    assert CRDS["kuberay_version"] == "v1.7.0" and set(CRDS["schemas"]) == set(CLUSTER_SPEC)


@pytest.mark.parametrize("kind", sorted(RAY_MANIFESTS))
def test_every_field_is_one_the_kuberay_crd_defines(kind):
    manifest = RAY_MANIFESTS[kind]
    assert manifest["apiVersion"] == "ray.io/v1" and manifest["kind"] == kind
    assert _crd_errors(manifest) == []


@pytest.mark.parametrize(("path", "field"), [
    (("spec",), "enableInTreeAutoscalling"),                     # misspelled
    (("spec", "headGroupSpec"), "minReplicas"),                  # a worker group's field on the head
    (("spec", "workerGroupSpecs", 0, "rayStartParams"), None),   # rayStartParams values must be strings
])
def test_a_misspelled_or_misplaced_field_fails(path, field):
    manifest = copy.deepcopy(RAY_MANIFESTS["RayCluster"])
    node = manifest
    for key in path:
        node = node[key]
    if field is None:
        node["num-gpus"] = 1
    else:
        node[field] = True
    assert _crd_errors(manifest) != []


@pytest.mark.parametrize("kind", sorted(RAY_MANIFESTS))
def test_pod_templates_pass_the_kubernetes_pod_schema(kind):
    import kubernetes_validate

    for name, group in _groups(RAY_MANIFESTS[kind]):
        try:
            kubernetes_validate.validate(_pod(group["template"]), KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as e:
            pytest.fail(f"{kind} {name}: {e}")


def test_a_bad_pod_template_fails_the_kubernetes_schema():
    import kubernetes_validate

    template = copy.deepcopy(RAY_MANIFESTS["RayCluster"]["spec"]["headGroupSpec"]["template"])
    template["spec"]["containers"][0]["volumeMount"] = template["spec"]["containers"][0].pop("volumeMounts")
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(_pod(template), KUBERNETES_VERSION, strict=True)


def test_the_run_directory_claim_is_read_write_many_and_valid():
    import kubernetes_validate

    claim = _manifest("storage.yaml")
    kubernetes_validate.validate(claim, KUBERNETES_VERSION, strict=True)
    assert claim["kind"] == "PersistentVolumeClaim" and claim["spec"]["accessModes"] == ["ReadWriteMany"]
    assert RUN_DIR.startswith("/shared/")
    for kind, manifest in RAY_MANIFESTS.items():
        for name, group in _groups(manifest):
            pod = group["template"]["spec"]
            volumes = {v["name"]: v for v in pod["volumes"]}
            (container,) = pod["containers"]
            mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
            where = f"{kind} {name}"
            assert volumes[mounts["/shared"]]["persistentVolumeClaim"]["claimName"] == claim["metadata"]["name"], where
            assert volumes[mounts["/dev/shm"]]["emptyDir"]["medium"] == "Memory", where


@pytest.mark.parametrize("kind", sorted(RAY_MANIFESTS))
def test_cluster_rules(kind):
    cluster = _cluster(RAY_MANIFESTS[kind])
    assert cluster["rayVersion"] == "2.60.0" == __import__("ray").__version__
    assert cluster["enableInTreeAutoscaling"] is True
    assert cluster["headGroupSpec"]["rayStartParams"]["num-cpus"] == "0"  # no work on the head
    gpu_groups = 0
    for name, group in _groups(RAY_MANIFESTS[kind]):
        (container,) = group["template"]["spec"]["containers"]
        assert container["image"] == IMAGE, name
        resources = container["resources"]
        assert resources["requests"] and resources["limits"] == resources["requests"], name
        if name != "head":
            assert 0 <= group["minReplicas"] <= group["replicas"] <= group["maxReplicas"], name
            assert group["maxReplicas"] > group["minReplicas"], name  # something for the autoscaler to do
            gpu_groups += "nvidia.com/gpu" in resources["limits"]
        for env in container.get("env", []):
            if SECRET_NAME.search(env["name"]):
                assert "value" not in env and env["valueFrom"]["secretKeyRef"]["name"] == "parallel-r1-secrets", env
    assert gpu_groups >= 1


def test_the_dockerfile_builds_the_image_the_manifests_name():
    assert f"-t {IMAGE} ." in (ROOT / "docker" / "Dockerfile").read_text()


def test_the_rayjob_runs_the_pipeline_on_the_cluster_config():
    from typer.main import get_command

    from parallel_r1.cli import app
    from parallel_r1.config import load_config

    job = RAY_MANIFESTS["RayJob"]
    argv = job["spec"]["entrypoint"].split()
    assert argv[:2] == ["parallel-r1", "run"] and "run" in get_command(app).commands
    config = argv[argv.index("--config") + 1]
    assert config.startswith("/home/ray/parallel-r1/")  # where the image holds the repository
    assert str(load_config(ROOT / config.removeprefix("/home/ray/parallel-r1/")).workdir) == RUN_DIR
    assert job["spec"]["shutdownAfterJobFinishes"] is True and "generateName" in job["metadata"]
    assert yaml.safe_load(job["spec"]["runtimeEnvYAML"])["env_vars"]["RAY_TRAIN_ENABLE_PRINT_PATCH"] == "0"


def test_the_rayservice_serves_the_router_with_auth_from_a_secret():
    from ray.serve.schema import ServeDeploySchema

    from parallel_r1.config import load_config

    service = RAY_MANIFESTS["RayService"]
    serve = yaml.safe_load(service["spec"]["serveConfigV2"])
    ServeDeploySchema.model_validate(serve)
    local = yaml.safe_load((ROOT / "serve" / "config.yaml").read_text())
    (app,) = serve["applications"]
    (local_app,) = local["applications"]
    assert app["import_path"] == local_app["import_path"] and app["name"] == local_app["name"]
    assert set(app["args"]) <= {"config", "workdir", "set"} and app["args"]["workdir"] == RUN_DIR
    cfg = load_config(ROOT / app["args"]["config"].removeprefix("/home/ray/parallel-r1/"), app["args"]["set"])
    assert cfg.serve.auth_token_env == "PARALLEL_R1_SERVE_TOKEN" and cfg.serve.backend == "vllm" and cfg.serve.use_gpu
    assert "runtime_env" not in app  # a token there would show in `serve status`
    for name, group in _groups(service):
        (container,) = group["template"]["spec"]["containers"]
        env = {e["name"]: e for e in container["env"]}
        assert env[cfg.serve.auth_token_env]["valueFrom"]["secretKeyRef"]["key"] == "serve-token", name
        assert {"name": "serve", "containerPort": serve["http_options"]["port"]} in container["ports"], name
