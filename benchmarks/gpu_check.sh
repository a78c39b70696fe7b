#!/usr/bin/env bash
# The GPU check (issue 8): BigGAN-deep-256 images/s in fp32 / bf16 / bf16+trim (+channels-last,
# +compile), forward and whole job; JPEG on the CPU pool against nvJPEG; bf16 and fp16 against fp32;
# training images/s with the CPU loader, with GPU decode and augmentation (train/main.py
# --gpu-augment's path) and its views' difference from the CPU loader's, and from memory, for
# resnet18 at 64 px and resnet50 at 128 and 224 px; DiT-XL/2-256 images/s for 50 DDIM steps with
# guidance in the default precision, the sampler against the whole job. Under 5 minutes on one
# H100/H200; installs nothing; writes one JSON per section and the log (which begins with the
# environment) under $OUT (8 files at most) and prints a short table last. The Python parts are
# benchmarks/gpu_check.py; GPU_CHECK_SMOKE=1 runs them on the CPU at a tiny size
# (tests/generate/test_fast_path.py runs that mode).
#
#   usage: OUT=/some/folder bash benchmarks/gpu_check.sh
#
# The device image lacks webdataset, diffusers and pytorch-pretrained-biggan (and its boto3). Build
# the wheels once, here, in the repository root (see /work/.library/device/README.md):
#   echo /.whl/ >> .git/info/exclude
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#     --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
#     -d .whl webdataset==1.0.2 braceexpand==0.1.7 pytorch-pretrained-biggan==0.1.1 boto3==1.43.11 \
#     botocore==1.43.11 s3transfer==0.17.0 jmespath==1.1.0 diffusers==0.42.1
# then run with carry [".whl"] and the command
#   python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
#     .whl/*.whl && export PYTHONPATH=/tmp/site || exit; bash benchmarks/gpu_check.sh
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
OUT=${OUT:-$(mktemp -d)}
mkdir -p "$OUT"
BUDGET_S=290  # the whole check; compile, the slowest and least certain, gets what is left
smoke=() slack=1
[ "${GPU_CHECK_SMOKE:-0}" = 1 ] && smoke=(--smoke) slack=0  # time limits mean nothing on a CPU
log="$OUT/gpu_check.log"
environment=$({ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>&1 || echo "no nvidia-smi"
  python3 -c "import torch, torchvision; print('torch', torch.__version__, 'torchvision', torchvision.__version__)"; })
echo "$environment" > "$log"

scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
step() {  # step SECONDS SECTION: one section under a time limit, its output in the log
    local limit=$(( $1 * slack )) section=$2
    echo "== $section (limit ${limit}s, started at ${SECONDS}s)" >> "$log"
    timeout "$limit" python3 -m benchmarks.gpu_check "$section" --out "$OUT" --weights "$scratch/weights" \
        "${smoke[@]}" >> "$log" 2>&1
    echo "== $section exit $?" >> "$log"
}
timeout $(( 60 * slack )) python3 -m benchmarks.gpu_check weights --out "$scratch/weights" "${smoke[@]}" >> "$log" 2>&1
step 50 biggan
step 35 job
step 15 jpeg
step 25 precision
step 90 loader
step 60 dit
step $(( BUDGET_S - SECONDS > 10 ? BUDGET_S - SECONDS : 10 )) compile

echo; echo "$environment"
grep -E "^== .* exit [^0]" "$log"  # the sections that failed or ran out of time
python3 -m benchmarks.gpu_check table --out "$OUT"
