// The sidecar's dispatch rules as TypeScript apps see them: veto order across three apps, Extend
// conflicts, and a Modify chain that interleaves a Rust SDK app between TypeScript apps.

import { test } from 'node:test';
import { strict as assert } from 'node:assert';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { app, prevent, warn } from '../dist';
import type { Room } from '../dist';
import { REPO, channel, quiet, started, waitFor, withSidecar } from './harness';

test('three TypeScript veto apps: every veto is listed in priority order and the first one is the message', async () => {
  await withSidecar(async (sidecar, track) => {
    // Started out of order; the slowest answers first-in-order, so order cannot come from timing.
    const veto = (appId: string, priority: number, delayMs: number) =>
      app(quiet({ appId, priority })).preRoomCreatePrevent(async (room) => {
        await new Promise((r) => setTimeout(r, delayMs));
        return prevent(`${appId} says no to ${room.displayName}`);
      });
    track(await started(veto('gamma', 30, 0), sidecar.endpoint));
    track(await started(veto('alpha', 10, 150), sidecar.endpoint));
    track(await started(veto('beta', 20, 50), sidecar.endpoint));
    const res = await track(sidecar.backend()).preRoomCreate({ room: channel('Party') });
    assert.equal(res.allowed, false);
    assert.deepEqual(
      res.preventions.map((p) => [p.appId, p.message]),
      [
        ['alpha', 'alpha says no to Party'],
        ['beta', 'beta says no to Party'],
        ['gamma', 'gamma says no to Party'],
      ],
    );
    assert.deepEqual(res.outcomes.map((o) => o.appId), ['alpha', 'beta', 'gamma']);
  });
});

test('a veto app that allows with warn(message) reaches the backend in warnings, allowed', async () => {
  await withSidecar(async (sidecar, track) => {
    track(
      await started(
        app(quiet({ appId: 'namecheck' })).preRoomCreatePrevent(async () => warn('This room name may be confusing')),
        sidecar.endpoint,
      ),
    );
    const res = await track(sidecar.backend()).preRoomCreate({ room: channel('l0gin') });
    assert.equal(res.allowed, true);
    assert.deepEqual(
      res.warnings.map((w) => [w.appId, w.message]),
      [['namecheck', 'This room name may be confusing']],
    );
  });
});

test('Extend conflicts: a key the room has is refused by the extender, a key an earlier app added is REJECTED by the sidecar', async () => {
  await withSidecar(async (sidecar, track) => {
    const local: string[] = [];
    track(
      await started(
        app(quiet({ appId: 'first', priority: 1 })).preRoomCreateExtend((_room, extend) => {
          extend.addCustomField('topic', 'launch').addMember('bot-one');
        }),
        sidecar.endpoint,
      ),
    );
    track(
      await started(
        app(quiet({ appId: 'second', priority: 2 })).preRoomCreateExtend((_room, extend) => {
          try {
            extend.addCustomField('owner', 'me');
          } catch (err) {
            local.push((err as Error).message);
          }
          extend.addCustomField('topic', 'mine').addCustomField('colour', 'blue').addMember('bot-two');
        }),
        sidecar.endpoint,
      ),
    );
    const res = await track(sidecar.backend()).preRoomCreate({ room: channel('Launch', { customFields: { owner: 'alice' } }) });
    assert.equal(res.allowed, true);
    assert.deepEqual(local, ['addCustomField: the room already has the custom field "owner" (Extend may only add keys)']);
    assert.deepEqual(res.room.customFields, { owner: 'alice', topic: 'launch', colour: 'blue' });
    assert.deepEqual(res.room.memberUsernames, ['bot-one', 'bot-two']);
    const second = res.outcomes.find((o) => o.appId === 'second');
    assert.equal(second?.status, 'OUTCOME_STATUS_REJECTED');
    assert.match(second?.detail ?? '', /topic/);
  });
});

test('the Modify chain interleaves a Rust SDK app between TypeScript apps by priority, each seeing the previous room', async () => {
  const rustModifier = process.env.ROOMHOOKS_RUST_MODIFIER ?? path.join(REPO, 'target', 'release', 'examples', 'modifier');
  assert.ok(
    fs.existsSync(rustModifier),
    `no Rust modifier example at ${rustModifier}: run \`cargo build --release -p roomhooks-sdk --example modifier\``,
  );
  await withSidecar(async (sidecar, track) => {
    const seen: Record<string, Room> = {};
    // 20: TypeScript, before the Rust slug-normaliser (30); 40: TypeScript, after it.
    track(
      await started(
        app(quiet({ appId: 'ts-before', priority: 20 })).preRoomCreateModify((room, builder) => {
          seen.before = room;
          builder.setSlugifiedName(`TS First: ${room.displayName}!!`);
        }),
        sidecar.endpoint,
      ),
    );
    const rust = spawn(rustModifier, [sidecar.endpoint], { stdio: 'ignore' });
    try {
      track(
        await started(
          app(quiet({ appId: 'ts-after', priority: 40 })).preRoomCreateModify((room) => {
            seen.after = room;
            return { ...room, slugifiedName: `${room.slugifiedName}-v2` };
          }),
          sidecar.endpoint,
        ),
      );
      await waitFor(async () => (await sidecar.instances('slug-normaliser')).length === 1, 'the Rust modifier to register');
      const res = await track(sidecar.backend()).preRoomCreate({ room: channel('Launch Party') });
      assert.deepEqual(
        res.outcomes.map((o) => [o.appId, o.status]),
        [
          ['ts-before', 'OUTCOME_STATUS_CHANGED'],
          ['slug-normaliser', 'OUTCOME_STATUS_CHANGED'],
          ['ts-after', 'OUTCOME_STATUS_CHANGED'],
        ],
      );
      assert.equal(seen.before.slugifiedName, '');
      assert.equal(seen.after.slugifiedName, 'ts-first-launch-party', 'the TS app after the Rust app sees its slug');
      assert.equal(res.room.slugifiedName, 'ts-first-launch-party-v2');
    } finally {
      rust.kill('SIGTERM');
    }
  });
});

test('a Modify answer that changes the room id is REJECTED and the chain goes on with the previous room', async () => {
  await withSidecar(async (sidecar, track) => {
    track(
      await started(app(quiet({ appId: 'bad', priority: 1 })).preRoomCreateModify((room) => ({ ...room, id: 'hijacked', description: 'bad' })), sidecar.endpoint),
    );
    track(await started(app(quiet({ appId: 'good', priority: 2 })).preRoomCreateModify((_r, b) => void b.setDescription('good')), sidecar.endpoint));
    const res = await track(sidecar.backend()).preRoomCreate({ room: channel('Room') });
    assert.deepEqual(res.outcomes.map((o) => o.status), ['OUTCOME_STATUS_REJECTED', 'OUTCOME_STATUS_CHANGED']);
    assert.equal(res.room.id, '');
    assert.equal(res.room.description, 'good');
  });
});

test('room types filter the calls an app gets', async () => {
  await withSidecar(async (sidecar, track) => {
    let calls = 0;
    track(
      await started(
        app(quiet({ appId: 'groups-only', roomTypes: ['ROOM_TYPE_PRIVATE_GROUP'] })).preRoomCreatePrevent(() => {
          calls += 1;
          return true;
        }),
        sidecar.endpoint,
      ),
    );
    const backend = track(sidecar.backend());
    assert.equal((await backend.preRoomCreate({ room: channel('public') })).allowed, true);
    assert.equal((await backend.preRoomCreate({ room: { displayName: 'secret', type: 'ROOM_TYPE_PRIVATE_GROUP' } })).allowed, false);
    assert.equal(calls, 1);
  });
});
