#!/usr/bin/env bash
# Builds crmsync and runs `crmsync bench` with the arguments given: a first
# backfill of N seeded TribeCRM records into an empty BlueRockTel, an
# unchanged re-run and a plain pull→map→POST loop side by side, every
# program a child process on free loopback ports. See docs/performance.md.
#
#   scripts/bench.sh                                  (sizes 20000,100000)
#   scripts/bench.sh --sizes 20000,100000,1000000 --runs 3 --json
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
go build -o "$work/crmsync" "$repo"
"$work/crmsync" bench "$@"
