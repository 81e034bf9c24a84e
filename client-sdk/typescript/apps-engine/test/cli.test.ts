// The command line: its essentials output, its exit codes for what it cannot run, and --token.

import { strict as assert } from 'node:assert';
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { PKG_DIR, packApp, startSidecar, tempDir, waitFor } from './support';

const CLI = path.join(PKG_DIR, 'dist', 'cli.js');
const run = (...args: string[]) => spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', env: { ...process.env, ROOMHOOKS_APPS_ENGINE_LOG: 'off' } });

test('`essentials` prints the sidecar config lines for app.json essentials', () => {
  const zip = packApp('word-filter', { id: 'wf-essential', essentials: ['IPreRoomCreatePrevent'] });
  const out = run('essentials', zip);
  assert.equal(out.status, 0);
  assert.equal(out.stdout, '[apps.wf-essential]\nessential_hooks = ["PreRoomCreatePrevent"]\n');
});

test('`run` exits 1 with the reason for a package it cannot load', () => {
  const out = run('run', packApp('word-filter', { requiredApiVersion: '^9.0.0' }), '--data-dir', tempDir('data'), '--sidecar', 'http://127.0.0.1:1');
  assert.equal(out.status, 1);
  assert.match(out.stderr, /requires Apps-Engine \^9\.0\.0/);
});

test('`run` exits 3 when onEnable returns false, without registering', () => {
  const settings = path.join(tempDir('settings'), 'settings.json');
  fs.writeFileSync(settings, JSON.stringify({ settings: { enabled: false } }));
  const out = run('run', packApp('word-filter'), '--settings', settings, '--data-dir', tempDir('data'), '--sidecar', 'http://127.0.0.1:1');
  assert.equal(out.status, 3);
});

test('`run` exits 2 for an unknown flag, naming it', () => {
  const out = run('run', packApp('word-filter'), '--colour', 'blue');
  assert.equal(out.status, 2);
  assert.match(out.stderr, /unknown flag "--colour"/);
});

test('`run --token` registers with a sidecar that requires the app token, and exits 1 with the refusal without it', async () => {
  const id = '4c4a8c63-3b0f-4d3e-9a53-6f7d1f0e0a01';
  const sidecar = await startSidecar(['--app-token', `${id}=s3cret`]);
  try {
    const zip = packApp('word-filter');
    const refused = spawnSync(process.execPath, [CLI, 'run', zip, '--data-dir', tempDir('data'), '--sidecar', sidecar.endpoint], {
      encoding: 'utf8',
      env: { ...process.env, ROOMHOOKS_APPS_ENGINE_LOG: 'off' },
      timeout: 20_000,
    });
    assert.equal(refused.status, 1);
    assert.match(refused.stderr, /refused/);
    const proc = spawn(process.execPath, [CLI, 'run', zip, '--data-dir', tempDir('data'), '--sidecar', sidecar.endpoint, '--token', 's3cret'], { stdio: 'ignore' });
    try {
      await waitFor(async () => (await sidecar.instances(id)).length === 1, 'the app to register with its token');
    } finally {
      const exited = new Promise((resolve) => proc.once('exit', resolve));
      proc.kill('SIGTERM');
      await exited;
    }
  } finally {
    await sidecar.stop();
  }
});
