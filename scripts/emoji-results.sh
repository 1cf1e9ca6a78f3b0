#!/bin/sh
# emoji-results.sh: what docs/colour.md shows of the category-conditional emoji model. Each step
# writes its own file and is skipped when that file exists, so an interrupted run can be restarted.
#
#   scripts/emoji-results.sh [CKPT] [S]
#
# CKPT: the model (default models/emoji); S: the guidance scale of the grids, the sampler table and
# the memorisation check (default 1.5; choose it from the sweep). Environment: DDPM (the binary,
# default ddpm), N (samples per FID cell, default 1000), OUT (default docs/emoji), ETA (the DDIM eta
# of the grids, the guidance sweep and the memorisation check, default 0).
set -eu
ckpt=${1:-models/emoji}
s=${2:-1.5}
n=${N:-1000}
out=${OUT:-docs/emoji}
eta=${ETA:-0}
ddpm=${DDPM:-ddpm}
mkdir -p "$out"
run() { # run FILE COMMAND...: COMMAND's stdout into FILE unless FILE exists
	f=$1
	shift
	[ -s "$f" ] && return 0
	echo "== $f" >&2
	"$@" >"$f.tmp"
	mv "$f.tmp" "$f"
}

# One row per category, 10 images each, DDIM-50 (eta ETA); and the reverse process of one per category.
[ -s "$ckpt/grid.png" ] || $ddpm sample --ckpt "$ckpt" --class all --cols 10 --guidance "$s" --eta "$eta" --grid "$ckpt/grid.png"
[ -s "$ckpt/reverse.gif" ] || $ddpm sample --ckpt "$ckpt" --class all --cols 1 --guidance "$s" --sampler ddpm \
	--grid "$out/reverse-last.png" --gif "$ckpt/reverse.gif" --gif-n 9

# FID, KID, classifier agreement and coverage per guidance scale (classes in the test split's
# proportions), DDIM-50.
[ -s "$out/guidance/guidance.jsonl" ] || $ddpm eval guidance --ckpt "$ckpt" --data emoji --class-prior --n "$n" \
	--seed 0 --eta "$eta" --out "$out/guidance"

# DDIM, PLMS and DPM-Solver++(2M) at 10, 20 and 50 steps, at scale S (and DDIM at eta ETA).
for steps in 10 20 50; do
	for sampler in ddim plms dpm-solver++; do
		run "$out/fid-$sampler-$steps.json" $ddpm eval fid --ckpt "$ckpt" --data emoji --n "$n" --seed 0 \
			--class-balanced --class-prior --guidance "$s" --sampler "$sampler" --steps "$steps"
	done
	[ "$eta" = 0 ] || run "$out/fid-ddim-eta$eta-$steps.json" $ddpm eval fid --ckpt "$ckpt" --data emoji --n "$n" --seed 0 \
		--class-balanced --class-prior --guidance "$s" --sampler ddim --eta "$eta" --steps "$steps"
done
cat "$out"/fid-*.json >"$out/samplers.jsonl"
$ddpm eval table --in "$out/samplers.jsonl" --plot "$out/samplers.png" >"$out/samplers.md"

# Memorisation: 1,000 samples' nearest training images against the test images'.
run "$out/memorization.json" $ddpm eval memorization --ckpt "$ckpt" --data emoji --n "$n" --seed 0 \
	--class-balanced --guidance "$s" --eta "$eta" --pairs "$out/memorization-pairs.png"
