#!/usr/bin/env bash
# xla-cuda-bench.sh runs `flatmin bench` on XLA's CUDA backend, with the PJRT
# plugin of the jax-cuda13-pjrt Python package (flatmin never downloads one),
# and writes what it saw to $OUT (default ./xla-bench): gpu.txt, plugin.txt,
# bench.jsonl (one JSON row per line) and log.txt.
#
# Usage: FLATMIN=./flatmin scripts/xla-cuda-bench.sh   (flatmin built with cgo, without -tags noxla)
set -u
FLATMIN=${FLATMIN:-./flatmin}
OUT=${OUT:-./xla-bench}
mkdir -p "$OUT"
log() { echo "$@" | tee -a "$OUT/log.txt"; }

nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv >"$OUT/gpu.txt" 2>&1
PY=${PYTHON:-python3}
SITE=$($PY -c 'import jax_plugins.xla_cuda13 as m, os; print(os.path.dirname(m.__file__))' 2>>"$OUT/log.txt")
SO=$(ls "$SITE"/*.so 2>/dev/null | head -1)
$PY -m pip show jax-cuda13-pjrt jax-cuda13-plugin jaxlib 2>/dev/null | grep -E '^(Name|Version)' >"$OUT/plugin.txt"
echo "plugin: $SO" >>"$OUT/plugin.txt"
if [ -z "$SO" ]; then
	log "no PJRT CUDA plugin found in the jax-cuda13-pjrt package"
	exit 1
fi
# flatmin looks for pjrt_c_api_<name>_plugin.so in PJRT_PLUGIN_LIBRARY_PATH.
mkdir -p /tmp/pjrt/lib && ln -sf "$SO" /tmp/pjrt/lib/pjrt_c_api_cuda_plugin.so
export PJRT_PLUGIN_LIBRARY_PATH=/tmp/pjrt/lib
# The plugin finds CUDA's libraries in ../nvidia beside it: the nvidia-*
# Python packages' folder.
NV=$($PY -c 'import nvidia, os; print(list(nvidia.__path__)[0])' 2>/dev/null)
if [ -n "$NV" ]; then
	ln -sfn "$NV" /tmp/pjrt/nvidia
	export LD_LIBRARY_PATH=$(ls -d "$NV"/*/lib 2>/dev/null | tr '\n' ':')${LD_LIBRARY_PATH:-}
fi

"$FLATMIN" version >>"$OUT/log.txt" 2>&1
log "== smoke: train 1000 steps on xla:cuda"
rm -rf /tmp/xla-run
timeout 90 "$FLATMIN" train --backend xla:cuda --steps 1000 --log-every 500 --out /tmp/xla-run --quiet >>"$OUT/log.txt" 2>&1
log "exit $?"
cp /tmp/xla-run/summary.json "$OUT/smoke-summary.json" 2>/dev/null
# One row at a time, each with its own time limit, so that one slow or
# failing row does not lose the others.
# ROWS picks rows ("work m,d,n", or "work -" for the fixed-size ones).
ROWS=${ROWS:-"labelnoise:10,3,3 labelnoise:1000,64,32 labelnoise:10000,256,64 labelnoise:100000,256,64 riemannian:1000,64,32 hutchinson:1000,64,32 fig1a:- tts:-"}
for spec in $ROWS; do
	set -- ${spec/:/ }
	args=(bench --backend xla:cuda --json --only "$1" --repeats 5 --fig1a-steps "${FIG1A_STEPS:-4800000}" ${EXTRA:-})
	[ "$2" != - ] && args+=(--sizes "$2")
	log "== ${args[*]}"
	timeout "${ROW_TIMEOUT:-60}" "$FLATMIN" "${args[@]}" >>"$OUT/bench.jsonl" 2>>"$OUT/log.txt"
	log "exit $?"
done
