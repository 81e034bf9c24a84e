// Loading a package as Apps-Engine does: zip or folder, app.json, requiredApiVersion, the require
// mapping to the real @rocket.chat/apps-engine, onEnable, implements cross-checked with methods.
// No sidecar needed.

import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { App } from '@rocket.chat/apps-engine/definition/App';
import { AppLoadError, AppsEngineRunner, ENGINE_VERSION, essentialsConfig } from '../src';
import { packApp, recording, tempDir, unpack } from './support';

test("the app's require('@rocket.chat/apps-engine/definition/App') is the runner's own package: the app is an instance of the real App", async () => {
  const runner = await AppsEngineRunner.open(packApp('word-filter'), { dataDir: tempDir('data'), log: recording() });
  try {
    assert.ok(runner.app instanceof App);
    assert.equal(runner.app.getID(), '4c4a8c63-3b0f-4d3e-9a53-6f7d1f0e0a01');
    assert.equal(runner.app.getName(), 'Word Filter');
    assert.equal(runner.enabled, true);
  } finally {
    await runner.stop();
  }
});

test('an unpacked app folder loads like its zip', async () => {
  const runner = await AppsEngineRunner.open(unpack(packApp('extender')), { dataDir: tempDir('data'), log: recording() });
  try {
    assert.deepEqual(runner.interfaces, ['IPreRoomCreateExtend']);
  } finally {
    await runner.stop();
  }
});

/** An unpacked package whose class file requires `greeting` from the package's own node_modules. */
function packageWithDependency(): string {
  const dir = tempDir('with-dependency');
  const info = {
    id: 'b1c0ffee-0000-4000-8000-000000000001', version: '1.0.0', requiredApiVersion: '^1.44.0', name: 'Greeter', nameSlug: 'greeter',
    classFile: 'GreeterApp.js', description: '', author: { name: 'roomhooks tests', homepage: '', support: '' }, implements: ['IPreRoomUserJoined'],
  };
  fs.writeFileSync(path.join(dir, 'app.json'), JSON.stringify(info));
  fs.writeFileSync(
    path.join(dir, 'GreeterApp.js'),
    [
      "'use strict';",
      "const { App } = require('@rocket.chat/apps-engine/definition/App');",
      "const { greet } = require('greeting');",
      "const os = require('node:os');",
      'class GreeterApp extends App {',
      "  constructor(info, logger, accessors) { super(info, logger, accessors); this.greeting = greet('roomhooks'); this.eol = os.EOL; }",
      '  async executePreRoomUserJoined() {}',
      '}',
      'exports.GreeterApp = GreeterApp;',
    ].join('\n'),
  );
  fs.mkdirSync(path.join(dir, 'node_modules', 'greeting'), { recursive: true });
  fs.writeFileSync(path.join(dir, 'node_modules', 'greeting', 'index.js'), "exports.greet = (who) => `hello ${who}`;\n");
  return dir;
}

test("an app requires a package from its own node_modules and Node built-ins (more than Apps-Engine's runtime allows)", async () => {
  const runner = await AppsEngineRunner.open(packageWithDependency(), { dataDir: tempDir('data'), log: recording() });
  try {
    const app = runner.app as unknown as { greeting: string; eol: string };
    assert.equal(app.greeting, 'hello roomhooks');
    assert.equal(typeof app.eol, 'string');
    assert.deepEqual(runner.interfaces, ['IPreRoomUserJoined']);
  } finally {
    await runner.stop();
  }
});

test('a requiredApiVersion the bundled Apps-Engine does not satisfy is refused, naming both versions', async () => {
  await assert.rejects(
    AppsEngineRunner.open(packApp('word-filter', { requiredApiVersion: '^2.0.0' }), { dataDir: tempDir('data'), log: recording() }),
    (err: Error) =>
      err instanceof AppLoadError &&
      err.message.includes('requires Apps-Engine ^2.0.0') &&
      err.message.includes(`@rocket.chat/apps-engine ${ENGINE_VERSION}`),
  );
});

test('a package without its classFile is refused with what was looked for', async () => {
  await assert.rejects(
    AppsEngineRunner.open(packApp('word-filter', { classFile: 'Missing.ts' }), { dataDir: tempDir('data'), log: recording() }),
    /classFile "Missing.ts" is not in the package \(looked for Missing\.js\)/,
  );
});

test('an app whose onEnable returns false is not registered, and the log says why', async () => {
  const log = recording();
  const runner = await AppsEngineRunner.open(packApp('word-filter'), { dataDir: tempDir('data'), log, settings: { settings: { enabled: false } } });
  try {
    assert.equal(runner.enabled, false);
    assert.equal(log.lines('onEnable returned false, so the app is not registered').length, 1);
    assert.throws(() => runner.start('http://127.0.0.1:1'), /onEnable returned false/);
  } finally {
    await runner.stop();
  }
});

test('an interface in implements without its execute method is not registered, and is logged', async () => {
  const log = recording();
  const implementsList = ['IPreRoomCreatePrevent', 'IPreRoomUserJoined', 'IPreRoomUserLeave', 'IPreRoomDeletePrevent'];
  const runner = await AppsEngineRunner.open(packApp('word-filter', { implements: implementsList }), { dataDir: tempDir('data'), log });
  try {
    assert.deepEqual(runner.interfaces, ['IPreRoomCreatePrevent', 'IPreRoomUserJoined', 'IPreRoomUserLeave']);
    assert.equal(log.lines('implements IPreRoomDeletePrevent but the app has no executePreRoomDeletePrevent').length, 1);
  } finally {
    await runner.stop();
  }
});

test("app.json essentials become the sidecar's essential_hooks config lines", () => {
  assert.equal(
    essentialsConfig({ id: 'abc', essentials: ['IPreRoomCreatePrevent', 'IPreRoomUserJoined'] as never }),
    '[apps.abc]\nessential_hooks = ["PreRoomCreatePrevent", "PreRoomUserJoined"]\n',
  );
});
