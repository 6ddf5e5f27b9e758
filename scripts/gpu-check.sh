#!/usr/bin/env bash
# The GPU checks, in one call on a lent GPU machine (README, Development). Prepare here first:
#     scripts/gpu-wheels.sh                      # the wheels that machine lacks, into .whl/ (git-ignored)
# then run it there with .whl carried, e.g. with the device tool:
#     run(command="bash scripts/gpu-check.sh", carry=[".whl"], timeout_s=540)
# What it does, each step under its own deadline, all output in $OUT/gpu-check.log:
#   1. the GPU, driver, torch and triton it finds; `rtvc doctor`;
#   2. CUDA-graph vs eager parity per step (content, F0, synth; fp32 <= 1e-4, fp16 <= 1e-2) on the tiny test
#      models: tests/test_backend_seam.py -k cuda_graphs_equal_eager;
#   3. bench/rvc_gpu.py: the same parity on the full-size models, then full-size RVC v2 48k + HuBERT base,
#      eager vs CUDA graphs (the layers' GPU forms side by side) vs the whole-window baseline, 20 and 10 ms
#      blocks, p50/p99 -> $OUT/rvc_gpu.json
#      (written after each block size);
#   4. scripts/gpu-profile.py: where a block's time goes (host and device hot spots) -> $OUT/gpu_profile.txt;
#   5. bench/live_virtual.py: the live engine on the virtual device at 10 ms blocks for 60 s on that voice
#      (cuda-graph, fp16), deadline misses and block times -> $OUT/live_virtual_gpu.json.
# A failed step does not stop the next; the summary at the end lists each step's exit code.
# `gpu-check.sh compiled` runs only the torch.compile experiment (rtvc.backends.gpu_forms, "inductor"): parity
# and 20/10 ms block times of CUDA graphs fp16 with and without it -> $OUT/rvc_gpu_compiled.json (a second call
# while the machine is still warm: it idles out after 30 s; COMPILED_S=seconds sets its limit, 450 by default).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-out/gpu-check}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 RTVC_TRACEBACK=1  # (an error's cause is printed whole: the one run must tell all)
PY=${PYTHON:-python3}

step() {  # step NAME SECONDS COMMAND...: the limits add up to 500 s, inside a 540 s call
  local name=$1 limit=$2
  shift 2
  echo
  echo "== $name ($(date -u +%T), limit ${limit} s)"
  timeout --kill-after=5 "$limit" "$@"
  summary+=("$name: exit $?")
}

checks() {
  if compgen -G ".whl/*.whl" >/dev/null; then
    $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/rtvc-site \
      .whl/*.whl || { echo "gpu-check: installing .whl/ failed"; return 1; }
    export PYTHONPATH="/tmp/rtvc-site:$PWD"
  else
    export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
  fi
  summary=()
  if [ "$MODE" = compiled ]; then compiled; return; fi
  step "gpu" 20 bash -c 'nvidia-smi --query-gpu=name,driver_version,compute_cap,clocks.sm,clocks.mem,temperature.gpu --format=csv; '"$PY"' -c "import torch; print(\"torch\", torch.__version__, \"cuda\", torch.version.cuda, torch.cuda.get_device_name() if torch.cuda.is_available() else \"no CUDA\")"; '"$PY"' -c "import triton; print(\"triton\", triton.__version__)" || echo "no triton"'
  step "doctor" 40 $PY -m rtvc doctor
  step "cuda-graph parity" 90 $PY -m pytest -q -p no:cacheprovider -rs tests/test_backend_seam.py -k cuda_graphs_equal_eager
  step "rvc_gpu bench" 180 $PY bench/rvc_gpu.py --blocks 200 --warmup 20 --out "$OUT/rvc_gpu.json"
  step "profile" 50 bash -c "$PY scripts/gpu-profile.py > $OUT/gpu_profile.txt"
  step "live 60 s at 10 ms" 120 $PY bench/live_virtual.py --rvc full --backend cuda-graph --device cuda \
    --precision fp16 --block-ms 10 --seconds 60 --out "$OUT/live_virtual_gpu.json"
  echo
  echo "== summary"
  printf '%s\n' "${summary[@]}"
}

compiled() {  # `gpu-check.sh compiled`: the "inductor" form (torch.compile before the capture) against the default
  step "gpu" 20 bash -c 'nvidia-smi --query-gpu=name,driver_version,compute_cap --format=csv; gcc --version | head -1; '"$PY"' -c "import triton; print(\"triton\", triton.__version__)" || echo "no triton"'
  step "cuda-graph parity" 60 $PY -m pytest -q -p no:cacheprovider -rs tests/test_backend_seam.py -k cuda_graphs_equal_eager
  # 20 ms blocks only, parity included: each compile of the full-size steps takes a minute or more
  step "compiled vs default forms" "${COMPILED_S:-450}" $PY bench/rvc_gpu.py --blocks 150 --warmup 15 --blocks-ms 20 \
    --rows "cuda-graph fp16" "cuda-graph fp16, compiled" --out "$OUT/rvc_gpu_compiled.json"
  echo
  echo "== summary"
  printf '%s\n' "${summary[@]}"
}

MODE=${1:-all}
# a pipeline, not a process substitution: the log is whole when the script ends
checks 2>&1 | tee -a "$OUT/gpu-check.log"
