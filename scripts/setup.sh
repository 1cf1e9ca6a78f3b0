#!/usr/bin/env bash
# Installs the system packages ddpm builds and tests against, idempotently.
# oneDNN (libdnnl-dev) is the fast CPU path behind the tensor kernels; OpenBLAS backs GEMM where oneDNN
# has no primitive. python3-torch runs the PyTorch UNet-S (bench/unet_s_torch.py) for side-by-side benchmarks
# and fixtures; it is only needed with --peer. Open MPI (openmpi-bin for mpirun, libopenmpi-dev for the
# ompi-c pkg-config entry) backs the -tags mpi build of data-parallel training and sharded sampling
# (docs/distributed.md); the default build does not need it.
set -euo pipefail
pkgs=(libdnnl-dev libopenblas-dev pkg-config openmpi-bin libopenmpi-dev)
if [ "${1:-}" = "--peer" ]; then
  pkgs+=(python3-torch python3-numpy libopenblas0-pthread)
fi
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
