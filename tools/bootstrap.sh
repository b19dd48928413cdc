#!/usr/bin/env bash
# Sets attnscope up from a fresh clone: installs the Debian packages it needs (when any
# is missing; uses sudo when not root), configures and builds into build/.
# Usage: tools/bootstrap.sh            (then: build/attnscope bench, or ctest --test-dir build)
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(build-essential cmake pkg-config ocl-icd-opencl-dev opencl-clhpp-headers
          pocl-opencl-icd nlohmann-json3-dev libcli11-dev libgtest-dev python3-matplotlib
          python3-torch)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "bootstrap: installing ${missing[*]}"
  sudo=""
  [[ $(id -u) -ne 0 ]] && sudo="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get install -y -q "${missing[@]}" >/dev/null || {
    $sudo apt-get update -q >/dev/null
    $sudo apt-get install -y -q "${missing[@]}" >/dev/null
  }
fi

cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$(nproc)"
