#!/usr/bin/env bash
# Installs what the conformance fixtures need: AWS's Python runtime interface client into
# python-ric/vendor/ (for Debian's /usr/bin/python3) and AWS's Node.js one into
# node-ric/node_modules/ (built against /usr/bin/node), and the AWS CLI into awscli/.
# Idempotent and quiet: each part
# is skipped while its stamp matches the pinned versions; a failing step prints its log.
# Needs root for the Debian packages (the native addon of aws-lambda-ric builds curl and
# aws-lambda-cpp from source).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
python=/usr/bin/python3
node=/usr/bin/node

log="$(mktemp)"
trap 'rm -f "$log"' EXIT
# Runs a step with its output kept aside, shown only if it fails.
quiet() {
  if ! "$@" >"$log" 2>&1; then
    cat "$log" >&2
    echo "setup.sh: failed: $*" >&2
    exit 1
  fi
}

# A stamp names the inputs an install was made from (and this script).
stamp_of() { cat "$@" "$here/setup.sh" | sha256sum | cut -d' ' -f1; }
is_current() { [[ -f "$1" && "$(cat "$1")" == "$2" ]]; }

# --- Debian packages: pip for Debian's Python, the addon's build tools.
packages=(python3-pip cmake autoconf automake libtool make g++)
missing=()
for package in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q 'install ok installed' || missing+=("$package")
done
if ((${#missing[@]})); then
  export DEBIAN_FRONTEND=noninteractive
  quiet apt-get update -q
  quiet apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# --- python-ric: wheels only, so nothing compiles and the native module is the one AWS
# builds for CPython 3.11.
vendor="$here/python-ric/vendor"
want="$(stamp_of "$here/python-ric/requirements.txt")"
if ! is_current "$vendor/.setup.stamp" "$want"; then
  rm -rf "$vendor"
  quiet env -u PYTHONPATH -u PIP_REQUIRE_VIRTUALENV "$python" -m pip install \
    --quiet --disable-pip-version-check --no-input --no-cache-dir \
    --only-binary=:all: --target "$vendor" -r "$here/python-ric/requirements.txt"
  quiet env -i PYTHONPATH="$vendor" "$python" -c 'import awslambdaric.bootstrap, runtime_client'
  echo "$want" >"$vendor/.setup.stamp"
fi

# --- node-ric: npm ci runs the package's install scripts, which build the addon with
# node-gyp against the headers of the Node.js that runs it.
modules="$here/node-ric/node_modules"
want="$(stamp_of "$here/node-ric/package.json" "$here/node-ric/package-lock.json")"
if ! is_current "$modules/.setup.stamp" "$want"; then
  nodedir=()
  if [[ -f /usr/include/node/node_api.h ]]; then
    # The headers of the installed nodejs package: node-gyp would otherwise download them.
    nodedir=(--nodedir=/usr)
  fi
  quiet env PATH="$(dirname "$node"):$PATH" PYTHON="$python" \
    npm ci --prefix "$here/node-ric" --no-audit --no-fund --loglevel=error "${nodedir[@]}"
  # The addon reads AWS_LAMBDA_RUNTIME_API when it loads (and aborts if it is unset).
  quiet env -i AWS_LAMBDA_RUNTIME_API=127.0.0.1:9001 "$node" -e 'require(process.argv[1])' \
    "$modules/aws-lambda-ric/dist/rapid-client.node"
  # The package's postinstall means to delete the unpacked curl and aws-lambda-cpp
  # sources (~150 MB) but its [^gz] glob, under dash, deletes the tarballs instead.
  rm -rf "$modules"/aws-lambda-ric/deps/aws-lambda-cpp-*/ "$modules"/aws-lambda-ric/deps/curl-*/
  echo "$want" >"$modules/.setup.stamp"
fi

# --- awscli: the AWS CLI, in a virtualenv of its own (it pins its own botocore), for
# the end-to-end test of `aws lambda invoke --endpoint-url`.
awscli="$here/awscli"
want="$(echo awscli==1.41.11 | sha256sum | cut -d' ' -f1)-$(stamp_of /dev/null)"
if ! is_current "$awscli/.setup.stamp" "$want"; then
  rm -rf "$awscli"
  quiet python3 -m venv "$awscli"
  quiet "$awscli/bin/pip" install --quiet --disable-pip-version-check --no-input awscli==1.41.11
  quiet "$awscli/bin/aws" --version
  echo "$want" >"$awscli/.setup.stamp"
fi
