#!/usr/bin/env node
// A reference: the same join veto as veto-app.js written on bare @grpc/grpc-js +
// @grpc/proto-loader (no SDK: no contexts, no conversions, no timers), answering every HookCall
// at once. The SDK spoke the app stream through grpc-js until 2026-12-04; this shows what that
// stack costs. Same line protocol as veto-app.js (`ready`, `cpu` -> `cpu <µs>`).
//
// Usage: node bench/bare-app.js --endpoint http://127.0.0.1:50051 [--app-id veto-00]
'use strict';

const path = require('node:path');
const readline = require('node:readline');
const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');

function arg(name, fallback) {
  const i = process.argv.indexOf(name);
  return i >= 0 && i + 1 < process.argv.length ? process.argv[i + 1] : fallback;
}

const root = path.join(__dirname, '..', 'proto');
const def = protoLoader.loadSync(['roomhooks/v1/app_runtime.proto'], {
  includeDirs: [root], longs: String, enums: String, defaults: true, oneofs: true,
});
const { AppRuntime } = grpc.loadPackageDefinition(def).roomhooks.v1;
const endpoint = new URL(arg('--endpoint', 'http://127.0.0.1:50051'));
const client = new AppRuntime(endpoint.host, grpc.credentials.createInsecure(), { 'grpc.enable_retries': 0 });
const stream = client.Connect();
stream.on('error', () => {});
stream.on('data', (m) => {
  switch (m.msg) {
    case 'registered': console.log('ready'); break;
    case 'heartbeat': stream.write({ heartbeatAck: { nonce: m.heartbeat.nonce } }); break;
    case 'call': stream.write({ result: { callId: m.call.callId, decision: { prevent: false, message: '' } } }); break;
    default: break;
  }
});
stream.write({ register: { appId: arg('--app-id', 'veto-00'), version: '0', interfaces: ['HOOK_INTERFACE_PRE_ROOM_USER_JOINED'] } });

const lines = readline.createInterface({ input: process.stdin });
lines.on('line', (line) => {
  if (line.trim() === 'cpu') {
    const { user, system } = process.cpuUsage();
    console.log(`cpu ${user + system}`);
  }
});
lines.on('close', () => process.exit(0));
