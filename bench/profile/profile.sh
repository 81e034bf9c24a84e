#!/usr/bin/env bash
# Profiles one scenario outside the benchmark: the hop (sidecar or relay), its peer (apps or
# echo) and `roomhooks-bench drive` as the load generator, with a profiler bracketing only the
# measured calls.
#
#   bench/profile/profile.sh SCENARIO APPS CALLS IN_FLIGHT TOOL
#     SCENARIO   floor | unary | join | create | post | post-batch (PostEvents, 100 per call)
#     APPS       apps connected to the sidecar (ignored for floor/unary)
#     CALLS      measured calls (after CALLS/4 unmeasured warm-up calls)
#     IN_FLIGHT  calls in flight (1 = sequential)
#     TOOL       hop   - the sidecar or relay runs under callgrind: instructions per call
#                peer  - the apps or echo process runs under callgrind: instructions per call
#                perf  - everything native, `perf record -e cpu-clock` on the hop and its peer
#                        during the calls: samples (1 ms of CPU each) per process and where they
#                        fell (the binary, libc, the kernel); no hardware counters needed
#                cpu   - everything native: CPU time (user + system, all threads) per call of the
#                        hop, its peer and the load generator, from /proc and bash's `times`;
#                        with the calls/s, it says whether the run is bound by CPU or by waiting
#                syscalls - everything native, `perf stat` on the hop during the calls: its
#                        write / writev / recvfrom / epoll_wait syscalls per call (counts, so
#                        they hold on a noisy machine; callgrind does not see syscalls)
#
# callgrind counts are deterministic, so they hold on a busy or virtualised machine. Needs
# Set SETTLE=N to keep profiling N seconds after the last call (post event delivery), and
# SHARED_CONNECTION=1 to put all the apps on one connection (`apps --shared-connection`).
# `cargo build --release --bin roomhooks --bin roomhooks-bench`, valgrind and linux-perf. Leaves
# the profiles in $OUT (default /tmp/roomhooks-profile) for callgrind_annotate / perf report.
set -euo pipefail
scenario=$1 apps=$2 calls=$3 in_flight=$4 which=$5
root=$(cd "$(dirname "$0")/../.." && pwd)
bin=$root/target/release
out=${OUT:-/tmp/roomhooks-profile}
mkdir -p "$out"
tag=$scenario-$apps-$which
rm -f "$out/$tag".* "$out/hold-$tag"
vg=(valgrind --tool=callgrind --callgrind-out-file="$out/$tag.%p.out")
pids=()
peer=
data=
cleanup() {
  exec 3>&- || true
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  if [ -n "$data" ]; then sleep 0.5; rm -rf "$data"; fi
}
trap cleanup EXIT
mkfifo "$out/hold-$tag"
hop_wrap=() peer_wrap=()
case $which in
  hop) hop_wrap=("${vg[@]}") ;;
  peer) peer_wrap=("${vg[@]}") ;;
  perf|syscalls|cpu) ;;
  *) echo "unknown tool $which" >&2; exit 2 ;;
esac

case $scenario in
  floor|unary)
    "${hop_wrap[@]}" "$bin/roomhooks-bench" relay < "$out/hold-$tag" > "$out/$tag.hop.stdout" 2>/dev/null &
    hop=$!; pids+=($hop)
    exec 3>"$out/hold-$tag"
    until grep -q listening "$out/$tag.hop.stdout" 2>/dev/null; do sleep 0.2; done
    endpoint=http://$(awk '/listening/ {print $2}' "$out/$tag.hop.stdout")
    if [ "$scenario" = floor ]; then
      "${peer_wrap[@]}" "$bin/roomhooks-bench" echo --endpoint "$endpoint" < "$out/hold-$tag" > "$out/$tag.peer.stdout" 2>/dev/null &
      peer=$!; pids+=($peer)
      until grep -q ready "$out/$tag.peer.stdout" 2>/dev/null; do sleep 0.2; done
    fi
    ;;
  join|create|post|post-batch)
    kind=$(case $scenario in join) echo veto ;; post-batch) echo post ;; *) echo "$scenario" ;; esac)
    peer=
    # A fresh data dir per run: the sidecar remembers apps across restarts, and apps left over
    # from an earlier run would take part in every call as unavailable apps.
    data=$(mktemp -d)
    "${hop_wrap[@]}" "${SIDECAR_BIN:-$bin/roomhooks}" --listen 127.0.0.1:0 --log-format json \
      --metrics-listen off --data-dir "$data" 2> "$out/$tag.hop.log" &
    hop=$!; pids+=($hop)
    until grep -q local_addr "$out/$tag.hop.log" 2>/dev/null; do sleep 0.2; done
    endpoint=http://$(sed -n 's/.*"local_addr":"\([^"]*\)".*/\1/p' "$out/$tag.hop.log" | head -1)
    "${peer_wrap[@]}" "$bin/roomhooks-bench" apps --endpoint "$endpoint" --kind "$kind" --apps "$apps" ${SHARED_CONNECTION:+--shared-connection} < "$out/hold-$tag" > "$out/$tag.peer.stdout" 2>/dev/null &
    peer=$!; pids+=($peer)
    exec 3>"$out/hold-$tag"
    until grep -q ready "$out/$tag.peer.stdout" 2>/dev/null; do sleep 0.2; done
    ;;
  *) echo "unknown scenario $scenario" >&2; exit 2 ;;
esac
drive=("$bin/roomhooks-bench" drive --endpoint "$endpoint" --call "$scenario" --apps "$apps" --in-flight "$in_flight")
"${drive[@]}" --calls $((calls / 4)) > /dev/null
if [ "$which" = syscalls ]; then
  events=syscalls:sys_enter_write,syscalls:sys_enter_writev,syscalls:sys_enter_recvfrom,syscalls:sys_enter_epoll_wait
  perf stat -x, -e "$events" -p "$hop" -o "$out/$tag.stat" -- "${drive[@]}" --calls "$calls" > "$out/$tag.drive"
  echo "$tag in_flight=$in_flight: $(cat "$out/$tag.drive")"
  echo "syscalls of the hop per call:"
  awk -F, -v calls="$calls" '$3 ~ /sys_enter_/ {name = $3; sub(/.*sys_enter_/, "", name); printf "  %-10s %8.2f\n", name, $1 / calls}' "$out/$tag.stat"
  exit 0
fi
if [ "$which" = cpu ]; then
  ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
  hz=$(getconf CLK_TCK)
  h0=$(ticks "$hop") p0=$([ -n "$peer" ] && ticks "$peer" || echo 0)
  # `times` in the subshell prints the drive's user and system time (its only child).
  load=$( ("${drive[@]}" --calls "$calls" > "$out/$tag.drive"; times) | tail -1)
  h1=$(ticks "$hop") p1=$([ -n "$peer" ] && ticks "$peer" || echo 0)
  echo "$tag in_flight=$in_flight: $(cat "$out/$tag.drive")"
  echo "$load" | awk -v calls="$calls" -v hz="$hz" -v hop=$((h1 - h0)) -v peer=$((p1 - p0)) '
    function secs(t,  m) { m = t; sub(/m.*/, "", m); sub(/^[0-9]+m/, "", t); sub(/s$/, "", t); return m * 60 + t }
    { load = secs($1) + secs($2)
      printf "CPU µs per call: hop %.1f  peer %.1f  load generator %.1f  total %.1f\n",
        hop / hz / calls * 1e6, peer / hz / calls * 1e6, load / calls * 1e6,
        (hop + peer) / hz / calls * 1e6 + load / calls * 1e6 }'
  exit 0
fi
if [ "$which" = perf ]; then
  perf record -e cpu-clock -F 1000 ${PERF_CALLGRAPH:+--call-graph dwarf,32768} -p "$hop${peer:+,$peer}" -o "$out/$tag.perf.data" \
    -- bash -c '"$@" > "$0" 2>/dev/null; sleep "${SETTLE:-0}"' "$out/$tag.drive" "${drive[@]}" --calls "$calls"
  echo "$tag in_flight=$in_flight: $(cat "$out/$tag.drive") (hop pid $hop, peer pid ${peer:-none})"
  echo "CPU samples (1 ms each) by process and where they fell:"
  perf report -i "$out/$tag.perf.data" --stdio -n --sort pid,dso 2>/dev/null | grep -v '^#' | grep -v '^$' | head -12
  exit 0
fi
profiled=$([ "$which" = hop ] && echo "$hop" || echo "$peer")
callgrind_control -z "$profiled" > /dev/null 2>&1
"${drive[@]}" --calls "$calls" > /dev/null
# Post events are delivered after the calls return: SETTLE seconds let the delivery finish
# inside the profile.
sleep "${SETTLE:-0}"
callgrind_control -d "$profiled" > /dev/null 2>&1
sleep 1
file=$(ls -t "$out/$tag.$profiled.out".* | head -1)
total=$(callgrind_annotate "$file" 2>/dev/null | awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1}')
echo "$tag in_flight=$in_flight: $((total / calls)) instructions per call ($total for $calls calls) -> $file"
