#!/usr/bin/env node
// A second reference: the same join veto as bare-app.js with no gRPC library and no SDK — the
// app stream spoken directly over Node's built-in HTTP/2 client (nghttp2), gRPC's 5-byte
// framing by hand, and protobufjs's raw encode/decode (no object conversions). The SDK uses the
// same transport with proto-loader's codec and its own per-call work; the gap between the two
// is what those cost. Same line protocol as veto-app.js (`ready`, `cpu` -> `cpu <µs>`).
//
// Usage: node bench/http2-app.js --endpoint http://127.0.0.1:50051 [--app-id veto-00]
'use strict';

const http2 = require('node:http2');
const path = require('node:path');
const readline = require('node:readline');
const protobuf = require('protobufjs');

function arg(name, fallback) {
  const i = process.argv.indexOf(name);
  return i >= 0 && i + 1 < process.argv.length ? process.argv[i + 1] : fallback;
}

const root = new protobuf.Root();
root.resolvePath = (_origin, target) => path.join(__dirname, '..', 'proto', target);
root.loadSync('roomhooks/v1/app_runtime.proto', { keepCase: false });
const AppMessage = root.lookupType('roomhooks.v1.AppMessage');
const RuntimeMessage = root.lookupType('roomhooks.v1.RuntimeMessage');

/** One gRPC message: flag 0 (not compressed), 4-byte big-endian length, the bytes. */
function frame(message) {
  const body = AppMessage.encode(message).finish();
  const out = Buffer.allocUnsafe(5 + body.length);
  out[0] = 0;
  out.writeUInt32BE(body.length, 1);
  out.set(body, 5);
  return out;
}

const endpoint = arg('--endpoint', 'http://127.0.0.1:50051');
const session = http2.connect(endpoint);
session.on('error', (err) => {
  console.error(`http2-app: ${err.message}`);
  process.exit(1);
});
// Node sets TCP_NODELAY on HTTP/2 client sockets itself (and forbids touching the socket).
const stream = session.request({
  ':method': 'POST',
  ':path': '/roomhooks.v1.AppRuntime/Connect',
  'content-type': 'application/grpc',
  te: 'trailers',
});
stream.on('error', () => {});

let pending = Buffer.alloc(0);
stream.on('data', (chunk) => {
  pending = pending.length === 0 ? chunk : Buffer.concat([pending, chunk]);
  while (pending.length >= 5) {
    const length = pending.readUInt32BE(1);
    if (pending.length < 5 + length) break;
    const m = RuntimeMessage.decode(pending.subarray(5, 5 + length));
    pending = pending.subarray(5 + length);
    if (m.registered) console.log('ready');
    else if (m.heartbeat) stream.write(frame({ heartbeatAck: { nonce: m.heartbeat.nonce } }));
    else if (m.call) {
      stream.write(frame({ result: { callId: m.call.callId, decision: { prevent: false, message: '' } } }));
    }
  }
});
stream.write(frame({
  register: { appId: arg('--app-id', 'veto-00'), version: '0', interfaces: [7] }, // HOOK_INTERFACE_PRE_ROOM_USER_JOINED
}));

const lines = readline.createInterface({ input: process.stdin });
lines.on('line', (line) => {
  if (line.trim() === 'cpu') {
    const { user, system } = process.cpuUsage();
    console.log(`cpu ${user + system}`);
  }
});
lines.on('close', () => process.exit(0));
