#!/usr/bin/env bash
# Static checks of the deployment files, run by scripts/test.sh (and alone):
#   Kubernetes  deploy/k8s against the API schemas and KEDA's CRDs, strictly
#   compose     docker-compose.yml against the compose specification, and
#               resolved by docker-compose (v1, Debian) as an engine would
#   Dockerfile  hadolint (.hadolint.yaml)
#   protobuf    buf lint (proto/buf.yaml)
#   dashboards  deploy/grafana/*.json parse, and they and docs/operations.md's
#               PromQL name only metrics the code exports
# Each check first proves it can fail: it must reject a broken copy of the
# file. Tools come from the registries (scripts/lib/tools.sh), installed when
# missing. Needs no Docker engine and no cluster.
source "$(dirname "$0")/lib/common.sh"
source "$(dirname "$0")/lib/tools.sh"
cd "$ATELIER_ROOT"

ensure_py_tools
ensure_npm_tools
ensure_apt docker-compose

scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT

# Runs a check on a broken input and fails the script if the check accepts it.
must_reject() {
  local what="$1"; shift
  if "$@" >"$scratch/out" 2>&1; then
    cat "$scratch/out" >&2
    die "the check accepted $what"
  fi
}

log "Kubernetes manifests (strict, Kubernetes 1.32 + KEDA)"
python="$(py_tool python)"
cp -r deploy/k8s "$scratch/k8s"
sed -i 's/pollingInterval: 5/pollingInterval: 5\n  pollingIntervall: 5/' "$scratch/k8s/keda.yaml"
must_reject "an unknown ScaledObject field" "$python" scripts/ci/validate_k8s.py "$scratch/k8s"
rm -rf "$scratch/k8s" && cp -r deploy/k8s "$scratch/k8s"
sed -i 's/readOnlyRootFilesystem: true/readOnlyRootFileSystem: true/' "$scratch/k8s/gateway.yaml"
must_reject "a misspelt container field" "$python" scripts/ci/validate_k8s.py "$scratch/k8s"
"$python" scripts/ci/validate_k8s.py --kubernetes-version 1.32.0 deploy/k8s

log "docker-compose.yml (compose specification)"
check_jsonschema="$(py_tool check-jsonschema)"
sed 's/^    stop_grace_period: 30s$/    stop_grace_periods: 30s/' docker-compose.yml >"$scratch/docker-compose.yml"
must_reject "an unknown compose key" "$check_jsonschema" --builtin-schema vendor.compose-spec "$scratch/docker-compose.yml"
"$check_jsonschema" --builtin-schema vendor.compose-spec docker-compose.yml
# Interpolated as `up` would (from a folder without the developer's .env): the
# passwords have no default, so a run without them must fail; with them it must
# resolve.
mkdir "$scratch/compose" && cp docker-compose.yml "$scratch/compose/"
must_reject "a stack without passwords" env -u RABBITMQ_PASSWORD -u POSTGRES_PASSWORD \
  docker-compose -f "$scratch/compose/docker-compose.yml" config -q
RABBITMQ_PASSWORD=check POSTGRES_PASSWORD=check \
  docker-compose -f "$scratch/compose/docker-compose.yml" config -q

log "Dockerfile (hadolint)"
hadolint="$(py_tool hadolint)"
sed 's/^USER 10001:10001$/USER atelier/' Dockerfile >"$scratch/Dockerfile"
must_reject "a non-numeric USER" "$hadolint" --config .hadolint.yaml "$scratch/Dockerfile"
"$hadolint" --config .hadolint.yaml Dockerfile

log "protobuf (buf lint)"
buf="$(npm_tool buf)"
cp -r proto "$scratch/proto"
sed -i '0,/^message /s/^message \([A-Za-z]*\)/message bad_\1/' "$scratch/proto/atelier/v1/status.proto"
must_reject "a snake_case message name" bash -c "cd '$scratch/proto' && '$buf' lint"
(cd proto && "$buf" lint)

log "Grafana dashboard and documented PromQL (metrics the code exports)"
sed 's/atelier_stage_duration_seconds_bucket/atelier_stage_seconds_bucket/' deploy/grafana/atelier-dashboard.json >"$scratch/dashboard.json"
must_reject "a dashboard naming a metric nobody exports" python3 scripts/ci/check_metrics_refs.py "$scratch/dashboard.json"
printf '{"panels": [' >"$scratch/broken.json"
must_reject "a dashboard that is not JSON" python3 scripts/ci/check_metrics_refs.py "$scratch/broken.json"
for board in deploy/grafana/*.json; do
  python3 scripts/ci/check_metrics_refs.py "$board"
done

log "deployment files: all checks passed"
