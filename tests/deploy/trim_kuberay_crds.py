"""Regenerate tests/deploy/kuberay_crds.yaml: the openAPIV3Schema of the `v1` RayCluster, RayJob and RayService CRDs
of one KubeRay release, trimmed for the manifest tests.

    git clone https://github.com/ray-project/kuberay && git -C kuberay checkout v1.7.0
    .venv/bin/python tests/deploy/trim_kuberay_crds.py kuberay/ray-operator/config/crd/bases v1.7.0

Trimmed: `status` (set by the operator) and every Kubernetes PodTemplateSpec (`template`, `submitterPodTemplate`),
which becomes an open object: tests/deploy/test_kuberay.py checks the pod templates against Kubernetes' own schemas
with kubernetes-validate instead. The RayCluster spec that RayJob and RayService embed is written once (a YAML
alias). The CRDs are Apache-2.0 (KubeRay's licence), as is this project.
"""

from __future__ import annotations

import sys
from pathlib import Path

import yaml

KINDS = {"RayCluster": "ray.io_rayclusters.yaml", "RayJob": "ray.io_rayjobs.yaml",
         "RayService": "ray.io_rayservices.yaml"}
POD_TEMPLATES = {"template", "submitterPodTemplate"}
OUT = Path(__file__).with_name("kuberay_crds.yaml")


def _is_pod_template(schema: dict) -> bool:
    return "containers" in schema.get("properties", {}).get("spec", {}).get("properties", {})


def trim(schema):
    """The schema with every pod template replaced by an open object."""
    if isinstance(schema, list):
        return [trim(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {}
    for key, value in schema.items():
        if key == "properties":
            out[key] = {name: ({"type": "object", "x-kubernetes-preserve-unknown-fields": True}
                               if name in POD_TEMPLATES and _is_pod_template(sub) else trim(sub))
                        for name, sub in value.items()}
        else:
            out[key] = trim(value)
    return out


def main(bases: Path, version: str) -> None:
    schemas = {}
    for kind, name in KINDS.items():
        crd = yaml.safe_load((bases / name).read_text())
        (v1,) = [v for v in crd["spec"]["versions"] if v["name"] == "v1"]
        schema = v1["schema"]["openAPIV3Schema"]
        schema["properties"].pop("status", None)
        schemas[kind] = trim(schema)
    cluster = schemas["RayCluster"]["properties"]["spec"]
    for kind, field in (("RayJob", "rayClusterSpec"), ("RayService", "rayClusterConfig")):
        spec = schemas[kind]["properties"]["spec"]["properties"]
        if spec[field] == cluster:
            spec[field] = cluster  # the same object: written once, then as a YAML alias
    header = (f"# The openAPIV3Schema (v1) of KubeRay {version}'s RayCluster, RayJob and RayService CRDs, from\n"
              f"# github.com/ray-project/kuberay, tag {version}, ray-operator/config/crd/bases/ (Apache-2.0),\n"
              "# trimmed by tests/deploy/trim_kuberay_crds.py: no status, pod templates left open.\n"
              "# Regenerate with that script; do not edit by hand.\n")
    body = yaml.safe_dump({"kuberay_version": version, "schemas": schemas}, sort_keys=True, width=120)
    OUT.write_text(header + body)
    print(f"wrote {OUT} ({OUT.stat().st_size} bytes)")


if __name__ == "__main__":
    main(Path(sys.argv[1]), sys.argv[2])
