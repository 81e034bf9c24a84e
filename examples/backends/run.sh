#!/usr/bin/env bash
# Runs the Python and Node.js example backends against a real sidecar with the four example apps.
#
# Builds the `roomhooks` binary and the SDK examples, starts the sidecar on a free port (read from
# its JSON log), starts word_filter, extender, modifier and audit_logger against it, installs the
# backends' dependencies (a venv under the cargo target dir, `npm ci`), waits until the apps are
# connected, then runs both backends and checks that each printed the sample output shown in
# examples/backends/README.md (check_sample.py). Exits non-zero when any backend's check or the
# sample check fails. Every child is stopped on exit; logs are kept under <target>/polyglot-logs/.
#
# Needs only cargo, python3 (with venv and pip) and node/npm.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
cd "$root"
started=$SECONDS

pids=()
cleanup() {
  local status=$?
  trap - EXIT
  for pid in "${pids[@]}"; do
    kill "$pid" 2>/dev/null || true
  done
  # Bounded: the sidecar drains for up to its --drain-timeout; give everyone 5 s, then SIGKILL.
  for _ in $(seq 50); do
    local alive=0
    for pid in "${pids[@]}"; do
      if kill -0 "$pid" 2>/dev/null; then alive=1; fi
    done
    [[ $alive == 0 ]] && break
    sleep 0.1
  done
  for pid in "${pids[@]}"; do
    kill -9 "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  if [[ $status != 0 && -n "${logs:-}" ]]; then
    echo "run.sh: failed (exit $status); the last log lines:" >&2
    for log in "$logs"/*.log; do
      echo "--- $log" >&2
      tail -n 15 "$log" >&2 || true
    done
  fi
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

step() { printf '\n== %s\n' "$*"; }

step "cargo build (the roomhooks binary and the SDK examples)"
cargo build --locked -p roomhooks-server -p roomhooks-sdk --bin roomhooks --examples
target="$(cargo metadata --format-version 1 --no-deps |
  python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')"
bin="$target/debug"
logs="$target/polyglot-logs"
mkdir -p "$logs"
rm -f "$logs"/*.log
rm -rf "$logs/sidecar-data" # a fresh store each run: no apps remembered from an earlier one

step "start the sidecar on a free port"
"$bin/roomhooks" --listen 127.0.0.1:0 --log-format json --metrics-listen off --data-dir "$logs/sidecar-data" 2>"$logs/sidecar.log" >/dev/null &
pids+=($!)
addr=""
for _ in $(seq 300); do # at most 30 s
  addr="$(grep -o '"local_addr":"[^"]*"' "$logs/sidecar.log" | head -n 1 | cut -d'"' -f4 || true)"
  [[ -n "$addr" ]] && break
  kill -0 "${pids[0]}" 2>/dev/null || { echo "the sidecar exited at start" >&2; exit 1; }
  sleep 0.1
done
[[ -n "$addr" ]] || { echo "the sidecar did not log its address within 30 s" >&2; exit 1; }
echo "sidecar listening on $addr"
export ROOMHOOKS_ADDR="$addr"

step "start the four example apps"
for app in word_filter extender modifier audit_logger; do
  "$bin/examples/$app" "http://$addr" >"$logs/$app.log" 2>&1 &
  pids+=($!)
  echo "$app (pid $!)"
done

step "python: venv and requirements"
venv="$target/polyglot-venv"
[[ -x "$venv/bin/python" ]] || python3 -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$here/python/requirements.txt"

step "node: npm ci"
(cd "$here/node" && npm ci --no-audit --no-fund --loglevel=error)

step "wait until Admin.ListApps shows the four apps connected"
"$venv/bin/python" "$here/python/backend.py" "$addr" --wait-for-apps 60 --only-wait

failed=0
step "python backend"
"$venv/bin/python" "$here/python/backend.py" "$addr" | tee "$logs/python-backend.out" || failed=1
step "node backend"
node "$here/node/backend.js" "$addr" | tee "$logs/node-backend.out" || failed=1

step "the README's sample output is what both backends printed"
python3 "$here/check_sample.py" "$here/README.md" "$logs/python-backend.out" "Sample output (Python" || failed=1
python3 "$here/check_sample.py" "$here/README.md" "$logs/node-backend.out" "Sample output (Node.js" || failed=1

step "what the audit logger printed"
grep '^audit ' "$logs/audit_logger.log" || true

if [[ $failed != 0 ]]; then
  echo "run.sh: a backend check or the README sample check failed" >&2
  exit 1
fi
echo "run.sh: both backends passed and printed the README's sample, in $((SECONDS - started)) s"
