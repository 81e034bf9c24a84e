#!/usr/bin/env node
// The TypeScript SDK's side of roomhooks-bench's "PreRoomUserJoin veto, 1 TypeScript SDK app"
// row: one veto app (answers every join with "allowed", as the Rust bench's synthetic veto app
// does) on its own connection, run from the built package (npm run build first).
//
// Usage: node bench/veto-app.js --endpoint http://127.0.0.1:50051 [--app-id veto-ts-00]
// Line protocol (the bench's child protocol): prints `ready` once registered; answers each
// `cpu` line on stdin with `cpu <µs>` (this process's user + system CPU time so far); stops when
// stdin closes.
'use strict';

const readline = require('node:readline');
const { app, silentLogger } = require('..');

function arg(name, fallback) {
  const i = process.argv.indexOf(name);
  return i >= 0 && i + 1 < process.argv.length ? process.argv[i + 1] : fallback;
}

const veto = app({ appId: arg('--app-id', 'veto-ts-00'), logger: silentLogger, stopOnSignals: false })
  .preRoomUserJoined(() => {});

veto.start(arg('--endpoint', 'http://127.0.0.1:50051'));
veto.registered().then(
  () => console.log('ready'),
  (err) => {
    console.error(`veto-app: ${err.message}`);
    process.exit(1);
  },
);

const lines = readline.createInterface({ input: process.stdin });
lines.on('line', (line) => {
  if (line.trim() === 'cpu') {
    const { user, system } = process.cpuUsage();
    console.log(`cpu ${user + system}`);
  }
});
lines.on('close', () => {
  veto.stop().then(() => process.exit(0));
});
