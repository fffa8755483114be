#!/usr/bin/env bash
# `make bench` — runs the benchmarks under bench/ (docs/benchmarks.md), one after another, alone:
# they measure throughput and memory, so nothing else should load the machine meanwhile.
#
#   bash bench/run.sh               every bench/*/run.ts
#   bash bench/run.sh operator      only the named ones (directory names under bench/)
#   N=1000 bash bench/run.sh        environment (N, BENCH_*) is passed through to each benchmark
#
# Each benchmark prints a table and writes bench/results/<name>-<timestamp>.json (git-ignored).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
# Node 22 from the repo (the `node` devDependency) first, as in the Makefile.
export PATH="$ROOT/node_modules/.bin:$PATH"
if ! node -e 'process.exit(Number(process.versions.node.split(".")[0]) === 22 ? 0 : 1)'; then
  echo "bench: Node 22 is required (found $(node --version)); run 'make deps' first" >&2
  exit 2
fi
# Outside make: pick up the test environment's addresses when they are not set yet.
if [ -z "${KUBECONFIG:-}" ] || [ -z "${DATABASE_URL:-}" ] || [ -z "${KAFKA_BROKERS:-}" ]; then
  if [ -f .testenv/env ]; then
    set -a; source .testenv/env; set +a
  else
    echo "bench: the test environment is not up: run 'make testenv-up' (or 'make bench')" >&2
    exit 2
  fi
fi

if [ "$#" -gt 0 ]; then
  benches=("$@")
else
  benches=()
  for f in bench/*/run.ts; do
    [ -e "$f" ] || continue
    benches+=("$(basename "$(dirname "$f")")")
  done
fi
if [ "${#benches[@]}" -eq 0 ]; then
  echo "bench: no benchmarks found (bench/*/run.ts)" >&2
  exit 2
fi

mkdir -p bench/results
failed=()
for b in "${benches[@]}"; do
  if [ ! -f "bench/$b/run.ts" ]; then
    echo "bench: unknown benchmark '$b' (no bench/$b/run.ts)" >&2
    failed+=("$b")
    continue
  fi
  echo "=== bench: $b (N=${N:-default}) ==="
  if node "bench/$b/run.ts"; then
    echo "=== bench: $b done ==="
  else
    echo "=== bench: $b FAILED ===" >&2
    failed+=("$b")
  fi
done
if [ "${#failed[@]}" -gt 0 ]; then
  echo "bench: failed: ${failed[*]}" >&2
  exit 1
fi
