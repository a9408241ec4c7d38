#!/usr/bin/env python3
"""Strict schema validation of the Kubernetes manifests in deploy/k8s.

Every document of every file the kustomization lists is validated:
- built-in kinds against the Kubernetes API schemas of kubernetes-validate, in
  strict mode (an unknown field anywhere is an error);
- KEDA kinds (ScaledObject, TriggerAuthentication) against JSON schemas made
  from the KEDA CRD models of cloudcoil-models-keda, made strict the same way
  (every object with declared properties refuses others);
- any other kind is an error: nothing passes unchecked.
The kustomization itself must list files that exist, and its secret generators
must have a committed `.example` beside the (uncommitted) env file.

Usage: validate_k8s.py [--kubernetes-version 1.32.0] DIR   (exit 1 on any error)
Run by scripts/check-deploy.sh, with the tools scripts/lib/tools.sh installs.
"""

from __future__ import annotations

import argparse
import copy
import sys
from pathlib import Path

import jsonschema
import kubernetes_validate
import yaml
from cloudcoil.models.keda import v1alpha1 as keda

KEDA_MODELS = {
    ("keda.sh/v1alpha1", "ScaledObject"): keda.ScaledObject,
    ("keda.sh/v1alpha1", "TriggerAuthentication"): keda.TriggerAuthentication,
}


def strict(schema: dict) -> dict:
    """Forbids undeclared properties in every object that declares some."""
    schema = copy.deepcopy(schema)

    def walk(node):
        if isinstance(node, dict):
            if "properties" in node and "additionalProperties" not in node:
                node["additionalProperties"] = False
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(schema)
    return schema


def keda_validator(model) -> jsonschema.Validator:
    schema = strict(model.model_json_schema(by_alias=True, mode="validation"))
    # The models allow null for optional fields; a manifest never needs it, and
    # `status` is the controller's, not ours.
    schema["properties"].pop("status", None)
    return jsonschema.Draft202012Validator(schema)


def validate_doc(doc: dict, k8s_version: str, validators: dict) -> list[str]:
    key = (doc.get("apiVersion"), doc.get("kind"))
    if key in validators:
        return [f"{'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}"
                for e in validators[key].iter_errors(doc)]
    try:
        kubernetes_validate.validate(doc, k8s_version, strict=True)
    except kubernetes_validate.SchemaNotFoundError:
        return [f"no schema for {key[1]} {key[0]}: add one to {Path(__file__).name}"]
    except kubernetes_validate.ValidationError as e:
        return [f"{'/'.join(map(str, e.path)) or '<root>'}: {e.message}"]
    return []


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kubernetes-version", default="1.32.0")
    parser.add_argument("dir", type=Path)
    args = parser.parse_args()

    validators = {key: keda_validator(model) for key, model in KEDA_MODELS.items()}
    kustomization = yaml.safe_load((args.dir / "kustomization.yaml").read_text())
    errors: list[str] = []
    checked = 0
    for generator in kustomization.get("secretGenerator", []):
        for env in generator.get("envs", []):
            if not (args.dir / f"{env}.example").is_file():
                errors.append(f"kustomization.yaml: secret {generator['name']}: no {env}.example")
    for name in kustomization.get("resources", []):
        path = args.dir / name
        if not path.is_file():
            errors.append(f"kustomization.yaml lists {name}, which does not exist")
            continue
        for doc in yaml.safe_load_all(path.read_text()):
            if doc is None:
                continue
            checked += 1
            label = f"{name}: {doc.get('kind')}/{doc.get('metadata', {}).get('name')}"
            errors += [f"{label}: {e}" for e in validate_doc(doc, args.kubernetes_version, validators)]
    for error in errors:
        print(f"error: {error}", file=sys.stderr)
    print(f"{checked} Kubernetes documents checked, {len(errors)} errors "
          f"(Kubernetes {args.kubernetes_version} strict, KEDA CRD models strict)")
    return 1 if errors or checked == 0 else 0


if __name__ == "__main__":
    sys.exit(main())
