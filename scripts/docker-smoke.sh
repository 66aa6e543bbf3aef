#!/usr/bin/env bash
# Smoke test of the Docker image: build it from a clean checkout (the committed HEAD), run it
# with Fashion-MNIST mounted and a named volume for the run store, and exercise it:
# healthcheck, the dashboard page, a CLI training, a run through the job runner that must
# survive a container restart, and a non-root user. Everything it creates is removed, also on
# failure; a failing step exits non-zero with the step's name and the container's logs.
#
# Needs a Docker engine. Where no registry is reachable (this project's CI), set
# BN_SHARED_DIR to the folder holding docker/engine-up.sh and docker/local-base-image.sh
# (default: ../shared): they start an engine and build a stand-in python:3.11-slim.
set -uo pipefail
cd "$(dirname "$0")/.."
root=$PWD
shared=${BN_SHARED_DIR:-$root/../shared}
data=${BN_SMOKE_DATA:-/usr/share/datasets}       # holds fashion-mnist/ (Debian's package)
id=$$
tag="bn-lab-smoke:$id"
name="bn-lab-smoke-$id"
volume="bn-lab-smoke-runs-$id"
ctx=$(mktemp -d)
step="setup"

cleanup() {
  docker rm -f -v "$name" >/dev/null 2>&1  # -v: its anonymous volumes too
  docker volume rm -f "$volume" >/dev/null 2>&1
  docker image rm -f "$tag" >/dev/null 2>&1
  rm -rf "$ctx"
}
trap cleanup EXIT

fail() {
  echo "docker-smoke: FAILED at step '$step': $*" >&2
  if docker inspect "$name" >/dev/null 2>&1; then
    echo "---- container logs (last 60 lines) ----" >&2
    docker logs --tail 60 "$name" >&2 2>&1
  fi
  exit 1
}
begin() { step=$1; echo "docker-smoke: $step"; }

wait_healthy() {
  local state=""
  for _ in $(seq 1 90); do
    state=$(docker inspect --format '{{.State.Health.Status}}' "$name" 2>/dev/null)
    [[ $state == healthy ]] && return 0
    [[ $(docker inspect --format '{{.State.Running}}' "$name" 2>/dev/null) == true ]] || break
    sleep 2
  done
  fail "container not healthy (health: ${state:-none})"
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

begin "clean checkout"
git -C "$root" archive --format=tar HEAD | tar -x -C "$ctx" || fail "git archive failed"

begin "build"
docker build -q -t "$tag" "$ctx" >/dev/null || fail "docker build failed"
size=$(docker image inspect --format '{{.Size}}' "$tag")
echo "docker-smoke: image size $((size / 1024 / 1024)) MiB"

begin "run"
[[ -d $data/fashion-mnist ]] || fail "$data/fashion-mnist missing (apt-get install dataset-fashion-mnist)"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
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

echo "docker-smoke: all steps passed (image $((size / 1024 / 1024)) MiB)"
