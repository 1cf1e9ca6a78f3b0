#!/bin/sh
# fewstep-results.sh: the few-step comparison of docs/fewstep.md. The training-free solvers on the
# shipped unconditional MNIST model at 1, 2, 4, 5, 8 and 10 network calls, the teacher's DDIM-50 and -256, and
# the distilled students of RUNDIR (steps-8, -4, -2, -1, each on its own grid); FID at n = N, seed 0.
# Each cell is its own file, skipped when it exists, so an interrupted run restarts where it stopped.
# Then 64-image grids of seed 0 (the teacher's DDIM-256, iPNDM-4 and DDIM-4, each student), the
# result lines (with the teacher's DDPM-1000 from docs/fid-mnist.jsonl), a table and a plot.
#
#   scripts/fewstep-results.sh [RUNDIR]
#
# RUNDIR: a `ddpm distill` run (default models/mnist-distilled; students missing from it are left
# out). Environment: DDPM (the binary, default ddpm), N (default 2000), OUT (default docs/fewstep).
set -eu
run=${1:-models/mnist-distilled}
n=${N:-2000}
out=${OUT:-docs/fewstep}
ddpm=${DDPM:-ddpm}
teacher=models/mnist
mkdir -p "$out"
cell() { # cell FILE ARGS...: one eval fid line into FILE unless FILE exists
	f=$1
	shift
	[ -s "$f" ] && return 0
	echo "== $f" >&2
	$ddpm eval fid --data mnist --n "$n" --seed 0 "$@" >"$f.tmp"
	mv "$f.tmp" "$f"
}
# Every solver spends one network call per step (no Runge-Kutta warm start, no final corrector).
for steps in 1 2 4 5 8 10; do
	for sampler in ddim plms dpm-solver++ dpm-solver++3m ipndm unipc; do
		cell "$out/$sampler-$steps.json" --ckpt "$teacher" --sampler "$sampler" --steps "$steps"
	done
done
cell "$out/teacher-ddim-50.json" --ckpt "$teacher" --sampler ddim --steps 50
# What the students imitate: the sampler the first round distils.
cell "$out/teacher-ddim-256.json" --ckpt "$teacher" --sampler ddim --steps 256
# Grids from one seed: the teacher's DDIM-256 (what the students imitate) and two solvers at 4 calls.
grid() { # grid FILE ARGS...: a 64-image grid of seed 0 unless FILE exists
	f=$1
	shift
	[ -s "$f" ] || $ddpm sample --n 64 --seed 0 --grid "$f" "$@"
}
grid "$out/teacher-ddim-256.png" --ckpt "$teacher" --sampler ddim --steps 256
grid "$out/teacher-ipndm-4.png" --ckpt "$teacher" --sampler ipndm --steps 4
grid "$out/teacher-ddim-4.png" --ckpt "$teacher" --sampler ddim --steps 4
for s in 8 4 2 1; do
	[ -e "$run/steps-$s" ] || continue
	cell "$out/student-$s.json" --ckpt "$run/steps-$s"
	grid "$out/student-$s.png" --ckpt "$run/steps-$s"
done
# The teacher's DDPM-1000 at the same n and seed is not recomputed: docs/fid-mnist.jsonl has it.
{
	cat "$out"/*.json
	[ "$n" != 2000 ] || grep '"sampler":"ddpm-1000 posterior variance linspace","seed":0' docs/fid-mnist.jsonl
} >"$out/fewstep.jsonl"
$ddpm eval table --in "$out/fewstep.jsonl" --plot "$out/fewstep.png" >"$out/fewstep.md"
