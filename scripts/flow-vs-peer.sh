#!/usr/bin/env bash
# flow-vs-peer.sh times one Riemannian flow step (projected step of Tr D²L
# plus its Gauss–Newton retraction) of flatmin and of the PyTorch peer
# (shared/peer-torch) at the same size, alternately, ROUNDS times, so that both
# see the same load on the machine; it prints each round and the median of
# peer/flatmin (above 1: flatmin is faster).
#
# Usage: scripts/flow-vs-peer.sh            (from the checkout; builds flatmin)
#   ROUNDS=5 SIZE=1000,64,32 PEER=/work/shared/peer-torch FLATMIN=/tmp/fm-speed
#   WORK=hutchinson: the 10-probe Hutchinson estimate instead (peer --only hutch).
#   THREADS=1: both on one thread (peer --threads 1, flatmin GOMAXPROCS=1),
#   which a busy machine disturbs less; by default the peer's 2 threads and
#   flatmin's GOMAXPROCS.
set -eu
ROUNDS=${ROUNDS:-5}
SIZE=${SIZE:-1000,64,32}
PEER=${PEER:-$(cd "$(dirname "$0")/../.." && pwd)/shared/peer-torch}
[ -d "$PEER" ] || PEER=/work/shared/peer-torch
FLATMIN=${FLATMIN:-/tmp/fm-flow-vs-peer}
PY=${PY:-/usr/bin/python3}
THREADS=${THREADS:-}
WORK=${WORK:-riemannian}
case "$WORK" in
riemannian) peer_only=flow ;;
hutchinson) peer_only=hutch ;;
*) echo "WORK must be riemannian or hutchinson, got $WORK" >&2; exit 2 ;;
esac
peer_threads=()
if [ -n "$THREADS" ]; then
	peer_threads=(--threads "$THREADS")
	export GOMAXPROCS=$THREADS
fi
go build -o "$FLATMIN" ./cmd/flatmin

field() { "$PY" -c "import json,sys
for l in sys.stdin:
    l = l.strip()
    if l.startswith('{'):
        r = json.loads(l)
        if '$1' in r: print(r['$1'])"; }

ratios=()
for k in $(seq "$ROUNDS"); do
	peer=$(cd "$PEER" && GOMP_SPINCOUNT=0 "$PY" bench.py --only "$peer_only" --flow-size "$SIZE" --dtypes float64 "${peer_threads[@]}" | field median_s)
	fm=$("$FLATMIN" bench --only "$WORK" --sizes "$SIZE" --json | field median_seconds)
	r=$("$PY" -c "print(f'{$peer / $fm:.3f}')")
	ratios+=("$r")
	printf 'round %d: peer %.3f ms, flatmin %.3f ms, peer/flatmin %s\n' "$k" \
		"$("$PY" -c "print($peer*1e3)")" "$("$PY" -c "print($fm*1e3)")" "$r"
done
"$PY" -c "import statistics,sys; print('median peer/flatmin over', len(sys.argv)-1, 'rounds:', statistics.median(map(float, sys.argv[1:])))" "${ratios[@]}"
