// Prevent, Extend (IRoomExtender) and Modify (IRoomBuilder) of Apps-Engine apps through the runner,
// each stage in one priority order with TypeScript SDK apps and Rust SDK apps (the SDK's
// word_filter, extender and modifier examples), against the real sidecar.

import { strict as assert } from 'node:assert';
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, test } from 'node:test';
import { app, prevent, silentLogger } from 'roomhooks-sdk';
import type { AppBuilder } from 'roomhooks-sdk';
import { AppsEngineRunner } from '../src';
import { REPO, packApp, recording, startSidecar, tempDir, waitFor } from './support';
import type { Sidecar } from './support';

const EXTENDER = '4c4a8c63-3b0f-4d3e-9a53-6f7d1f0e0a02';
const MODIFIER = '4c4a8c63-3b0f-4d3e-9a53-6f7d1f0e0a03';
const WORD_FILTER = '4c4a8c63-3b0f-4d3e-9a53-6f7d1f0e0a01';
const RUST_MODIFIER = process.env.ROOMHOOKS_RUST_MODIFIER ?? path.join(REPO, 'target', 'release', 'examples', 'modifier');
// The Rust SDK's other examples, built beside the modifier (ci.sh builds all three).
const RUST_WORD_FILTER = path.join(path.dirname(RUST_MODIFIER), 'word_filter');
const RUST_EXTENDER = path.join(path.dirname(RUST_MODIFIER), 'extender');

const PREVENT = 'HOOK_INTERFACE_PRE_ROOM_CREATE_PREVENT';
const JOIN = 'HOOK_INTERFACE_PRE_ROOM_USER_JOINED';
const EXTEND = 'HOOK_INTERFACE_PRE_ROOM_CREATE_EXTEND';

// The priority order of each stage (ascending):
//   Prevent: ts-filter (TypeScript, 5), word-filter (Rust, 10), Word Filter (Apps-Engine, 20)
//   Join:    word-filter (Rust, 10), Word Filter (Apps-Engine, 20)
//   Extend:  Extender (Apps-Engine, 1), ts-extender (TypeScript, 10), extender (Rust, 20)
//   Modify:  ts-describer (TypeScript, 10), Modifier (Apps-Engine, 20), slug-normaliser (Rust, 30)
let sidecar: Sidecar;
let wordFilter: AppsEngineRunner;
let extender: AppsEngineRunner;
let modifier: AppsEngineRunner;
let tsApps: AppBuilder[];
let rustApps: ChildProcess[];

before(async () => {
  for (const [example, file] of [['modifier', RUST_MODIFIER], ['word_filter', RUST_WORD_FILTER], ['extender', RUST_EXTENDER]]) {
    if (!fs.existsSync(file)) throw new Error(`no Rust ${example} example at ${file}: run \`cargo build --release -p roomhooks-sdk --example modifier --example word_filter --example extender\``);
  }
  sidecar = await startSidecar();
  // The Apps-Engine word filter blocks "spam" and "forbidden" in room names, and "troll" on join.
  wordFilter = await AppsEngineRunner.open(packApp('word-filter'), {
    dataDir: tempDir('data'), log: recording(), priority: 20, stopOnSignals: false, settings: { settings: { blocked_words: 'spam, forbidden' } },
  });
  extender = await AppsEngineRunner.open(packApp('extender'), { dataDir: tempDir('data'), log: recording(), priority: 1, stopOnSignals: false });
  modifier = await AppsEngineRunner.open(packApp('modifier'), { dataDir: tempDir('data'), log: recording(), priority: 20, stopOnSignals: false });
  tsApps = [
    app({ appId: 'ts-filter', priority: 5, logger: silentLogger, stopOnSignals: false }).preRoomCreatePrevent((room) =>
      room.displayName.toLowerCase().includes('spam') ? prevent('No spam rooms, says TypeScript.') : false,
    ),
    app({ appId: 'ts-extender', priority: 10, logger: silentLogger, stopOnSignals: false }).preRoomCreateExtend((_room, extend) => {
      extend.addCustomField('ts_tier', 'gold');
      extend.addMember('ts-bot');
    }),
    app({ appId: 'ts-describer', priority: 10, logger: silentLogger, stopOnSignals: false }).preRoomCreateModify((room) => ({
      ...room,
      description: 'set by ts',
      slugifiedName: 'Launch Party TS',
    })),
  ];
  for (const tsApp of tsApps) tsApp.start(sidecar.endpoint);
  // The Rust SDK's examples: word-filter (priority 10, failure policy fail; "spam" and "scam" in
  // names, "troll" on join), extender (20: created_via = roomhooks and welcome-bot),
  // slug-normaliser (30: normalises the slug last).
  rustApps = [RUST_WORD_FILTER, RUST_EXTENDER, RUST_MODIFIER].map((file) => spawn(file, [sidecar.endpoint], { stdio: 'ignore' }));
  await Promise.all([
    wordFilter.start(sidecar.endpoint).registered(),
    extender.start(sidecar.endpoint).registered(),
    modifier.start(sidecar.endpoint).registered(),
    ...tsApps.map((tsApp) => tsApp.registered()),
  ]);
  for (const id of ['word-filter', 'extender', 'slug-normaliser']) {
    await waitFor(async () => (await sidecar.instances(id)).length === 1, `the Rust ${id} to register`);
  }
});

after(async () => {
  for (const rust of rustApps ?? []) {
    if (rust.exitCode !== null) continue;
    const exited = new Promise((resolve) => rust.once('exit', resolve));
    rust.kill('SIGINT'); // the Rust SDK app leaves gracefully on SIGINT
    await exited;
  }
  for (const tsApp of tsApps ?? []) await tsApp.stop();
  await wordFilter?.stop();
  await extender?.stop();
  await modifier?.stop();
  await sidecar?.stop();
});

test('a room name every filter blocks is vetoed by all three in priority order, and the first veto\'s message is shown', async () => {
  const verdict = await sidecar.backend().preRoomCreate({ room: { displayName: 'Spam and scam', type: 'ROOM_TYPE_CHANNEL' } });
  assert.equal(verdict.allowed, false);
  assert.deepEqual(verdict.outcomes.filter((o) => o.hook === PREVENT).map((o) => [o.appId, o.status]), [
    ['ts-filter', 'OUTCOME_STATUS_PREVENTED'],
    ['word-filter', 'OUTCOME_STATUS_PREVENTED'],
    [WORD_FILTER, 'OUTCOME_STATUS_PREVENTED'],
  ]);
  assert.deepEqual(verdict.preventions.map((p) => [p.appId, p.message]), [
    ['ts-filter', 'No spam rooms, says TypeScript.'],
    ['word-filter', 'Room names may not contain "spam".'],
    [WORD_FILTER, 'Word Filter prevented this action.'],
  ]);
});

test('a room name only the Apps-Engine app blocks is vetoed by it alone, with its prevent message, while the others allow', async () => {
  const verdict = await sidecar.backend().preRoomCreate({ room: { displayName: 'Forbidden plans', type: 'ROOM_TYPE_CHANNEL' } });
  assert.equal(verdict.allowed, false);
  assert.deepEqual(verdict.outcomes.filter((o) => o.hook === PREVENT).map((o) => [o.appId, o.status]), [
    ['ts-filter', 'OUTCOME_STATUS_ALLOWED'],
    ['word-filter', 'OUTCOME_STATUS_ALLOWED'],
    [WORD_FILTER, 'OUTCOME_STATUS_PREVENTED'],
  ]);
  assert.deepEqual(verdict.preventions.map((p) => [p.appId, p.message]), [[WORD_FILTER, 'Word Filter prevented this action.']]);
});

test('a user the Rust filter and the Apps-Engine filter both ban is refused by both in priority order, the Rust message first', async () => {
  const verdict = await sidecar.backend().preRoomUserJoin({ context: { room: { id: 'r-1', type: 'ROOM_TYPE_CHANNEL' }, joiningUser: { id: 'u-troll', username: 'troll' } } });
  assert.equal(verdict.allowed, false);
  assert.deepEqual(verdict.preventions.map((p) => [p.appId, p.message]), [
    ['word-filter', 'troll is banned from this server.'],
    [WORD_FILTER, 'You are banned.'],
  ]);
  assert.deepEqual(verdict.outcomes.filter((o) => o.hook === JOIN).map((o) => o.appId), ['word-filter', WORD_FILTER]);
});

test('Extend answers of an Apps-Engine, a TypeScript and a Rust app merge in priority order: members appended in that order, and the earliest app keeps a contested key', async () => {
  const verdict = await sidecar.backend().preRoomCreate({ room: { displayName: 'Book club', type: 'ROOM_TYPE_CHANNEL', memberUsernames: ['alice'] } });
  assert.equal(verdict.allowed, true);
  const extends_ = verdict.outcomes.filter((o) => o.hook === EXTEND);
  assert.deepEqual(extends_.map((o) => [o.appId, o.status]), [
    [EXTENDER, 'OUTCOME_STATUS_CHANGED'],
    ['ts-extender', 'OUTCOME_STATUS_CHANGED'],
    ['extender', 'OUTCOME_STATUS_REJECTED'],
  ]);
  assert.match(extends_[2]?.detail ?? '', new RegExp(`custom field "created_via" \\(added by app ${EXTENDER}\\)`));
  assert.equal(verdict.room.customFields.created_via, 'apps-engine', 'the Apps-Engine extender (priority 1) keeps created_via; the Rust one (20) is refused');
  assert.equal(verdict.room.customFields.ts_tier, 'gold');
  assert.deepEqual(verdict.room.memberUsernames.slice(0, 3), ['alice', 'welcome-bot', 'ts-bot']);
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
