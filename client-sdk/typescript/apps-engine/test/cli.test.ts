// The command line: its essentials output and its exit codes for what it cannot run.

import { strict as assert } from 'node:assert';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { PKG_DIR, packApp, tempDir } from './support';

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
