#!/bin/sh
# fid-grids.sh: 8x8 sample grids for the settings of the DDIM Table-1 grid that docs/eval.md shows,
# seed 0 (so they are the first 64 images each FID cell of scripts/fid-table.sh scored).
#
#   scripts/fid-grids.sh [CKPT] [OUTDIR]
#
# CKPT: run directory or weights file ("" = the shipped model); OUTDIR: default docs/fid.
# Environment: DDPM (the binary, default ddpm), FLAGS (extra flags for every ddpm sample).
set -eu
ckpt=${1:-}
dir=${2:-docs/fid}
ddpm=${DDPM:-ddpm}
ck=""
[ -n "$ckpt" ] && ck="--ckpt $ckpt"
mkdir -p "$dir"

grid() { # grid NAME SAMPLER-FLAGS...
	name=$1
	shift
	echo "== $name: $*" >&2
	# shellcheck disable=SC2086
	$ddpm sample $ck --n 64 --seed 0 --precision bf16 ${FLAGS:-} "$@" --grid "$dir/$name.png"
}

grid ddim10-eta0 --sampler ddim --steps 10 --eta 0
grid ddim10-eta1 --sampler ddim --steps 10 --eta 1
grid ddim10-sigmahat --sampler ddim --steps 10 --sigma-hat
grid ddim50-eta0 --sampler ddim --steps 50 --eta 0
grid ddim100-sigmahat --sampler ddim --steps 100 --sigma-hat
grid ddpm1000-beta --sampler ddpm --variance beta
grid ddpm1000-posterior --sampler ddpm --variance posterior
grid dpmsolver10 --sampler dpm-solver++ --steps 10
grid plms10 --sampler plms --steps 10
