#!/usr/bin/env bash
# Measures a first sync of N seeded TribeCRM records into Overplane and
# BlueRockTel (empty targets), then a re-run with nothing changed, RUNS times
# (default 3) with fresh emulators and a fresh state file. Prints wall time,
# records/s, CPU time (user + system, GNU time; steadier than the wall time
# on a busy machine), peak RSS and the state file's size after the first
# sync (bytes and bytes per source record), then the medians. Rate limits are
# turned off: the emulators are on loopback, so the figures measure crmsync,
# not pacing. The emulators listen on ports the kernel picks (:0), so runs
# beside other work never collide.
#
#   scripts/bench.sh [N]      (default 10000; RUNS=5 scripts/bench.sh 20000)
set -euo pipefail
N=${1:-10000}
RUNS=${RUNS:-3}
repo=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
emu=
trap '[ -n "$emu" ] && kill $emu 2>/dev/null; rm -rf "$work"' EXIT
go build -o "$work/crmsync" "$repo"
cp -r "$repo/examples" "$work/"
sed -e 's/rate_limit: [0-9]*/rate_limit: 0/' "$repo/config.example.yaml" > "$work/bench.yaml"
secs() { python3 -c "import json,datetime as D,sys;r=json.load(open(sys.argv[1]))['flows']['tribecrm-to-others'];p=lambda s:D.datetime.fromisoformat(s.replace('Z','+00:00'));print((p(r['finished'])-p(r['started'])).total_seconds())" "$1"; }
writes() { python3 -c "import json,sys;r=json.load(open(sys.argv[1]))['flows']['tribecrm-to-others']['systems'];print(sum(v['created']+v['updated']+v['converted'] for v in r.values()))" "$1"; }
url() { python3 -c "import json,sys;print(json.loads(open(sys.argv[1]).read().strip().splitlines()[-1])['urls'][sys.argv[2]])" "$work/emu.json" "$1"; }
: > "$work/summary"
for run in $(seq "$RUNS"); do
  : > "$work/emu.json"
  "$work/crmsync" emulate --seed "$N" --overplane-seed 0 --bluerocktel-seed 0 --json \
    --tribecrm-addr 127.0.0.1:0 --overplane-addr 127.0.0.1:0 --bluerocktel-addr 127.0.0.1:0 > "$work/emu.json" 2> "$work/emu.log" &
  emu=$!
  for _ in $(seq 300); do grep -q urls "$work/emu.json" && break; sleep 0.1; done
  export TRIBECRM_URL=$(url tribecrm) OVERPLANE_URL=$(url overplane) BLUEROCKTEL_URL=$(url bluerocktel)
  rm -f "$work/b.db"
  CRMSYNC_STATE="$work/b.db" /usr/bin/time -f "%M %U %S" -o "$work/rss1" "$work/crmsync" sync --config "$work/bench.yaml" --json --log-level warn > "$work/r1.json"
  size=$(stat -c %s "$work/b.db")
  CRMSYNC_STATE="$work/b.db" /usr/bin/time -f "%M" -o "$work/rss2" "$work/crmsync" sync --config "$work/bench.yaml" --json --log-level warn > "$work/r2.json"
  s1=$(secs "$work/r1.json"); s2=$(secs "$work/r2.json")
  read -r rss1 cpu1 <<< "$(python3 -c "import sys;m,u,s=open(sys.argv[1]).read().split()[-3:];print(m,round(float(u)+float(s),2))" "$work/rss1")"
  echo "run $run: first sync ${s1}s ($(python3 -c "print(round($N/$s1))") records/s, $(writes "$work/r1.json") writes, CPU ${cpu1}s = $(python3 -c "print(round($cpu1*1e6/$N))") µs/record, peak RSS $rss1 KB, state file $size bytes = $(python3 -c "print(round($size/$N))") B/record) | unchanged re-run ${s2}s ($(writes "$work/r2.json") writes, peak RSS $(cat "$work/rss2") KB)"
  echo "$s1 $rss1 $size $s2 $(cat "$work/rss2") $cpu1" >> "$work/summary"
  kill $emu; wait $emu 2>/dev/null || true
  emu=
done
python3 - "$N" "$work/summary" <<'PY'
import statistics as S, sys
n = int(sys.argv[1])
rows = [list(map(float, l.split())) for l in open(sys.argv[2]) if l.strip()]
m = [S.median(c) for c in zip(*rows)]
print(f"median of {len(rows)}: first sync {m[0]:.2f}s ({n/m[0]:.0f} records/s, CPU {m[5]:.2f}s = {m[5]*1e6/n:.0f} µs/record, peak RSS {m[1]/1024:.0f} MiB, "
      f"state {m[2]/1e6:.1f} MB = {m[2]/n:.0f} B/record) | unchanged re-run {m[3]:.2f}s (peak RSS {m[4]/1024:.0f} MiB)")
PY
