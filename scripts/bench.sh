#!/usr/bin/env bash
# Measures a first sync of N seeded TribeCRM records into Overplane and
# BlueRockTel (empty targets), then a re-run with nothing changed, 3 times
# each with fresh emulators and a fresh state file. Prints wall time,
# records/s and peak RSS (GNU time). Rate limits are turned off: the
# emulators are on loopback, so the figures measure crmsync, not pacing.
#
#   scripts/bench.sh [N]      (default 10000)
set -euo pipefail
N=${1:-10000}
repo=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
trap 'kill $emu 2>/dev/null || true; rm -rf "$work"' EXIT
emu=
go build -o "$work/crmsync" "$repo"
cp -r "$repo/examples" "$work/"
sed -e 's/rate_limit: [0-9]*/rate_limit: 0/' "$repo/config.example.yaml" > "$work/bench.yaml"
secs() { python3 -c "import json,datetime as D,sys;r=json.load(open(sys.argv[1]))['flows']['tribecrm-to-others'];p=lambda s:D.datetime.fromisoformat(s.replace('Z','+00:00'));print((p(r['finished'])-p(r['started'])).total_seconds())" "$1"; }
writes() { python3 -c "import json,sys;r=json.load(open(sys.argv[1]))['flows']['tribecrm-to-others']['systems'];print(sum(v['created']+v['updated']+v['converted'] for v in r.values()))" "$1"; }
for run in 1 2 3; do
  "$work/crmsync" emulate --seed "$N" --overplane-seed 0 --bluerocktel-seed 0 > "$work/emu.log" 2>&1 &
  emu=$!
  for _ in $(seq 100); do grep -q bluerocktel "$work/emu.log" && break; sleep 0.1; done
  rm -f "$work/b.db"
  CRMSYNC_STATE="$work/b.db" /usr/bin/time -f "%M" -o "$work/rss1" "$work/crmsync" sync --config "$work/bench.yaml" --json --log-level warn > "$work/r1.json"
  CRMSYNC_STATE="$work/b.db" /usr/bin/time -f "%M" -o "$work/rss2" "$work/crmsync" sync --config "$work/bench.yaml" --json --log-level warn > "$work/r2.json"
  s1=$(secs "$work/r1.json"); s2=$(secs "$work/r2.json")
  echo "run $run: first sync ${s1}s ($(python3 -c "print(round($N/$s1))") records/s, $(writes "$work/r1.json") writes, peak RSS $(cat "$work/rss1") KB) | unchanged re-run ${s2}s ($(writes "$work/r2.json") writes, peak RSS $(cat "$work/rss2") KB)"
  kill $emu; wait $emu 2>/dev/null || true
done
