#!/usr/bin/env bash
# Downloads the Debian packages attnscope's build needs into DIR, for building on a
# machine that has a compiler and an OpenCL driver but no package access.
# On that machine: for f in DIR/*.deb; do dpkg -x "$f" PREFIX; done
# then configure with -DCMAKE_PREFIX_PATH=PREFIX/usr -DCMAKE_INCLUDE_PATH=PREFIX/usr/include
set -euo pipefail
dir="$(realpath -m "${1:?usage: tools/offline-debs.sh DIR [extra-package...]}")"
shift || true
mkdir -p "$dir"
cd "$dir"
pkgs=(opencl-c-headers opencl-clhpp-headers ocl-icd-opencl-dev ocl-icd-libopencl1
      nlohmann-json3-dev libcli11-dev "$@")
apt-get download "${pkgs[@]}" 2>&1 | grep -v '^W: Download is performed unsandboxed' || true
ls -1 "$dir"/*.deb
