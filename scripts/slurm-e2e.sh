#!/usr/bin/env bash
# End-to-end test of `flatmin sweep --slurm` on a real, single-node Slurm:
# installs Debian's slurm-wlm and munge if they are missing, writes a minimal
# slurm.conf in a temporary directory, starts munged, slurmctld and slurmd
# there (on free ports, without touching /etc), submits a 4-run sweep as an
# array job, waits for it, collects sweep.json and checks it, then stops the
# daemons (also on failure, when it prints their logs).
#
# Usage: scripts/slurm-e2e.sh   (as root, or a user with sudo)
# Environment: SLURM_E2E_TIMEOUT (seconds to wait for the job, default 300),
# SLURM_E2E_KEEP=1 keeps the temporary directory.
set -euo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)
timeout_s=${SLURM_E2E_TIMEOUT:-300}

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
	SUDO=sudo
fi

need=()
for c in slurmctld slurmd sbatch squeue sinfo; do
	command -v "$c" >/dev/null || need=(slurm-wlm)
done
command -v munged >/dev/null || need+=(munge)
if [ ${#need[@]} -gt 0 ]; then
	echo "slurm-e2e: installing ${need[*]}"
	$SUDO apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
fi

work=$(mktemp -d /tmp/flatmin-slurm-e2e.XXXXXX)
chmod 755 "$work"
pids=()
ok=0
cleanup() {
	for p in "${pids[@]}"; do
		$SUDO kill "$p" 2>/dev/null || true
	done
	for p in "${pids[@]}"; do
		for _ in $(seq 50); do
			$SUDO kill -0 "$p" 2>/dev/null || break
			sleep 0.1
		done
		$SUDO kill -9 "$p" 2>/dev/null || true
	done
	if [ "$ok" -ne 1 ]; then
		for f in munged.log munged.out slurmctld.log slurmctld.out slurmd.log slurmd.out; do
			[ -f "$work/$f" ] && { echo "--- $f (last 40 lines)"; tail -n 40 "$work/$f"; }
		done
		for f in "$work"/sweep/slurm/*.out; do
			[ -f "$f" ] && { echo "--- $f"; cat "$f"; }
		done
	fi
	if [ "${SLURM_E2E_KEEP:-0}" = 1 ]; then
		echo "slurm-e2e: kept $work"
	else
		$SUDO rm -rf "$work"
	fi
}
trap cleanup EXIT

fail() {
	echo "slurm-e2e: FAIL: $*" >&2
	exit 1
}

# wait_for SECONDS DESCRIPTION COMMAND...: poll COMMAND until it succeeds.
wait_for() {
	local limit=$1 what=$2
	shift 2
	for _ in $(seq $((limit * 2))); do
		if "$@" >/dev/null 2>&1; then
			return 0
		fi
		sleep 0.5
	done
	fail "timed out after ${limit}s waiting for $what"
}

echo "slurm-e2e: building flatmin (pure Go)"
CGO_ENABLED=0 go build -tags noxla -o "$work/flatmin" ./cmd/flatmin

# munge, on its own key and socket.
mkdir -p "$work/munge"
dd if=/dev/urandom of="$work/munge/munge.key" bs=1024 count=1 status=none
chmod 700 "$work/munge"
chmod 400 "$work/munge/munge.key"
if [ -n "$SUDO" ]; then
	$SUDO chown -R root:root "$work/munge"
fi
sock="$work/munge/munge.socket"
$SUDO munged --force --foreground --key-file="$work/munge/munge.key" --socket="$sock" \
	--pid-file="$work/munge/munged.pid" --seed-file="$work/munge/munge.seed" \
	--log-file="$work/munged.log" >"$work/munged.out" 2>&1 &
pids+=($!)
wait_for 20 "munged" test -S "$sock"
munge --socket="$sock" -n | unmunge --socket="$sock" >/dev/null || fail "munge cannot encode and decode a credential"

# A one-node cluster on free ports.
host=$(hostname -s)
port=$((20000 + RANDOM % 20000))
node=$(slurmd -C | head -n 1 | sed -e "s/^NodeName=[^ ]*/NodeName=$host/")
mem=$(awk '/MemAvailable/ {print int($2/1024/2)}' /proc/meminfo)
node=$(echo "$node" | sed -e "s/RealMemory=[0-9]*/RealMemory=$mem/")
mkdir -p "$work/state" "$work/spool"
cat >"$work/slurm.conf" <<EOF
ClusterName=flatmine2e
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=$port
SlurmdPort=$((port + 1))
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$sock
StateSaveLocation=$work/state
SlurmdSpoolDir=$work/spool
SlurmctldPidFile=$work/slurmctld.pid
SlurmdPidFile=$work/slurmd.pid
SlurmctldLogFile=$work/slurmctld.log
SlurmdLogFile=$work/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SwitchType=switch/none
MpiDefault=none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
SlurmdTimeout=60
$node NodeAddr=127.0.0.1 State=UNKNOWN
PartitionName=e2e Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF
export SLURM_CONF="$work/slurm.conf"

$SUDO env SLURM_CONF="$SLURM_CONF" slurmctld -D -i >"$work/slurmctld.out" 2>&1 &
pids+=($!)
wait_for 30 "slurmctld" sinfo -h
$SUDO env SLURM_CONF="$SLURM_CONF" slurmd -D >"$work/slurmd.out" 2>&1 &
pids+=($!)
node_idle() { sinfo -h -N -o %T | grep -qx idle; }
wait_for 60 "the node to be idle (sinfo: $(sinfo -h -N -o %T 2>&1 | head -n 1))" node_idle
echo "slurm-e2e: slurmctld and slurmd up on port $port"

# The sweep: 2 trainers × 2 seeds = 4 array tasks.
sweep="$work/sweep"
args=(sweep --out "$sweep" --trainers gd,riemannian --seeds 2 --steps 3000 --log-every 500 --m 8 --d 4 --n 3)
"$work/flatmin" "${args[@]}" --slurm --submit --partition e2e --time 10:00 --mem 500M
grep -q '^#SBATCH --array=0-3$' "$sweep/sweep.sbatch" || fail "sweep.sbatch lacks --array=0-3"
grep -q '^#SBATCH --partition=e2e$' "$sweep/sweep.sbatch" || fail "sweep.sbatch lacks the partition"
grep -q '^#SBATCH --time=10:00$' "$sweep/sweep.sbatch" || fail "sweep.sbatch lacks the time"
grep -q '^#SBATCH --mem=500M$' "$sweep/sweep.sbatch" || fail "sweep.sbatch lacks the memory"
job=$(cat "$sweep/slurm-job-id")
echo "slurm-e2e: submitted job $job, waiting (at most ${timeout_s}s)"
job_gone() { [ -z "$(squeue -h -j "$job" 2>/dev/null)" ]; }
wait_for "$timeout_s" "job $job to finish (squeue: $(squeue -h 2>&1 | head -n 3))" job_gone

# A plain rerun collects (the array job owns the runs); then --collect.
"$work/flatmin" "${args[@]}"
"$work/flatmin" "${args[@]}" --collect --quiet
json="$sweep/sweep.json"
[ "$(grep -c '"status": "done"' "$json")" -eq 4 ] || { cat "$json"; fail "sweep.json does not have 4 done runs"; }
[ "$(grep -c '"runs": 2,' "$json")" -eq 2 ] || { cat "$json"; fail "sweep.json's summary does not have 2 rows of 2 runs"; }
for i in 0 1 2 3; do
	d=$(ls -d "$sweep"/runs/000"$i"-*)
	grep -q '"stop_reason": "\(steps\|converged\)"' "$d/summary.json" || fail "$d did not finish"
	ls "$sweep"/slurm/"${job}_$i".out >/dev/null || fail "no Slurm log of task $i"
done
# Every seed's runs start from the same Θ₀.
cmp -s "$sweep"/runs/0000-*/theta0.npy "$sweep"/runs/0002-*/theta0.npy || fail "seed 1's runs start from different Θ₀"
# A task out of range is refused with status 2.
set +e
"$work/flatmin" "${args[@]}" --task 4 2>/dev/null
st=$?
set -e
[ "$st" -eq 2 ] || fail "--task 4 of 4 runs: exit status $st, want 2"

ok=1
echo "slurm-e2e: PASS in $(($(date +%s) - start)) s"
