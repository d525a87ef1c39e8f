#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Installs everything myriad needs to build, test and benchmark on Debian 12:
# the C toolchain and libraries from Debian's packages, and a Python virtual
# environment (.venv) with the packages the tests and benchmarks use.
# Safe to run again: it installs only what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(build-essential cmake pkg-config libsqlite3-dev sqlite3 libcmocka-dev libjansson-dev
              liblz4-dev libzstd-dev zlib1g-dev
              python3 python3-venv python3-dev clang cppcheck)

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing Debian packages: ${missing[*]}"
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
    "${missing[@]}" >/dev/null
fi

# The Python environment: made once, refreshed when the requirements change.
PY=${MYR_PYTHON:-python3}
req=scripts/requirements.txt
stamp=.venv/.myriad-requirements
if [ ! -x .venv/bin/python ] || ! cmp -s "$req" "$stamp"; then
  echo "setup: creating .venv with $(grep -cv '^#' "$req") Python packages"
  [ -x .venv/bin/python ] || "$PY" -m venv .venv
  .venv/bin/python -m pip install -q --disable-pip-version-check -r "$req"
  cp "$req" "$stamp"
fi
# The validators of deploy/ (make test-deploy), in their own environment.
dreq=scripts/requirements-deploy.txt
dstamp=.venv-deploy/.myriad-requirements
if [ ! -x .venv-deploy/bin/python ] || ! cmp -s "$dreq" "$dstamp"; then
  echo "setup: creating .venv-deploy (checkov, kubernetes-validate)"
  [ -x .venv-deploy/bin/python ] || "$PY" -m venv .venv-deploy
  .venv-deploy/bin/python -m pip install -q --disable-pip-version-check -r "$dreq"
  cp "$dreq" "$dstamp"
fi
# The Python package (python/): rebuilt when a C source, header or Python file changed.
pystamp=.venv/.myriad-python
if [ ! -f "$pystamp" ] || [ -n "$(find src include python CMakeLists.txt -newer "$pystamp" \
        -type f -print -quit)" ]; then
  echo "setup: building the Python package myriad into .venv"
  touch "$pystamp.new"
  .venv/bin/python -m pip install -q --disable-pip-version-check --no-build-isolation \
    ./python
  mv "$pystamp.new" "$pystamp"
fi
echo "setup: ready"
