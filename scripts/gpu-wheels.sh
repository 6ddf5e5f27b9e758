#!/usr/bin/env bash
# Run here, before a GPU session's one call: downloads into .whl/ (ignored by git) the wheels that
# scripts/gpu-check.sh installs on the lent GPU machine, which reaches no package index. That machine's image
# has Python 3.12 with torch/torchaudio 2.11, transformers, onnx, onnxruntime, numpy, scipy, einops and pytest;
# these are the rest of what the GPU checks import (versions as pinned by this project's .venv).
set -euo pipefail
cd "$(dirname "$0")/.."
PIP=${PIP:-.venv/bin/pip}
version() { "$PIP" show "$1" 2>/dev/null | awk '/^Version:/{print $2}'; }
want=()
for pkg in torchfcpe local-attention hyper-connections torch-einops-utils soundfile cffi pycparser; do
  v=$(version "$pkg")
  [ -n "$v" ] || { echo "gpu-wheels: $pkg is not in .venv: run make test first" >&2; exit 1; }
  want+=("$pkg==$v")
done
rm -rf .whl && mkdir -p .whl
"$PIP" download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
  --platform manylinux2014_x86_64 --platform manylinux1_x86_64 -d .whl "${want[@]}"
du -sh .whl
ls .whl
