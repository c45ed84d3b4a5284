#!/usr/bin/env bash
# A one-node SLURM cluster on this machine, to try cnnexp's SLURM path (and for its tests).
#
#   scripts/local-slurm.sh start     # munge, slurmctld and slurmd under .slurm/ (git-ignored)
#   export SLURM_CONF=$PWD/.slurm/slurm.conf   # then sbatch, squeue, scontrol and cnnexp use it
#   scripts/local-slurm.sh status
#   scripts/local-slurm.sh stop
#
# Installs nothing: it names the Debian packages when they are missing. Runs as root (slurmd
# starts jobs as their users), with proctrack/linuxproc and no cgroups, so it works in a container.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
STATE=${CNNEXP_SLURM_STATE:-$ROOT/.slurm}
CONF=$STATE/slurm.conf
SOCKET=$STATE/munge/munge.socket
HOST=$(hostname -s)

need() {
  local missing=()
  for cmd in munged slurmctld slurmd sbatch sinfo scontrol; do
    command -v "$cmd" >/dev/null 2>&1 || missing+=("$cmd")
  done
  if ((${#missing[@]})); then
    echo "local-slurm: not installed: ${missing[*]}. On Debian/Ubuntu, as root:" >&2
    echo "  apt-get update && apt-get install -y slurm-wlm munge" >&2
    exit 2
  fi
  if [[ $(id -u) != 0 ]]; then
    echo "local-slurm: run as root (slurmd starts each job as its user)" >&2
    exit 2
  fi
}

write_conf() {
  local cpus mem_mb
  cpus=$(nproc)
  mem_mb=$(awk '/MemTotal/ {print int($2 / 1024 * 0.9)}' /proc/meminfo)  # leave the system its share
  cat >"$CONF" <<EOF
# Written by scripts/local-slurm.sh for this host: one node, no accounting, no cgroups.
ClusterName=cnnexp
SlurmctldHost=$HOST(127.0.0.1)
SlurmUser=root
SlurmdUser=root
SlurmctldPort=16817
SlurmdPort=16818
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$SOCKET,cred_expire=10  # also how long a requeued job waits to start again
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/d
SlurmctldPidFile=$STATE/slurmctld.pid
SlurmdPidFile=$STATE/slurmd.pid
SlurmctldLogFile=$STATE/log/slurmctld.log
SlurmdLogFile=$STATE/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=2,bf_interval=2  # a requeued job starts again within seconds
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
MpiDefault=none
ReturnToService=2
JobRequeue=1
KillWait=10
MinJobAge=600
SlurmdTimeout=60
NodeName=$HOST NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem_mb State=UNKNOWN
PartitionName=debug Nodes=$HOST Default=YES MaxTime=INFINITE State=UP OverSubscribe=YES
EOF
}

running() {  # the pid in $1 is alive
  [[ -f $1 ]] && kill -0 "$(cat "$1" 2>/dev/null)" 2>/dev/null
}

start() {
  need
  mkdir -p "$STATE"/{munge,ctld,d,log}
  chmod 700 "$STATE/munge"
  if [[ ! -f $STATE/munge/munge.key ]]; then
    head -c 1024 /dev/urandom >"$STATE/munge/munge.key"
    chmod 400 "$STATE/munge/munge.key"
  fi
  write_conf
  export SLURM_CONF=$CONF
  running "$STATE/munge/munged.pid" || munged --force --key-file="$STATE/munge/munge.key" --socket="$SOCKET" \
    --pid-file="$STATE/munge/munged.pid" --log-file="$STATE/log/munged.log" --seed-file="$STATE/munge/munged.seed"
  running "$STATE/slurmctld.pid" || slurmctld -f "$CONF"
  running "$STATE/slurmd.pid" || slurmd -f "$CONF"
  for _ in $(seq 60); do  # until the node takes jobs
    if [[ $(sinfo -h -o %T 2>/dev/null) == idle* || $(sinfo -h -o %T 2>/dev/null) == mix* ]]; then
      echo "local-slurm: node $HOST idle ($(nproc) CPUs). Use it with: export SLURM_CONF=$CONF"
      return 0
    fi
    scontrol update nodename="$HOST" state=resume >/dev/null 2>&1 || true
    sleep 1
  done
  echo "local-slurm: the node did not become idle; see $STATE/log/" >&2
  sinfo >&2 || true
  exit 1
}

stop() {
  for pid in "$STATE/slurmd.pid" "$STATE/slurmctld.pid" "$STATE/munge/munged.pid"; do
    if running "$pid"; then
      kill "$(cat "$pid")"
      for _ in $(seq 50); do running "$pid" || break; sleep 0.2; done
    fi
    rm -f "$pid"
  done
  echo "local-slurm: stopped"
}

status() {
  if running "$STATE/slurmctld.pid"; then
    SLURM_CONF=$CONF sinfo
    SLURM_CONF=$CONF squeue
  else
    echo "local-slurm: not running (scripts/local-slurm.sh start)"
    return 3
  fi
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) status ;;
  *) echo "usage: scripts/local-slurm.sh start|stop|status" >&2; exit 2 ;;
esac
