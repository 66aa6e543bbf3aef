#!/usr/bin/env bash
# Smoke test of the Docker image: build it from a clean checkout (the committed HEAD), run it
# with Fashion-MNIST mounted and a named volume for the run store, and exercise it:
# healthcheck, the dashboard page, a CLI training, a run through the job runner that must
# survive a container restart, and a non-root user. Then the compose cluster: the dashboard
# as a Ray head with 2 Ray workers (docker-compose.yml, profile `cluster`), 3 runs on it that
# must each have trained on a worker (both workers used, the one with the CLI training's seed
# reaching its accuracy). Everything it creates is removed, also on failure; a failing step
# exits non-zero with the step's name and the containers' logs. Each step's time is printed.
#
# Needs a Docker engine and Docker Compose (`docker compose`, else `docker-compose`; as root
# it installs Debian's docker-compose when neither is there). Where no registry is reachable
# (this project's CI), set BN_SHARED_DIR to the folder holding docker/engine-up.sh and
# docker/local-base-image.sh (default: ../shared): they start an engine and build a stand-in
# python:3.11-slim. BN_SMOKE_SOURCE=worktree builds the working tree (tracked files and new
# ones git does not ignore) instead of HEAD, to try changes before committing them.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
root=$PWD
shared=${BN_SHARED_DIR:-$root/../shared}
data=${BN_SMOKE_DATA:-/usr/share/datasets}       # holds fashion-mnist/ (Debian's package)
id=$$
tag="bn-lab-smoke:$id"
name="bn-lab-smoke-$id"
volume="bn-lab-smoke-runs-$id"
project="bn-lab-smoke-$id"                      # the compose cluster's project
ctx=$(mktemp -d)                                # the build context (and compose file)
work=$(mktemp -d)                               # the compose override, run outputs
step="setup"
watched=("$name")                               # containers whose logs a failure shows
compose_bin=()                                  # `docker compose` or `docker-compose`

cleanup() {
  if ((${#compose_bin[@]})); then  # the cluster: its containers, network, named volumes
    compose down -v --remove-orphans >/dev/null 2>&1
  fi
  docker rm -f -v "$name" >/dev/null 2>&1  # -v: its anonymous volumes too
  docker volume rm -f "$volume" >/dev/null 2>&1
  docker image rm -f "$tag" >/dev/null 2>&1
  rm -rf "$ctx" "$work"
}
trap cleanup EXIT

fail() {
  echo "docker-smoke: FAILED at step '$step': $*" >&2
  local container
  for container in "${watched[@]}"; do
    if docker inspect "$container" >/dev/null 2>&1; then
      echo "---- logs of $container (last 60 lines) ----" >&2
      docker logs --tail 60 "$container" >&2 2>&1
    fi
  done
  exit 1
}
began=$SECONDS
begin() {
  ((SECONDS > began)) && echo "docker-smoke:   ($step: $((SECONDS - began)) s)"
  step=$1 began=$SECONDS
  echo "docker-smoke: $step"
}

wait_healthy() {  # wait_healthy [CONTAINER]  (default: the single container)
  local container=${1:-$name} state=""
  for _ in $(seq 1 90); do
    state=$(docker inspect --format '{{.State.Health.Status}}' "$container" 2>/dev/null)
    [[ $state == healthy ]] && return 0
    [[ $(docker inspect --format '{{.State.Running}}' "$container" 2>/dev/null) == true ]] || break
    sleep 2
  done
  fail "container $container not healthy (health: ${state:-none})"
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# The cluster from the checkout's docker-compose.yml, with this test's image, a free loopback
# port, 1 CPU per worker (3 runs then need both workers) and the override (the dataset).
compose() {
  BN_LAB_IMAGE="$tag" BN_LAB_PORT="$cport" BN_LAB_WORKER_CPUS=1 "${compose_bin[@]}" \
    -p "$project" -f "$ctx/docker-compose.yml" -f "$work/override.yml" --profile cluster "$@"
}

json_field() {  # json_field FIELD < json  (stdlib only; prints the field's value)
  python3 -c 'import json,sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1"
}

begin "docker engine"
if ! docker info >/dev/null 2>&1; then
  [[ -x $shared/docker/engine-up.sh ]] || fail "no Docker engine and no $shared/docker/engine-up.sh"
  bash "$shared/docker/engine-up.sh" || fail "could not start a Docker engine"
fi

begin "base image"
if ! docker image inspect python:3.11-slim >/dev/null 2>&1 \
   && ! timeout 60 docker pull python:3.11-slim >/dev/null 2>&1; then
  [[ -x $shared/docker/local-base-image.sh ]] || fail "python:3.11-slim cannot be pulled"
  bash "$shared/docker/local-base-image.sh" || fail "could not build a stand-in base image"
fi

if [[ ${BN_SMOKE_SOURCE:-head} == worktree ]]; then
  begin "working tree (BN_SMOKE_SOURCE=worktree)"
  git -C "$root" ls-files -z --cached --others --exclude-standard \
    | (cd "$root" && while IFS= read -r -d '' f; do [[ -e $f ]] && printf '%s\0' "$f"; done) \
    | tar -C "$root" --null -T - -c | tar -x -C "$ctx" || fail "copying the working tree failed"
else
  begin "clean checkout"
  git -C "$root" archive --format=tar HEAD | tar -x -C "$ctx" || fail "git archive failed"
fi

begin "build"
docker build -q -t "$tag" "$ctx" >/dev/null || fail "docker build failed"
size=$(docker image inspect --format '{{.Size}}' "$tag")
echo "docker-smoke: image size $((size / 1024 / 1024)) MiB"

begin "run"
[[ -d $data/fashion-mnist ]] || fail "$data/fashion-mnist missing (apt-get install dataset-fashion-mnist)"
port=$(free_port)
docker volume create "$volume" >/dev/null || fail "volume create failed"
docker run -d --name "$name" -p "127.0.0.1:$port:8501" \
  -v "$volume:/data/runs" -v "$data:/datasets:ro" -e BN_DATA_DIR=/datasets \
  "$tag" >/dev/null || fail "docker run failed"

begin "healthcheck"
wait_healthy

begin "dashboard page"
# Whole bodies first: `curl | grep -q` fails under pipefail when grep exits before curl has
# written everything (curl: (23) Failed writing body), a race, not a broken page.
health=$(curl -fsS "http://127.0.0.1:$port/_stcore/health") || fail "/_stcore/health did not answer"
grep -qx "ok" <<<"$health" || fail "/_stcore/health is not ok"
page=$(curl -fsS "http://127.0.0.1:$port/") || fail "the dashboard page did not load"
grep -qi "<title>" <<<"$page" || fail "the dashboard page has no <title>"

begin "CLI training"
out=$(docker exec "$name" python -m bn_core train --variant lenet_fc_bn2 --dataset fashion_mnist \
  --epochs 1 --train-limit 3000 --val-size 1000 --json) || fail "CLI training exited non-zero"
status=$(json_field status <<<"$out") || fail "CLI output is not one JSON object: $out"
accuracy=$(json_field test_accuracy <<<"$out")
[[ $status == completed ]] || fail "CLI run status $status"
python3 -c "import sys; sys.exit(0 if float(sys.argv[1]) > 0.5 else 1)" "$accuracy" \
  || fail "CLI test accuracy $accuracy is not above 0.5"
echo "docker-smoke: CLI run completed, test accuracy $accuracy"

begin "job runner"
out=$(docker exec "$name" python -m bn_core submit --variant lenet --dataset fashion_mnist \
  --epochs 1 --train-limit 2000 --val-size 500 --wait --json) || fail "submit --wait failed: $out"
run_id=$(json_field id <<<"$out")
[[ $(json_field status <<<"$out") == completed ]] || fail "queued run did not complete: $out"

begin "restart keeps the run store"
docker restart "$name" >/dev/null || fail "docker restart failed"
wait_healthy
docker exec "$name" bn-lab runs --json | python3 -c '
import json, sys
rows = {r["id"]: r["status"] for r in json.load(sys.stdin)}
sys.exit(0 if rows.get(int(sys.argv[1])) == "completed" else 1)' "$run_id" \
  || fail "run $run_id is not listed as completed after the restart"

begin "non-root user"
uid=$(docker exec "$name" id -u) || fail "id failed"
[[ $uid != 0 ]] || fail "the container runs as root"

begin "compose cluster: the dashboard as Ray head, 2 workers"
docker rm -f -v "$name" >/dev/null 2>&1  # done with it: its CPU and memory go to the cluster
cport=$(free_port)
# Only the dashboard gets the dataset: workers receive it through Ray's object store.
cat >"$work/override.yml" <<YAML
services:
  bn-lab:
    volumes:
      - "$data:/datasets:ro"
    environment:
      BN_DATA_DIR: /datasets
YAML
if docker compose version >/dev/null 2>&1; then
  compose_bin=(docker compose)
elif command -v docker-compose >/dev/null 2>&1; then
  compose_bin=(docker-compose)
elif [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null 2>&1; then
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
      --no-install-recommends docker-compose; } >/dev/null 2>&1 \
    || fail "neither docker compose nor docker-compose, and apt-get could not install it"
  compose_bin=(docker-compose)
else
  fail "neither \`docker compose\` nor docker-compose is installed"
fi
echo "docker-smoke: using $("${compose_bin[@]}" version --short 2>/dev/null || echo "${compose_bin[*]}")"
compose up -d --no-build --scale ray-worker=2 >"$work/up.log" 2>&1 \
  || fail "compose up failed: $(tail -5 "$work/up.log")"
dash=$(compose ps -q bn-lab)
mapfile -t workers < <(compose ps -q ray-worker)
watched=("$dash" "${workers[@]}")
[[ -n $dash && ${#workers[@]} == 2 ]] || fail "expected 1 dashboard and 2 workers"
wait_healthy "$dash"

begin "Ray cluster: 3 nodes"
hosts=()
for worker in "${workers[@]}"; do
  hosts+=("$(docker inspect -f '{{.Config.Hostname}}' "$worker")")
  [[ -z $(docker exec "$worker" sh -c 'ls -d "$BN_LAB_HOME" /datasets 2>/dev/null') ]] \
    || fail "worker $worker can see a run store or the datasets"
done
dash_host=$(docker inspect -f '{{.Config.Hostname}}' "$dash")
nodes=""
deadline=$((SECONDS + 120))  # the workers join once the head answers: seconds, not minutes
while ((SECONDS < deadline)); do
  nodes=$(docker exec "$dash" python -c '
from bn_core.runs.execution.backends.ray_backend import RayBackend
nodes = [n for n in RayBackend("auto").info().nodes if n.alive]
print(" ".join(n.host + ":" + format(n.cpus, "g") + ("(head)" if n.head else "") for n in nodes))
' 2>/dev/null)
  [[ $(wc -w <<<"$nodes") == 3 ]] && break
  sleep 3
done
[[ $(wc -w <<<"$nodes") == 3 ]] || fail "the cluster has not 3 live nodes: ${nodes:-none}"
echo "docker-smoke: nodes (host:CPUs) $nodes"

begin "3 runs on the Ray cluster"
# Queued for Ray, then started by one long-lived runner (as the dashboard's is): a Ray run is
# relayed by the process that started it, so that process has to outlive the run.
# Seed 0 is the CLI training's run: on a worker it must reach the same accuracy (the same
# computation; only TensorFlow's thread count differs, hence a tolerance).
for seed in 0 1 2; do
  docker exec "$dash" python -m bn_core submit --backend ray --variant lenet_fc_bn2 \
    --dataset fashion_mnist --epochs 1 --train-limit 3000 --val-size 1000 --seed "$seed" \
    --json >"$work/ray-$seed.json" 2>&1 || fail "submit --backend ray: $(cat "$work/ray-$seed.json")"
done
docker exec -d "$dash" bn-lab runner || fail "could not start a runner in the dashboard"
deadline=$((SECONDS + 600))
until docker exec "$dash" bn-lab runs --json 2>/dev/null | python3 -c '
import json, sys
runs = [r for r in json.load(sys.stdin) if r["backend"] == "ray"]
sys.exit(0 if len(runs) == 3 and all(r["status"] not in ("queued", "starting", "running")
                                     for r in runs) else 1)'; do
  ((SECONDS < deadline)) || fail "the 3 Ray runs did not end within 600 s"
  sleep 3
done
docker exec "$dash" bn-lab runs --json >"$work/runs.json" || fail "bn-lab runs failed"
python3 - "$work/runs.json" "$accuracy" "$dash_host" "${hosts[@]}" <<'PY' \
  || fail "runs on the cluster"
import json, sys
path, local, head, workers = sys.argv[1], float(sys.argv[2]), sys.argv[3], set(sys.argv[4:])
runs = [r for r in json.load(open(path)) if r["backend"] == "ray"]
problems = [f"{len(runs)} Ray runs in the store, not 3"] if len(runs) != 3 else []
for r in runs:
    print(f"docker-smoke: run {r['id']}: {r['status']} on {r['node']}, test accuracy "
          f"{r['test_accuracy']}, {r['images_per_second']} images/s")
    if r["status"] != "completed":
        problems.append(f"run {r['id']} is {r['status']}")
    elif r["test_accuracy"] is None or r["test_accuracy"] <= 0.5:
        problems.append(f"run {r['id']}: test accuracy {r['test_accuracy']} is not above 0.5")
    elif r["seed"] == 0 and abs(r["test_accuracy"] - local) > 0.02:
        problems.append(f"run {r['id']} (seed 0): test accuracy {r['test_accuracy']} on Ray, "
                        f"{local} in the CLI training")
    if r["node"] not in workers:
        where = "the dashboard (head)" if r["node"] == head else repr(r["node"])
        problems.append(f"run {r['id']} ran on {where}, not on a worker")
if {r["node"] for r in runs} != workers:
    problems.append(f"not every worker ran a run: {sorted({r['node'] for r in runs})}")
if problems:
    sys.exit("; ".join(problems))
PY

begin "cluster down"
compose down -v --remove-orphans >/dev/null 2>&1 || fail "compose down failed"
compose_bin=()
begin "done"
echo "docker-smoke: all steps passed (image $((size / 1024 / 1024)) MiB)"
