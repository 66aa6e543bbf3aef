#!/usr/bin/env bash
# The image's entrypoint (after tini): decides the container's role, then runs it.
#
#   (default)       the CMD as given: `streamlit run app.py`, or any command (`bn-lab runs`).
#                   Nothing starts Ray.
#   dashboard as a Ray head
#                   BN_LAB_RAY_HEAD=1: `ray start --head` here (no CPUs of its own: runs go to
#                   the workers; the run store and the dataset files stay on this container),
#                   then RAY_ADDRESS points at it and the CMD runs.
#                   BN_LAB_RAY_HEAD=auto (what docker-compose.yml sets): the same, but only when
#                   a `ray-worker` container is on this container's Docker network, i.e. the
#                   compose `cluster` profile is up; otherwise exactly the default.
#   ray-worker      `ray start --address=$RAY_HEAD:6379 --block` once the head answers; the
#                   container lives as long as its Ray node. No store, no dataset files.
#   health          the HEALTHCHECK: the dashboard's /_stcore/health, or a worker's raylet.
#
# Settings (environment): BN_LAB_RAY_HEAD (0 | 1 | auto; default 0), BN_LAB_RAY_WAIT (seconds
# `auto` looks for a worker, default 10), RAY_HEAD (the head's host name, default bn-lab),
# BN_LAB_WORKER_CPUS (CPUs a worker offers, default: all it sees), BN_LAB_WORKER_GPUS,
# BN_LAB_RAY_ARGS (more `ray start` options for any node, e.g. fixed ports for a firewall:
# docs/CLUSTER.md). Ray's own variables (RAY_AUTH_MODE, RAY_AUTH_TOKEN, ...) pass through.
set -euo pipefail

ROLE_FILE=/tmp/bn-lab-role  # what `health` checks: written once the role is known
PORT=6379                   # Ray's GCS port on the head (Ray's default)
WORKER_SERVICE=ray-worker   # the compose service name of the workers

log() { echo "bn-lab entrypoint: $*" >&2; }

# The name resolves through Docker's embedded DNS (127.0.0.11) only on a compose or other
# user-defined network; checking the resolver first keeps `auto` from ever asking the host's
# DNS about a machine called "ray-worker" (a plain `docker run` is on the default bridge).
worker_on_network() {
  grep -qs '^nameserver 127\.0\.0\.11$' /etc/resolv.conf || return 1
  local deadline=$((SECONDS + ${BN_LAB_RAY_WAIT:-10}))
  while ((SECONDS < deadline)); do
    timeout 2 getent hosts "$WORKER_SERVICE" >/dev/null 2>&1 && return 0
    sleep 1
  done
  return 1
}

# Ray keeps its object store in /dev/shm only when the store fits there, else it falls back to
# disk (/tmp, slower, with a warning); its default size is 30% of memory, more than Docker's
# shm usually holds. So: 90% of /dev/shm, at most 30% of memory (the cgroup's limit if lower);
# nothing (Ray's own choice) when /dev/shm is tiny (Docker's 64 MB default).
object_store_bytes() {
  local shm mem limit size
  shm=$(df -B1 --output=avail /dev/shm 2>/dev/null | tail -n 1) || return 0
  mem=$(($(awk '/^MemTotal:/ {print $2}' /proc/meminfo) * 1024))  # kB -> bytes
  limit=$(cat /sys/fs/cgroup/memory.max 2>/dev/null || echo max)
  [[ $limit =~ ^[0-9]+$ ]] && ((limit < mem)) && mem=$limit
  size=$((mem * 3 / 10))
  ((shm * 9 / 10 < size)) && size=$((shm * 9 / 10))
  ((size >= 256 * 1024 * 1024)) && echo "$size"
  return 0
}

# `ray start` options of every node (into the caller's `args`) ...
common_args() {
  local size
  args=(--disable-usage-stats)
  size=$(object_store_bytes)
  [[ -n $size ]] && args+=(--object-store-memory="$size")
  return 0
}

# ... and the user's, last: of an option given twice, `ray start` takes the last.
user_args() {
  local extra
  read -r -a extra <<<"${BN_LAB_RAY_ARGS:-}"
  args+=("${extra[@]}")
}

# The store and the dashboard stay here; the head offers 0 CPUs so that every run goes to a
# worker. Its ports stay on the container's network (compose publishes only Streamlit's).
start_head() {
  local args
  common_args
  args+=(--head --port="$PORT" --num-cpus=0 --dashboard-host=0.0.0.0)
  user_args
  log "starting a Ray head (port $PORT, 0 CPUs: runs go to the workers)"
  ray start "${args[@]}" >/tmp/bn-lab-ray-head.log 2>&1 || {
    cat /tmp/bn-lab-ray-head.log >&2
    log "ray start --head failed (its output is above)"
    exit 1
  }
  export RAY_ADDRESS="127.0.0.1:$PORT"
  log "Ray head up; RAY_ADDRESS=$RAY_ADDRESS"
}

# The head starts with this container's siblings, so its port may not answer yet: wait for it
# (bash's /dev/tcp, no extra tools), saying so every 30 s, then become a Ray node for good.
run_worker() {
  local head=${RAY_HEAD:-bn-lab} start=$SECONDS next=0 args
  common_args
  args+=(--address="$head:$PORT" --block)
  [[ -n ${BN_LAB_WORKER_CPUS:-} ]] && args+=(--num-cpus="$BN_LAB_WORKER_CPUS")
  [[ -n ${BN_LAB_WORKER_GPUS:-} ]] && args+=(--num-gpus="$BN_LAB_WORKER_GPUS")
  user_args
  echo worker >"$ROLE_FILE"
  until timeout 2 bash -c "exec 3<>/dev/tcp/$head/$PORT" 2>/dev/null; do
    if ((SECONDS - start >= next)); then
      log "waiting for the Ray head at $head:$PORT ($((SECONDS - start))s)"
      next=$((next + 30))
    fi
    sleep 1
  done
  log "joining the Ray cluster at $head:$PORT"
  exec ray start "${args[@]}"
}

# Healthy means: a worker's raylet runs; a dashboard answers on Streamlit's health URL. One
# line says why not (`docker inspect` shows it).
health() {
  if [[ $(cat "$ROLE_FILE" 2>/dev/null) == worker ]]; then
    exec python -c 'import psutil, sys
names = {p.info["name"] for p in psutil.process_iter(["name"])}
sys.exit(0 if "raylet" in names else "no raylet runs: this Ray node is down")'
  fi
  exec python -c "import sys, urllib.request as u
try:
    u.urlopen('http://127.0.0.1:${STREAMLIT_SERVER_PORT:-8501}/_stcore/health', timeout=4)
except OSError as exc:
    sys.exit(f'the dashboard does not answer: {exc}')"
}

case "${1:-}" in
  ray-worker) run_worker ;;
  health) health ;;
esac

echo dashboard >"$ROLE_FILE"
case "${BN_LAB_RAY_HEAD:-0}" in
  1 | true | yes) start_head ;;
  auto)
    if worker_on_network; then
      start_head
    else
      log "no $WORKER_SERVICE on this network: Ray not started (runs train in this container)"
    fi
    ;;
  0 | false | no | "") ;;
  *)
    log "BN_LAB_RAY_HEAD=${BN_LAB_RAY_HEAD} is not 0, 1 or auto: fix or unset it"
    exit 2
    ;;
esac
exec "$@"
