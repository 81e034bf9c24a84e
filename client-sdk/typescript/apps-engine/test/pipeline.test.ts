// Extend (IRoomExtender) and Modify (IRoomBuilder) of Apps-Engine apps through the runner, in one
// priority order with a TypeScript SDK app and a Rust SDK app, against the real sidecar.

import { strict as assert } from 'node:assert';
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, test } from 'node:test';
import { app, silentLogger } from 'roomhooks-sdk';
import type { AppBuilder } from 'roomhooks-sdk';
import { AppsEngineRunner } from '../src';
import { REPO, packApp, recording, startSidecar, tempDir, waitFor } from './support';
import type { Sidecar } from './support';

const EXTENDER = '4c4a8c63-3b0f-4d3e-9a53-6f7d1f0e0a02';
const MODIFIER = '4c4a8c63-3b0f-4d3e-9a53-6f7d1f0e0a03';
const RUST_MODIFIER = process.env.ROOMHOOKS_RUST_MODIFIER ?? path.join(REPO, 'target', 'release', 'examples', 'modifier');

let sidecar: Sidecar;
let extender: AppsEngineRunner;
let modifier: AppsEngineRunner;
let tsApp: AppBuilder;
let rust: ChildProcess;

before(async () => {
  if (!fs.existsSync(RUST_MODIFIER)) throw new Error(`no Rust modifier example at ${RUST_MODIFIER}: run \`cargo build --release -p roomhooks-sdk --example modifier\``);
  sidecar = await startSidecar();
  extender = await AppsEngineRunner.open(packApp('extender'), { dataDir: tempDir('data'), log: recording(), priority: 1, stopOnSignals: false });
  modifier = await AppsEngineRunner.open(packApp('modifier'), { dataDir: tempDir('data'), log: recording(), priority: 20, stopOnSignals: false });
  // A TypeScript SDK app at priority 10: Modify runs it before the Apps-Engine modifier (20).
  tsApp = app({ appId: 'ts-describer', priority: 10, logger: silentLogger, stopOnSignals: false }).preRoomCreateModify((room) => ({
    ...room,
    description: 'set by ts',
    slugifiedName: 'Launch Party TS',
  }));
  tsApp.start(sidecar.endpoint);
  // The Rust SDK's modifier example (priority 30) normalises the slug last.
  rust = spawn(RUST_MODIFIER, [sidecar.endpoint], { stdio: 'ignore' });
  await Promise.all([extender.start(sidecar.endpoint).registered(), modifier.start(sidecar.endpoint).registered(), tsApp.registered()]);
  await waitFor(async () => (await sidecar.instances('slug-normaliser')).length === 1, 'the Rust modifier to register');
});

after(async () => {
  if (rust && rust.exitCode === null) {
    const exited = new Promise((resolve) => rust.once('exit', resolve));
    rust.kill('SIGINT'); // the Rust SDK app leaves gracefully on SIGINT
    await exited;
  }
  await tsApp?.stop();
  await extender?.stop();
  await modifier?.stop();
  await sidecar?.stop();
});

test('IRoomExtender additions are kept: the custom field and the member added with addMember', async () => {
  const verdict = await sidecar.backend().preRoomCreate({ room: { displayName: 'Launch Party', type: 'ROOM_TYPE_CHANNEL', memberUsernames: ['alice'] } });
  assert.equal(verdict.allowed, true);
  assert.equal(verdict.room.customFields.created_via, 'apps-engine');
  assert.equal(verdict.room.customFields.members_being_added, 'welcome-bot');
  assert.ok(verdict.room.memberUsernames.includes('welcome-bot'), `members: ${verdict.room.memberUsernames.join(',')}`);
  assert.ok(verdict.room.memberUsernames.includes('alice'));
});

test("IRoomExtender.addCustomField throws for a key the room has and for a key with a dot, as in Apps-Engine", async () => {
  const verdict = await sidecar.backend().preRoomCreate({ room: { displayName: 'Core', type: 'ROOM_TYPE_CHANNEL', customFields: { team: 'core' } } });
  assert.equal(verdict.room.customFields.team, 'core', 'the existing key is untouched');
  assert.equal(verdict.room.customFields.team_kept, true);
  assert.equal(verdict.room.customFields.dotted_key_refused, true);
});

test('the Apps-Engine modifier runs between a TypeScript SDK app and a Rust SDK app in priority order, and its builder changes are applied', async () => {
  const verdict = await sidecar.backend().preRoomCreate({ room: { displayName: 'Launch Party', type: 'ROOM_TYPE_CHANNEL', displaySystemMessages: true } });
  assert.equal(verdict.allowed, true);
  const modifies = verdict.outcomes.filter((o) => o.hook === 'HOOK_INTERFACE_PRE_ROOM_CREATE_MODIFY');
  assert.deepEqual(modifies.map((o) => [o.appId, o.status]), [
    ['ts-describer', 'OUTCOME_STATUS_CHANGED'],
    [MODIFIER, 'OUTCOME_STATUS_CHANGED'],
    ['slug-normaliser', 'OUTCOME_STATUS_CHANGED'],
  ]);
  assert.equal(verdict.room.customFields.saw_description, 'set by ts', 'the Apps-Engine app saw the TypeScript app\'s room');
  assert.equal(verdict.room.slugifiedName, 'launch-party-ts-ae', 'the Rust app normalised the Apps-Engine app\'s slug');
  assert.equal(verdict.room.isReadOnly, true);
  assert.equal(verdict.room.displaySystemMessages, false);
  assert.ok(verdict.room.memberUsernames.includes('moderator'));
  assert.ok(verdict.outcomes.some((o) => o.appId === EXTENDER && o.status === 'OUTCOME_STATUS_CHANGED'));
});

test('checkPreRoomCreateModify returning false leaves the room unchanged by that app', async () => {
  const verdict = await sidecar.backend().preRoomCreate({ room: { displayName: 'Raw', type: 'ROOM_TYPE_CHANNEL', customFields: { unmoderated: true } } });
  const outcome = verdict.outcomes.find((o) => o.appId === MODIFIER);
  assert.equal(outcome?.status, 'OUTCOME_STATUS_UNCHANGED');
  assert.equal(verdict.room.isReadOnly, false);
});
