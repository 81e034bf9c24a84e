#!/usr/bin/env node
// Generates the wire types from the repository's proto/ (run by `npm run build`).
//
// 1. Copies ../../proto/roomhooks/v1/*.proto into ./proto/ (the package loads them at run time,
//    so an installed package carries its own copy).
// 2. Runs @grpc/proto-loader's proto-loader-gen-types into src/generated/ with the same options
//    the SDK loads the protos with (src/wire.ts): camelCase fields, longs and enums as strings,
//    defaults filled in, oneofs named.
//
// Nothing generated is committed: every build regenerates it, so it cannot drift from proto/.
'use strict';

const fs = require('node:fs');
const path = require('node:path');
const { execFileSync } = require('node:child_process');

const pkg = path.resolve(__dirname, '..');
const repoProto = path.resolve(pkg, '..', '..', 'proto');
const ownProto = path.join(pkg, 'proto');
const rel = path.join('roomhooks', 'v1');

if (fs.existsSync(path.join(repoProto, rel))) {
  fs.rmSync(ownProto, { recursive: true, force: true });
  fs.mkdirSync(path.join(ownProto, rel), { recursive: true });
  for (const f of fs.readdirSync(path.join(repoProto, rel))) {
    if (f.endsWith('.proto')) fs.copyFileSync(path.join(repoProto, rel, f), path.join(ownProto, rel, f));
  }
} else if (!fs.existsSync(path.join(ownProto, rel))) {
  console.error(`generate: no protos at ${path.join(repoProto, rel)} nor ${path.join(ownProto, rel)}; ` +
    'build from a clone of the roomhooks repository (client-sdk/typescript)');
  process.exit(1);
}

const files = fs.readdirSync(path.join(ownProto, rel)).filter((f) => f.endsWith('.proto')).sort()
  .map((f) => `roomhooks/v1/${f}`);
const out = path.join(pkg, 'src', 'generated');
fs.rmSync(out, { recursive: true, force: true });
const bin = require.resolve('@grpc/proto-loader/build/bin/proto-loader-gen-types.js');
execFileSync(process.execPath, [bin,
  '--longs=String', '--enums=String', '--defaults', '--oneofs', '--grpcLib=@grpc/grpc-js',
  '--includeDirs', ownProto, '--outDir', out, ...files], { stdio: 'inherit' });
// room.proto has no service: its root file (a ProtoGrpcType nothing imports) only trips noUnusedLocals.
fs.rmSync(path.join(out, 'room.ts'), { force: true });
console.log(`generate: ${files.length} protos -> src/generated`);
