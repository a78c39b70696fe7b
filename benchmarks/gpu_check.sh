#!/usr/bin/env bash
# The GPU check: BigGAN-deep-256 generation and resnet50 SimCLR training images/s on one GPU.
# Installs nothing (webdataset and pytorch-pretrained-biggan come as carried wheels on PYTHONPATH),
# runs in under 5 minutes, writes details under $OUT and prints a short table last.
#   usage: OUT=/some/folder bash benchmarks/gpu_check.sh
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
OUT=${OUT:-$(mktemp -d)}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > "$OUT/gpu.csv"
python3 -c "import torch, torchvision; print(torch.__version__, torchvision.__version__)" > "$OUT/versions.txt"

timeout 120 python3 -m benchmarks.generate_throughput --device cuda --batch-size 64 \
    --generators deadleaves,biggan-deep-256 --anchors deadleaves=4096,biggan-deep-256=512 \
    --memory-anchors "" --json "$OUT/generate.json" > "$OUT/generate.txt" 2>&1
echo "generate_throughput exit $?" >> "$OUT/generate.txt"

timeout 120 python3 -m benchmarks.train_throughput --backbone resnet50 --no-small-stem --bf16 \
    --image-size 128 --batch-size 256 --workers 12 --steps 15 --warmup 3 > "$OUT/train.txt" 2>&1
echo "train_throughput exit $?" >> "$OUT/train.txt"

# The real trainer on the GPU: NCCL, bf16 autocast, channels-last, one short epoch.
scratch=$(mktemp -d)
timeout 90 python3 -m generate --n-anchors 2048 --image-size 64 --out "$scratch/set" --no-progress \
    > "$OUT/trainer.txt" 2>&1
timeout 90 torchrun --standalone --nproc-per-node 1 train/main.py --data "$scratch/set" \
    --out "$scratch/run" --epochs 1 --batch-size 256 --workers 8 --no-progress >> "$OUT/trainer.txt" 2>&1
echo "trainer exit $?" >> "$OUT/trainer.txt"
cp "$scratch/run/metrics.jsonl" "$OUT/trainer-metrics.jsonl" 2>/dev/null

echo; cat "$OUT/gpu.csv" "$OUT/versions.txt"
tail -n 8 "$OUT/generate.txt"; tail -n 6 "$OUT/train.txt"; tail -n 3 "$OUT/trainer.txt"
tail -n 1 "$OUT/trainer-metrics.jsonl" 2>/dev/null
