#!/bin/sh
# fid-table.sh: the DDIM paper's Table 1 grid on MNIST with the project's FID, plus DDPM-1000 with
# both variances and the multistep solvers at 10/20/50 steps. Appends one JSON line per cell to OUT
# (existing cells are kept, so an interrupted run can be restarted), then prints the markdown table
# and draws the plot.
#
#   scripts/fid-table.sh [CKPT] [N] [N1000] [OUT]
#
# CKPT: run directory or weights file ("" = the shipped model); N: samples per cell (default 2000);
# N1000: samples for the 1000-step cells (default 500); OUT: results file (default docs/fid-mnist.jsonl).
# Environment: DDPM (the binary, default ddpm), DATA (mnist or fashion: the reference set and
# classifier, default mnist), STEPS (the DDIM columns, default "10 20 50 100 1000"), FIDFLAGS (extra
# flags for every ddpm eval fid, e.g. "--precision bf16" or, for a smoke test,
# "--ref-n 100 --kid-subsets 2 --kid-subset-size 2"), VARIANCES (the DDPM-1000 cells, default
# "beta posterior"; "" skips them: DDIM with sigma-hat and eta = 1 at S = 1000 draw the same images).
set -eu
ckpt=${1:-}
n=${2:-2000}
n1000=${3:-500}
out=${4:-docs/fid-mnist.jsonl}
ddpm=${DDPM:-ddpm}
data=${DATA:-mnist}
ck=""
[ -n "$ckpt" ] && ck="--ckpt $ckpt"
touch "$out"

cell() { # cell N SAMPLER-FLAGS...
	cn=$1
	shift
	key="$* n=$cn"
	if grep -qF "\"#$key\"" "$out.keys" 2>/dev/null; then
		return
	fi
	echo "== $key" >&2
	# shellcheck disable=SC2086
	$ddpm eval fid $ck --data "$data" --n "$cn" --seed 0 ${FIDFLAGS:-} "$@" >>"$out"
	echo "\"#$key\"" >>"$out.keys"
}

# Cheap cells first, so an interrupted run has the most of the table.
for s in ${STEPS:-10 20 50 100 1000}; do
	cn=$n
	[ "$s" = 1000 ] && cn=$n1000
	for eta in 0 0.2 0.5 1; do
		cell "$cn" --sampler ddim --steps "$s" --eta "$eta"
	done
	cell "$cn" --sampler ddim --steps "$s" --sigma-hat
	if [ "$s" = 100 ]; then
		for m in 10 20 50; do
			cell "$n" --sampler dpm-solver++ --steps "$m"
			cell "$n" --sampler plms --steps "$m"
		done
	fi
done
for v in ${VARIANCES-beta posterior}; do
	cell "$n1000" --sampler ddpm --variance "$v"
done
$ddpm eval table --in "$out" --plot "${out%.jsonl}.png"
