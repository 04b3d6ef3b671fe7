#!/usr/bin/env bash
# Wheels a GPU machine without package-index access needs for benchmarks/gpu_suite.sh, fetched here
# for its Python (3.12, x86-64 manylinux) into .whl/ (ignored by git); carry that folder across.
#
#   bash benchmarks/gpu_wheels.sh [PACKAGE==VERSION ...]     # default: the diffusers installed here
set -euo pipefail
cd "$(dirname "$0")/.."
out=${WHEELS:-.whl}
mkdir -p "$out"
packages=("$@")
[ ${#packages[@]} -gt 0 ] || packages=("diffusers==$(python3 -c 'import importlib.metadata as m; print(m.version("diffusers"))')")
python3 -m pip download -q --no-deps --only-binary=:all: --python-version "${GPU_PYTHON:-3.12}" --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
  -d "$out" "${packages[@]}"
ls "$out"
