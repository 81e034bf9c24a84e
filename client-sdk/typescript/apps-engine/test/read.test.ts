// IRead for one call: what the event carries is readable, the rest fails with one clear error.

import { strict as assert } from 'node:assert';
import { test } from 'node:test';
import { createRoom, createUser } from 'roomhooks-sdk';
import { AppStore, NotAvailableInRoomHooks, RunnerLog, joinedToAe } from '../src';
import { createRead } from '../src/read';
import { AppSettings, environmentReader } from '../src/settings';
import { Unavailable } from '../src/unavailable';
import { recording, tempDir } from './support';

function readFor() {
  const log = recording();
  const unavailable = new Unavailable(new RunnerLog('app', log));
  const context = joinedToAe({
    room: createRoom({ id: 'r-1', slugifiedName: 'general', creator: createUser({ id: 'u-1', username: 'alice' }) }),
    joiningUser: createUser({ id: 'u-2', username: 'bob' }),
    inviter: null,
  });
  const env = environmentReader(new AppSettings(), { serverSettings: { Site_Url: 'https://chat.example' } }, unavailable);
  const store = new AppStore(tempDir('read'), 'app');
  const read = createRead(env, store.reader(), { room: context.room, users: [context.room.creator, context.joiningUser] }, unavailable);
  return { read, unavailable, log, close: () => store.close() };
}

test("the room reader knows the event's room by id and by name, and its creator", async () => {
  const { read, close } = readFor();
  assert.equal((await read.getRoomReader().getById('r-1'))?.slugifiedName, 'general');
  assert.equal((await read.getRoomReader().getByName('general'))?.id, 'r-1');
  assert.equal((await read.getRoomReader().getCreatorUserById('r-1'))?.username, 'alice');
  close();
});

test("the user reader knows the event's users by id and by username", async () => {
  const { read, close } = readFor();
  assert.equal((await read.getUserReader().getById('u-2')).username, 'bob');
  assert.equal((await read.getUserReader().getByUsername('alice')).id, 'u-1');
  close();
});

test('another room, the app user, the message reader and a missing server setting fail with NotAvailableInRoomHooks naming the accessor', async () => {
  const { read, unavailable, close } = readFor();
  await assert.rejects(read.getRoomReader().getById('r-2'), (e: Error) => e instanceof NotAvailableInRoomHooks && e.accessor === 'read.getRoomReader().getById()');
  await assert.rejects(read.getUserReader().getAppUser(), /^NotAvailableInRoomHooks: read\.getUserReader\(\)\.getAppUser\(\) — /);
  await assert.rejects(async () => read.getMessageReader().getById('m-1'), /NotAvailableInRoomHooks: read\.getMessageReader\(\)\.getById\(\)/);
  assert.equal(await read.getEnvironmentReader().getServerSettings().getValueById('Site_Url'), 'https://chat.example');
  await assert.rejects(read.getEnvironmentReader().getServerSettings().getValueById('Other'), /"Other" is not in the runner's settings file/);
  assert.deepEqual(Object.keys(unavailable.snapshot()).sort(), [
    'read.getEnvironmentReader().getServerSettings().getValueById()',
    'read.getMessageReader().getById()',
    'read.getRoomReader().getById()',
    'read.getUserReader().getAppUser()',
  ]);
  close();
});

test("NotAvailableInRoomHooks names itself once, in its message, its string and its stack's first line", () => {
  const err = new NotAvailableInRoomHooks('modify.getCreator()', 'the app runs outside the chat server');
  assert.equal(err.message, 'NotAvailableInRoomHooks: modify.getCreator() — the app runs outside the chat server');
  assert.equal(String(err), err.message);
  assert.equal(err.stack?.split('\n')[0], err.message);
});
