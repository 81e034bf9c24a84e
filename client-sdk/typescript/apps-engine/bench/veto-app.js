#!/usr/bin/env node
// roomhooks-bench's child for the "PreRoomUserJoin veto, 1 app (Apps-Engine runner, Node)" row
// (bench/src/node_app.rs), beside the TypeScript SDK's row and the Rust SDK's in the same run: the
// word filter test app (test/apps/word-filter, compiled by `npm run pretest`; it allows every user
// the bench sends, like the other rows' veto apps) packaged as an rc-apps zip with app.json `id` =
// --app-id, loaded and registered by AppsEngineRunner. Same line protocol as
// client-sdk/typescript/bench/veto-app.js (the TypeScript SDK's). The bench leaves the row out,
// saying why, when this package, the SDK or the compiled test app is not built;
// ROOMHOOKS_AE_BENCH_APP points the row at another script.
//
// Usage: node bench/veto-app.js --endpoint http://127.0.0.1:50051 [--app-id veto-00]
// Prints `ready` once registered; answers each `cpu` line on stdin with `cpu <µs>`; stops when
// stdin closes.
'use strict';

const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const readline = require('node:readline');
const AdmZip = require('adm-zip');
const { AppsEngineRunner } = require('..');

function arg(name, fallback) {
  const i = process.argv.indexOf(name);
  return i >= 0 && i + 1 < process.argv.length ? process.argv[i + 1] : fallback;
}

const source = path.join(__dirname, '..', 'test', 'apps', 'word-filter');
const compiled = path.join(__dirname, '..', 'build-test', 'test', 'apps', 'word-filter', 'WordFilterApp.js');
if (!fs.existsSync(compiled)) {
  console.error(`veto-app: ${compiled} is missing: run \`npm run pretest\` in client-sdk/typescript/apps-engine`);
  process.exit(1);
}
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'rhae-bench-'));
const info = { ...JSON.parse(fs.readFileSync(path.join(source, 'app.json'), 'utf8')), id: arg('--app-id', 'veto-00') };
const zip = new AdmZip();
zip.addFile('app.json', Buffer.from(JSON.stringify(info)));
zip.addLocalFile(compiled);
zip.addLocalFolder(path.join(source, 'i18n'), 'i18n');
const zipFile = path.join(tmp, 'word-filter_1.0.0.zip');
zip.writeZip(zipFile);

async function main() {
  const runner = await AppsEngineRunner.open(zipFile, { dataDir: path.join(tmp, 'data'), stopOnSignals: false, log: () => {} });
  runner.start(arg('--endpoint', 'http://127.0.0.1:50051'));
  await runner.registered();
  console.log('ready');
  const lines = readline.createInterface({ input: process.stdin });
  lines.on('line', (line) => {
    if (line.trim() === 'cpu') {
      const { user, system } = process.cpuUsage();
      console.log(`cpu ${user + system}`);
    }
  });
  lines.on('close', () => {
    runner.stop().then(() => {
      fs.rmSync(tmp, { recursive: true, force: true });
      process.exit(0);
    });
  });
}

main().catch((err) => {
  console.error(`veto-app: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
});
