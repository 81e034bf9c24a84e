#!/usr/bin/env bash
# Everything CI needs for the Apps-Engine compatibility runner (npm package roomhooks-apps-engine),
# from a clean clone:
#
#   1. cargo build --release: the `roomhooks` sidecar and the Rust SDK's `modifier`, `word_filter`
#      and `extender` examples (the tests run them as child processes; skipped when ROOMHOOKS_BIN
#      and ROOMHOOKS_RUST_MODIFIER point at existing binaries and the other two examples are
#      beside the modifier);
#   2. the TypeScript SDK it depends on (`"roomhooks-sdk": "file:.."`): npm ci && npm run build in
#      client-sdk/typescript, and its test harness (tsc -p tsconfig.test.json), which these tests
#      import to start the sidecar;
#   3. npm ci && npm run build here (better-sqlite3 compiles its native module when no prebuilt
#      binary can be downloaded: a few minutes on a busy machine);
#   4. npm test: node's built-in test runner (TAP), against the real sidecar on 127.0.0.1:0. The
#      test set-up packages the test apps (test/apps/*) into rc-apps-style zips.
#
# Exits non-zero on any failure; the last lines are the runner's summary (# pass N / # fail N).
# Needs cargo, node >= 20 and npm; nothing else (no protoc, no rc-apps CLI).
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
sdk="$(cd "$here/.." && pwd)"
root="$(cd "$sdk/../.." && pwd)"
started=$SECONDS

step() { printf '\n== %s\n' "$*"; }

examples="$(dirname "${ROOMHOOKS_RUST_MODIFIER:-.}")"
if [[ -n "${ROOMHOOKS_BIN:-}" && -x "${ROOMHOOKS_BIN}" && -n "${ROOMHOOKS_RUST_MODIFIER:-}" && -x "${ROOMHOOKS_RUST_MODIFIER}" &&
  -x "$examples/word_filter" && -x "$examples/extender" ]]; then
  step "using ROOMHOOKS_BIN=$ROOMHOOKS_BIN and ROOMHOOKS_RUST_MODIFIER=$ROOMHOOKS_RUST_MODIFIER (word_filter and extender beside it)"
else
  step "cargo build --release (the roomhooks sidecar and the Rust modifier, word_filter and extender examples)"
  (cd "$root" && cargo build --release --locked -p roomhooks-server -p roomhooks-sdk --bin roomhooks \
    --example modifier --example word_filter --example extender)
  target="$(cd "$root" && cargo metadata --format-version 1 --no-deps |
    node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.parse(s).target_directory))')"
  export ROOMHOOKS_BIN="$target/release/roomhooks"
  export ROOMHOOKS_RUST_MODIFIER="$target/release/examples/modifier"
fi

step "client-sdk/typescript: npm ci && npm run build, and its test harness"
(cd "$sdk" && npm ci --no-audit --no-fund --loglevel=error && npm run build --silent && npx tsc -p tsconfig.test.json)

step "client-sdk/typescript/apps-engine: npm ci && npm run build"
(cd "$here" && npm ci --no-audit --no-fund --loglevel=error && npm run build --silent)

step "npm test (built in $((SECONDS - started)) s; node $(node --version))"
cd "$here"
npm test --silent
