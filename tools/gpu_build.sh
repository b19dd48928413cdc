#!/usr/bin/env bash
# Builds attnscope on a machine with a compiler and an OpenCL driver but no package
# access (e.g. a lent GPU box): the Debian packages of the build, downloaded beforehand
# with tools/offline-debs.sh .debs libgtest-dev, are unpacked into a prefix.
# Source this script (it exports OCL_ICD_VENDORS and LD_LIBRARY_PATH for the run).
set -e
prefix=/tmp/attnscope-deps
mkdir -p "$prefix"
for f in .debs/*.deb; do dpkg -x "$f" "$prefix"; done
lib="$prefix/usr/lib/x86_64-linux-gnu"
cmake -S . -B build-gpu -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_PREFIX_PATH="$prefix/usr;$lib/cmake;$prefix/usr/share/cmake" \
  -DOpenCL_INCLUDE_DIR="$prefix/usr/include" -DOpenCL_LIBRARY="$lib/libOpenCL.so" >/dev/null
cmake --build build-gpu -j"$(nproc)" 2>&1 | grep -E "error|warning: unused" || true
# NVIDIA's OpenCL driver is installed there but not registered with the ICD loader.
mkdir -p /tmp/icd && echo libnvidia-opencl.so.1 >/tmp/icd/nvidia.icd
export OCL_ICD_VENDORS=/tmp/icd
export LD_LIBRARY_PATH="$lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
set +e
