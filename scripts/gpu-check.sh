#!/usr/bin/env bash
# The GPU checks, in one call on a lent GPU machine (README, Development). Prepare here first:
#     scripts/gpu-wheels.sh                      # the wheels that machine lacks, into .whl/ (git-ignored)
# then run it there with .whl carried, e.g. with the device tool:
#     run(command="bash scripts/gpu-check.sh", carry=[".whl"], timeout_s=540)
# What it does, each step under its own deadline, all output in $OUT/gpu-check.log:
#   1. the GPU, driver, torch and triton it finds; `rtvc doctor`;
#   2. CUDA-graph vs eager parity per step (content, F0, F0 over the window, synth; fp32 <= 1e-4, fp16 <= 1e-2) on the tiny test
#      models: tests/test_backend_seam.py -k cuda_graphs_equal_eager;
#      and the voice streamed with the concurrency forms (steps and the decoder's branches side by side);
#      the TensorRT runner's CUDA stream and graph (cuda-bindings, no TensorRT needed): tests/test_tensorrt.py;
#   3. bench/rvc_gpu.py: the same parity on the full-size models, then full-size RVC v2 48k + HuBERT base,
#      eager vs CUDA graphs (default forms, and with the concurrency forms) vs the whole-window baseline,
#      20 and 10 ms blocks, p50/p99 -> $OUT/rvc_gpu.json (written after each block size);
#   4. bench/live_virtual.py: the live engine on the virtual device at 10 ms blocks for 60 s on that voice
#      (cuda-graph, fp16), deadline misses and block times -> $OUT/live_virtual_gpu.json;
# `gpu-check.sh compiled`, a second call where the device time allows: the compiled row with the concurrency forms
# (parity of its forms first) beside the default forms and the baseline, 20 ms blocks -> $OUT/rvc_gpu_compiled.json.
# The GPU's clocks, power and load every 250 ms through it all -> $OUT/gpu_clocks.csv (a live block leaves the
# GPU idle most of its period; the bench keeps it busy: do the clocks differ?).
# A failed step does not stop the next; the summary at the end lists each step's exit code.
# `gpu-check.sh profile` runs only scripts/gpu-profile.py: where a block's time goes (host and device hot spots)
# -> $OUT/gpu_profile.txt.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-out/gpu-check}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 RTVC_TRACEBACK=1  # (an error's cause is printed whole: the one run must tell all)
PY=${PYTHON:-python3}

step() {  # step NAME SECONDS COMMAND...: the limits add up to 400 s (compiled: 500 s), inside a 540 s call
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
  # rtvc's audio core (rtvc/_rt.c) is built by pip install; here (the checkout on PYTHONPATH) by hand
  local ext
  ext=$($PY -c 'import sysconfig; print(sysconfig.get_config_var("EXT_SUFFIX"))')
  ${CC:-cc} -O2 -std=c11 -shared -fPIC -fvisibility=hidden rtvc/_rt.c -o "rtvc/_rt$ext" -lpthread \
    || { echo "gpu-check: building rtvc/_rt.c failed"; return 1; }
  summary=()
  if [ "$MODE" = profile ]; then
    step "profile" 60 bash -c "$PY scripts/gpu-profile.py > $OUT/gpu_profile.txt"
  elif [ "$MODE" = compiled ]; then
    # compiled concurrent against the default forms and the baseline, in one run (the compiled default forms were
    # measured before: 3.92 / 5.00 ms on the H200); parity of its own forms only: a compile of each step for the
    # check and again for the row (Inductor's cache helps the second) took minutes for one variant on the H200
    local rows=("cuda-graph fp16" "cuda-graph fp16, compiled concurrent" "baseline: whole-window decode fp32")
    step "rvc_gpu bench, compiled concurrent" 500 $PY bench/rvc_gpu.py --blocks 150 --warmup 20 --blocks-ms 20 \
      --parity-rows-only --rows "${rows[@]}" --out "$OUT/rvc_gpu_compiled.json"
  else
    nvidia-smi --query-gpu=timestamp,pstate,clocks.sm,clocks.mem,power.draw,utilization.gpu --format=csv \
      -lms 250 >"$OUT/gpu_clocks.csv" 2>&1 &
    local clocks=$!
    step "gpu" 15 bash -c 'nvidia-smi --query-gpu=name,driver_version,compute_cap,clocks.sm,clocks.mem,temperature.gpu --format=csv; '"$PY"' -c "import torch; print(\"torch\", torch.__version__, \"cuda\", torch.version.cuda, torch.cuda.get_device_name() if torch.cuda.is_available() else \"no CUDA\")"; '"$PY"' -c "import triton; print(\"triton\", triton.__version__)" || echo "no triton"; gcc --version | head -1'
    step "doctor" 15 $PY -m rtvc doctor
    step "cuda-graph parity" 60 $PY -m pytest -q -p no:cacheprovider -rs tests/test_backend_seam.py -k cuda_graphs_equal_eager
    # the TensorRT runner's CUDA runtime calls (cuda-bindings: its stream, capture, launch), which need no TensorRT
    step "cuda runtime graph" 30 $PY -m pytest -q -p no:cacheprovider -rs tests/test_tensorrt.py -k "graph_stream or enqueue"
    local rows=("eager fp32" "cuda-graph fp32" "cuda-graph fp16" "cuda-graph fp16, concurrent" "baseline: whole-window decode fp32")
    step "rvc_gpu bench" 150 $PY bench/rvc_gpu.py --blocks 200 --warmup 20 --rows "${rows[@]}" --out "$OUT/rvc_gpu.json"
    local live=(bench/live_virtual.py --rvc full --backend cuda-graph --device cuda --precision fp16 --block-ms 10 --seconds 60)
    # (the H200's run of this step took 85 s: the voice's load and captures before its 60 s)
    step "live 60 s at 10 ms" 130 $PY "${live[@]}" --out "$OUT/live_virtual_gpu.json"

    kill "$clocks" 2>/dev/null
  fi
  echo
  echo "== summary"
  printf '%s\n' "${summary[@]}"
}

MODE=${1:-all}
# a pipeline, not a process substitution: the log is whole when the script ends
checks 2>&1 | tee -a "$OUT/gpu-check.log"
