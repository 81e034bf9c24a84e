// The three veto interfaces of an Apps-Engine app, run unmodified through the runner against the
// real sidecar: the word filter (checkPreRoomCreatePrevent + executePreRoomCreatePrevent, and
// UserNotAllowedException on join and leave), its settings from the settings file.

import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, test } from 'node:test';
import { AppsEngineRunner } from '../src';
import { packApp, recording, startSidecar, tempDir } from './support';
import type { Sidecar } from './support';

const WORD_FILTER = '4c4a8c63-3b0f-4d3e-9a53-6f7d1f0e0a01';
let sidecar: Sidecar;
let runner: AppsEngineRunner;
const log = recording();

before(async () => {
  sidecar = await startSidecar();
  const settings = path.join(tempDir('settings'), 'settings.json');
  fs.writeFileSync(settings, JSON.stringify({ priority: 5, settings: { blocked_words: 'spam, scam' } }));
  runner = await AppsEngineRunner.open(packApp('word-filter'), { settingsFile: settings, dataDir: tempDir('data'), log, stopOnSignals: false });
  await runner.start(sidecar.endpoint).registered();
});

after(async () => {
  await runner?.stop();
  await sidecar?.stop();
});

test('the zipped app registers as its app.json id and version with the interfaces it implements', async () => {
  const [instance] = await sidecar.instances(WORD_FILTER);
  assert.ok(instance, 'the word filter is registered');
  assert.deepEqual(runner.interfaces, ['IPreRoomCreatePrevent', 'IPreRoomUserJoined', 'IPreRoomUserLeave']);
  assert.equal(runner.sdkApp().options.version, '1.0.0');
  assert.equal(runner.sdkApp().options.priority, 5, 'priority from the settings file');
});

test('executePreRoomCreatePrevent returning true vetoes with the default message naming the app', async () => {
  const verdict = await sidecar.backend().preRoomCreate({ room: { displayName: 'Cheap SCAM offers', type: 'ROOM_TYPE_CHANNEL' } });
  assert.equal(verdict.allowed, false);
  assert.equal(verdict.preventions[0]?.appId, WORD_FILTER);
  assert.equal(verdict.preventions[0]?.message, 'Word Filter prevented this action.');
  const [line] = log.lines('prevented the room "Cheap SCAM offers"');
  assert.ok(line, "the app's ILogger writes to the runner's log");
  assert.equal(line.app_id, WORD_FILTER);
  assert.equal(line.source, 'app');
});

test('a room without a blocked word is allowed', async () => {
  const verdict = await sidecar.backend().preRoomCreate({ room: { displayName: 'Launch Party', type: 'ROOM_TYPE_CHANNEL' } });
  assert.equal(verdict.allowed, true);
  assert.equal(verdict.outcomes[0]?.status, 'OUTCOME_STATUS_ALLOWED');
});

test('checkPreRoomCreatePrevent returning false skips the app: a direct message named spam is allowed', async () => {
  const verdict = await sidecar.backend().preRoomCreate({ room: { displayName: 'spam', type: 'ROOM_TYPE_DIRECT_MESSAGE' } });
  assert.equal(verdict.allowed, true);
});

test('UserNotAllowedException thrown from executePreRoomUserJoined vetoes the join with its message', async () => {
  const verdict = await sidecar.backend().preRoomUserJoin({
    context: { room: { id: 'r-1', type: 'ROOM_TYPE_CHANNEL' }, joiningUser: { id: 'u-9', username: 'troll' } },
  });
  assert.equal(verdict.allowed, false);
  assert.equal(verdict.preventions[0]?.message, 'You are banned.');
  const welcome = await sidecar.backend().preRoomUserJoin({
    context: { room: { id: 'r-1', type: 'ROOM_TYPE_CHANNEL' }, joiningUser: { id: 'u-1', username: 'alice' } },
  });
  assert.equal(welcome.allowed, true);
});

test('UserNotAllowedException thrown from executePreRoomUserLeave vetoes the leave with its message', async () => {
  const verdict = await sidecar.backend().preRoomUserLeave({
    context: { room: { id: 'r-1', slugifiedName: 'general', type: 'ROOM_TYPE_CHANNEL' }, leavingUser: { id: 'u-2', username: 'hostage' } },
  });
  assert.equal(verdict.allowed, false);
  assert.equal(verdict.preventions[0]?.message, 'hostage must stay in general.');
});

test('configuration the runner has no use for (a slash command) is ignored with one warning, and the app still loads', () => {
  assert.equal(log.lines('ignored: configuration.slashCommands.provideSlashCommand()').length, 1);
});

test('any other error thrown from executePreRoomUserJoined is an AppError: the ignore policy allows and the outcome carries the message', async () => {
  const verdict = await sidecar.backend().preRoomUserJoin({
    context: { room: { id: 'r-1', type: 'ROOM_TYPE_CHANNEL' }, joiningUser: { id: 'u-3', username: 'crash' } },
  });
  assert.equal(verdict.allowed, true);
  const outcome = verdict.outcomes.find((o) => o.appId === WORD_FILTER);
  assert.equal(outcome?.status, 'OUTCOME_STATUS_ERROR');
  assert.match(outcome?.detail ?? '', /the filter broke/);
});
