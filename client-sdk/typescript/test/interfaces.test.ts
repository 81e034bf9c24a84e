// Every one of the ten interfaces, implemented as an Apps-Engine-style class, answered through the
// real sidecar; registration follows from the methods implemented.

import { test } from 'node:test';
import { strict as assert } from 'node:assert';
import {
  RoomHooksApp,
  UserNotAllowedException,
  app,
  prevent,
  userMessage,
} from '../dist';
import type {
  HookContext,
  IPostRoomCreate,
  IPostRoomDeleted,
  IPostRoomUserJoined,
  IPostRoomUserLeave,
  IPreRoomCreateExtend,
  IPreRoomCreateModify,
  IPreRoomCreatePrevent,
  IPreRoomDeletePrevent,
  IPreRoomUserJoined,
  IPreRoomUserLeave,
  PostContext,
  PreventAnswer,
  Room,
  RoomBuilder,
  RoomExtender,
  RoomUserJoined,
  RoomUserLeave,
} from '../dist';
import { channel, quiet, started, stored, waitFor, withSidecar } from './harness';

/** One app implementing all ten interfaces, recording what it was given. */
class Everything
  extends RoomHooksApp
  implements
    IPreRoomCreatePrevent,
    IPreRoomCreateExtend,
    IPreRoomCreateModify,
    IPostRoomCreate,
    IPreRoomDeletePrevent,
    IPostRoomDeleted,
    IPreRoomUserJoined,
    IPostRoomUserJoined,
    IPreRoomUserLeave,
    IPostRoomUserLeave
{
  readonly posts: { hook: string; ctx: PostContext; what: string }[] = [];
  readonly contexts: HookContext[] = [];

  async executePreRoomCreatePrevent(room: Room, ctx: HookContext): Promise<PreventAnswer> {
    this.contexts.push(ctx);
    if (room.displayName.includes('spam')) return prevent('No spam rooms.');
    return room.displayName.includes('silent veto');
  }
  async executePreRoomCreateExtend(_room: Room, extend: RoomExtender): Promise<void> {
    extend.addCustomField('created_via', 'roomhooks').addCustomField('limits', { members: 50, tags: ['a', true, null] });
    extend.addMember('welcome-bot');
  }
  async executePreRoomCreateModify(room: Room, builder: RoomBuilder): Promise<Room | void> {
    if (room.displayName.startsWith('return ')) return { ...room, description: 'returned by the modifier' };
    builder.setSlugifiedName(room.displayName.toLowerCase().replace(/[^a-z0-9]+/g, '-')).setReadOnly(true);
  }
  async executePostRoomCreate(room: Room, ctx: PostContext): Promise<void> {
    this.posts.push({ hook: 'create', ctx, what: room.id });
  }
  async executePreRoomDeletePrevent(room: Room): Promise<PreventAnswer> {
    return room.customFields.protected === true ? prevent(`${room.id} is protected.`) : false;
  }
  async executePostRoomDeleted(room: Room, ctx: PostContext): Promise<void> {
    this.posts.push({ hook: 'deleted', ctx, what: room.id });
  }
  async executePreRoomUserJoined(context: RoomUserJoined): Promise<void> {
    if (context.joiningUser.username === 'troll') throw new UserNotAllowedException('You are banned.');
  }
  async executePostRoomUserJoined(context: RoomUserJoined, ctx: PostContext): Promise<void> {
    this.posts.push({ hook: 'joined', ctx, what: `${context.joiningUser.username}@${context.room.id} by ${context.inviter?.username}` });
  }
  async executePreRoomUserLeave(context: RoomUserLeave): Promise<void> {
    if (context.room.id === 'lobby') throw new UserNotAllowedException(`Nobody leaves the lobby, ${context.leavingUser.username}.`);
  }
  async executePostRoomUserLeave(context: RoomUserLeave, ctx: PostContext): Promise<void> {
    this.posts.push({ hook: 'left', ctx, what: `${context.leavingUser.username}@${context.room.id} by ${context.removedBy?.username}` });
  }
}

test('an app registers exactly the interfaces whose execute methods it implements', async () => {
  await withSidecar(async (sidecar, track) => {
    const all = track(await started(new Everything(quiet({ appId: 'everything', version: '1.2.3', priority: 7 })), sidecar.endpoint));
    const some = track(await started(app(quiet({ appId: 'audit' })).postRoomCreate(() => {}).preRoomUserLeave(() => {}), sidecar.endpoint));
    assert.equal(all.interfaces().length, 10);
    const apps = await sidecar.listApps();
    const everything = apps.find((a) => a.appId === 'everything');
    assert.deepEqual(everything?.interfaces, [
      'HOOK_INTERFACE_PRE_ROOM_CREATE_PREVENT',
      'HOOK_INTERFACE_PRE_ROOM_CREATE_EXTEND',
      'HOOK_INTERFACE_PRE_ROOM_CREATE_MODIFY',
      'HOOK_INTERFACE_POST_ROOM_CREATE',
      'HOOK_INTERFACE_PRE_ROOM_DELETE_PREVENT',
      'HOOK_INTERFACE_POST_ROOM_DELETED',
      'HOOK_INTERFACE_PRE_ROOM_USER_JOINED',
      'HOOK_INTERFACE_POST_ROOM_USER_JOINED',
      'HOOK_INTERFACE_PRE_ROOM_USER_LEAVE',
      'HOOK_INTERFACE_POST_ROOM_USER_LEAVE',
    ]);
    assert.equal(everything?.priority, 7);
    assert.deepEqual(everything?.versions, ['1.2.3']);
    assert.deepEqual(apps.find((a) => a.appId === 'audit')?.interfaces, ['HOOK_INTERFACE_POST_ROOM_CREATE', 'HOOK_INTERFACE_PRE_ROOM_USER_LEAVE']);
    assert.equal(some.interfaces().length, 2);
  });
});

test("PreRoomCreatePrevent: prevent(message) vetoes with the message, true vetoes with the sidecar's default message, false allows", async () => {
  await withSidecar(async (sidecar, track) => {
    track(await started(new Everything(quiet({ appId: 'everything' })), sidecar.endpoint));
    const backend = track(sidecar.backend());
    const spam = await backend.preRoomCreate({ room: channel('spam corner') });
    assert.equal(spam.allowed, false);
    assert.equal(userMessage(spam), 'No spam rooms.');
    assert.equal(spam.preventions[0].appId, 'everything');
    assert.equal(spam.preventions[0].reason, 'PREVENTION_REASON_APP_PREVENTED');
    const silent = await backend.preRoomCreate({ room: channel('a silent veto') });
    assert.equal(silent.allowed, false);
    assert.equal(userMessage(silent), 'The app everything prevented the room creation.');
    const fine = await backend.preRoomCreate({ room: channel('Launch Party') });
    assert.equal(fine.allowed, true);
    assert.equal(userMessage(fine), undefined);
  });
});

test('PreRoomCreateExtend: the extender adds JSON custom fields and members', async () => {
  await withSidecar(async (sidecar, track) => {
    track(await started(new Everything(quiet({ appId: 'everything' })), sidecar.endpoint));
    const created = await track(sidecar.backend()).preRoomCreate({ room: channel('Launch Party', { memberUsernames: ['alice'] }) });
    assert.equal(created.allowed, true);
    assert.deepEqual(created.room.customFields, { created_via: 'roomhooks', limits: { members: 50, tags: ['a', true, null] } });
    assert.deepEqual(created.room.memberUsernames, ['alice', 'welcome-bot']);
    const extend = created.outcomes.find((o) => o.hook === 'HOOK_INTERFACE_PRE_ROOM_CREATE_EXTEND');
    assert.equal(extend?.status, 'OUTCOME_STATUS_CHANGED');
  });
});

test('PreRoomCreateModify: a builder change or a returned room becomes the room to store', async () => {
  await withSidecar(async (sidecar, track) => {
    track(await started(new Everything(quiet({ appId: 'everything' })), sidecar.endpoint));
    const backend = track(sidecar.backend());
    const built = await backend.preRoomCreate({ room: channel('Launch Party 2026') });
    assert.equal(built.room.slugifiedName, 'launch-party-2026');
    assert.equal(built.room.isReadOnly, true);
    const returned = await backend.preRoomCreate({ room: channel('return me') });
    assert.equal(returned.room.description, 'returned by the modifier');
    const modify = returned.outcomes.find((o) => o.hook === 'HOOK_INTERFACE_PRE_ROOM_CREATE_MODIFY');
    assert.equal(modify?.status, 'OUTCOME_STATUS_CHANGED');
  });
});

test('a Modify handler that changes nothing answers "unchanged"', async () => {
  await withSidecar(async (sidecar, track) => {
    track(await started(app(quiet({ appId: 'noop' })).preRoomCreateModify((room) => room), sidecar.endpoint));
    const res = await track(sidecar.backend()).preRoomCreate({ room: channel('Quiet Room', { slugifiedName: 'quiet-room' }) });
    assert.equal(res.outcomes[0].status, 'OUTCOME_STATUS_UNCHANGED');
    assert.equal(res.room.slugifiedName, 'quiet-room');
  });
});

test('PreRoomDeletePrevent vetoes the deletion of a protected room with its message', async () => {
  await withSidecar(async (sidecar, track) => {
    track(await started(new Everything(quiet({ appId: 'everything' })), sidecar.endpoint));
    const backend = track(sidecar.backend());
    const kept = await backend.preRoomDelete({ room: stored('general', { customFields: { protected: true } }) });
    assert.equal(kept.allowed, false);
    assert.equal(userMessage(kept), 'general is protected.');
    const gone = await backend.preRoomDelete({ room: stored('scratch') });
    assert.equal(gone.allowed, true);
  });
});

test('UserNotAllowedException from executePreRoomUserJoined / executePreRoomUserLeave prevents with its message', async () => {
  await withSidecar(async (sidecar, track) => {
    track(await started(new Everything(quiet({ appId: 'everything' })), sidecar.endpoint));
    const backend = track(sidecar.backend());
    const troll = await backend.preRoomUserJoin({ context: { room: stored('general'), joiningUser: { username: 'troll' } } });
    assert.equal(troll.allowed, false);
    assert.equal(userMessage(troll), 'You are banned.');
    assert.equal(troll.preventions[0].hook, 'HOOK_INTERFACE_PRE_ROOM_USER_JOINED');
    const alice = await backend.preRoomUserJoin({ context: { room: stored('general'), joiningUser: { username: 'alice' } } });
    assert.equal(alice.allowed, true);
    const stay = await backend.preRoomUserLeave({ context: { room: stored('lobby'), leavingUser: { username: 'bob' } } });
    assert.equal(userMessage(stay), 'Nobody leaves the lobby, bob.');
    const leave = await backend.preRoomUserLeave({ context: { room: stored('general'), leavingUser: { username: 'bob' } } });
    assert.equal(leave.allowed, true);
  });
});

test('the four post hooks get their event, its id and attempt 1, through each backend Post call and PostEvents', async () => {
  await withSidecar(async (sidecar, track) => {
    const everything = track(await started(new Everything(quiet({ appId: 'everything' })), sidecar.endpoint));
    const backend = track(sidecar.backend());
    const created = await backend.postRoomCreate({ room: stored('r1'), eventId: 'ev-create', waitForDelivery: true });
    assert.equal(created.outcomes[0].status, 'OUTCOME_STATUS_DELIVERED');
    await backend.postRoomDeleted({ room: stored('r1'), eventId: 'ev-deleted' });
    await backend.postRoomUserJoined({
      context: { room: stored('r1'), joiningUser: { username: 'alice' }, inviter: { username: 'bob' } },
      eventId: 'ev-joined',
    });
    const batch = await backend.postEvents([{ userLeave: { context: { room: stored('r1'), leavingUser: { username: 'alice' } }, eventId: 'ev-left' } }]);
    assert.equal(batch.length, 1);
    assert.equal(batch[0].subscribedApps, 1);
    await backend.postRoomUserLeave({ context: { room: stored('r2'), leavingUser: { username: 'bob' }, removedBy: { username: 'mod' } }, eventId: 'ev-left-2' });
    await waitFor(() => everything.posts.length === 5, 'five post events');
    assert.deepEqual(
      everything.posts.map((p) => [p.hook, p.ctx.eventId, p.ctx.attempt, p.what]),
      [
        ['create', 'ev-create', 1, 'r1'],
        ['deleted', 'ev-deleted', 1, 'r1'],
        ['joined', 'ev-joined', 1, 'alice@r1 by bob'],
        ['left', 'ev-left', 1, 'alice@r1 by undefined'],
        ['left', 'ev-left-2', 1, 'bob@r2 by mod'],
      ],
    );
    assert.equal(everything.posts[0].ctx.appId, 'everything');
  });
});

test('HookContext carries dryRun, requestId, traceparent, the app and instance ids and the deadline', async () => {
  await withSidecar(async (sidecar, track) => {
    const everything = track(
      await started(new Everything(quiet({ appId: 'everything', instanceId: 'everything-1', timeoutMs: 800 })), sidecar.endpoint),
    );
    const traceparent = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';
    const before = Date.now();
    await track(sidecar.backend()).preRoomCreate({ room: channel('ctx'), dryRun: true, requestId: 'req-42' }, { traceparent });
    const ctx = everything.contexts[0];
    assert.equal(ctx.dryRun, true);
    assert.equal(ctx.requestId, 'req-42');
    assert.equal(ctx.traceparent, traceparent);
    assert.equal(ctx.hook, 'HOOK_INTERFACE_PRE_ROOM_CREATE_PREVENT');
    assert.equal(ctx.appId, 'everything');
    assert.equal(ctx.instanceId, 'everything-1');
    assert.ok(ctx.deadline > before && ctx.deadline <= Date.now() + 800, `deadline ${ctx.deadline - before} ms after the call`);
    assert.equal(ctx.signal.aborted, false);
  });
});

test('a handler that throws becomes an AppError with its message (outcome ERROR), and the failure policy applies', async () => {
  await withSidecar(async (sidecar, track) => {
    track(
      await started(
        app(quiet({ appId: 'broken-open' })).preRoomCreatePrevent(() => {
          throw new Error('database is down');
        }),
        sidecar.endpoint,
      ),
    );
    track(
      await started(
        app(quiet({ appId: 'broken-closed', failurePolicy: 'fail' })).preRoomUserJoined(async () => {
          throw new TypeError('cannot read the ban list');
        }),
        sidecar.endpoint,
      ),
    );
    const backend = track(sidecar.backend());
    const created = await backend.preRoomCreate({ room: channel('x') });
    assert.equal(created.allowed, true, 'an ignore-policy app that errors raises no objection');
    assert.equal(created.outcomes[0].status, 'OUTCOME_STATUS_ERROR');
    assert.match(created.outcomes[0].detail, /database is down/);
    const joined = await backend.preRoomUserJoin({ context: { room: stored('general'), joiningUser: { username: 'alice' } } });
    assert.equal(joined.allowed, false, 'a fail-policy app that errors prevents');
    assert.equal(joined.preventions[0].reason, 'PREVENTION_REASON_APP_UNAVAILABLE');
    assert.match(joined.outcomes[0].detail, /cannot read the ban list/);
  });
});

test("an exception named UserNotAllowedException from elsewhere (Apps-Engine's own class) also prevents with its message", async () => {
  // What @rocket.chat/apps-engine/definition/exceptions declares, in shape: its own class, not this SDK's.
  class UserNotAllowedException extends Error {}
  await withSidecar(async (sidecar, track) => {
    track(
      await started(
        app(quiet({ appId: 'ported' })).preRoomUserLeave(() => {
          throw new UserNotAllowedException('Stay a while.');
        }),
        sidecar.endpoint,
      ),
    );
    const res = await track(sidecar.backend()).preRoomUserLeave({ context: { room: stored('general'), leavingUser: { username: 'bob' } } });
    assert.equal(userMessage(res), 'Stay a while.');
  });
});
