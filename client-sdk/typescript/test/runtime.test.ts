// How the SDK runs an app on the stream: concurrency, heartbeats, post-event order and acks,
// redelivery, deadlines and CancelCall, drain.

import { test } from 'node:test';
import { strict as assert } from 'node:assert';
import * as grpc from '@grpc/grpc-js';
import { app } from '../dist';
import { v1 } from '../dist/wire';
import type { HookContext } from '../dist';
import { channel, quiet, recordingLogger, sleep, started, stored, waitFor, withSidecar } from './harness';

const join = (username: string, room = 'general') => ({ context: { room: stored(room), joiningUser: { username } } });

test('many calls are in flight at once: 20 joins that each wait for all 20 to arrive all succeed', async () => {
  await withSidecar(async (sidecar, track) => {
    let arrived = 0;
    let release!: () => void;
    const allArrived = new Promise<void>((r) => (release = r));
    let maxInFlight = 0;
    let inFlight = 0;
    track(
      await started(
        app(quiet({ appId: 'concurrent', timeoutMs: 5000 })).preRoomUserJoined(async () => {
          inFlight += 1;
          maxInFlight = Math.max(maxInFlight, inFlight);
          arrived += 1;
          if (arrived === 20) release();
          await allArrived;
          inFlight -= 1;
        }),
        sidecar.endpoint,
      ),
    );
    const backend = track(sidecar.backend());
    const results = await Promise.all(Array.from({ length: 20 }, (_, i) => backend.preRoomUserJoin(join(`user${i}`))));
    assert.ok(results.every((r) => r.allowed && r.outcomes[0].status === 'OUTCOME_STATUS_ALLOWED'));
    assert.equal(maxInFlight, 20);
  });
});

test('calls beyond maxConcurrentCalls are answered at once with an error (the failure policy applies)', async () => {
  await withSidecar(async (sidecar, track) => {
    let release!: () => void;
    const held = new Promise<void>((r) => (release = r));
    let entered = 0;
    track(
      await started(
        app(quiet({ appId: 'narrow', maxConcurrentCalls: 1, timeoutMs: 3000 })).preRoomUserJoined(async () => {
          entered += 1;
          await held;
        }),
        sidecar.endpoint,
      ),
    );
    const backend = track(sidecar.backend());
    const first = backend.preRoomUserJoin(join('first'));
    await waitFor(() => entered === 1, 'the first call to be in its handler');
    const second = await backend.preRoomUserJoin(join('second'));
    assert.equal(second.outcomes[0].status, 'OUTCOME_STATUS_ERROR');
    assert.match(second.outcomes[0].detail, /at its maxConcurrentCalls \(1\)/);
    release();
    assert.equal((await first).outcomes[0].status, 'OUTCOME_STATUS_ALLOWED');
    assert.equal(entered, 1);
  });
});

test('heartbeats are answered while a handler runs: a 1.5 s handler outlives a 400 ms heartbeat timeout', async () => {
  await withSidecar(
    async (sidecar, track) => {
      const slow = track(
        await started(
          app(quiet({ appId: 'slow', timeoutMs: 5000 })).preRoomUserJoined(async () => {
            await sleep(1500);
          }),
          sidecar.endpoint,
        ),
      );
      const instance = await slow.registered();
      const res = await track(sidecar.backend()).preRoomUserJoin(join('alice'));
      assert.equal(res.outcomes[0].status, 'OUTCOME_STATUS_ALLOWED');
      const instances = await sidecar.instances('slow');
      assert.deepEqual(instances.map((i) => i.instanceId), [instance], 'still the same instance: never disconnected');
    },
    ['--heartbeat-interval', '100ms', '--heartbeat-timeout', '400ms'],
  );
});

test('the control for the heartbeat test: a raw stream that never answers heartbeats is cut off under the same settings', async () => {
  await withSidecar(
    async (sidecar) => {
      const client = new (v1().AppRuntime)(sidecar.addr, grpc.credentials.createInsecure());
      const stream = client.Connect();
      const ended = new Promise<number>((resolve) => stream.on('status', (s: grpc.StatusObject) => resolve(s.code)));
      stream.on('error', () => {});
      stream.on('data', () => {}); // reads, registers, and never acks a heartbeat
      stream.write({ register: { appId: 'mute', interfaces: ['HOOK_INTERFACE_PRE_ROOM_USER_JOINED'] } });
      const startedAt = Date.now();
      await waitFor(async () => (await sidecar.instances('mute')).length === 1, 'the raw app to register');
      await ended;
      assert.ok(Date.now() - startedAt < 1500, 'disconnected well before the 1.5 s handler of the test above would end');
      client.close();
    },
    ['--heartbeat-interval', '100ms', '--heartbeat-timeout', '400ms'],
  );
});

test('post events are handled one at a time, in delivery order', async () => {
  await withSidecar(async (sidecar, track) => {
    const order: string[] = [];
    let running = 0;
    let maxRunning = 0;
    track(
      await started(
        app(quiet({ appId: 'ordered' })).postRoomCreate(async (room) => {
          running += 1;
          maxRunning = Math.max(maxRunning, running);
          await sleep(room.id.endsWith('0') ? 30 : 2); // uneven work must not reorder anything
          order.push(room.id);
          running -= 1;
        }),
        sidecar.endpoint,
      ),
    );
    const ids = Array.from({ length: 30 }, (_, i) => `room-${i}`);
    const backend = track(sidecar.backend());
    await backend.postEvents(ids.slice(0, 15).map((id) => ({ roomCreate: { room: stored(id) } })));
    for (const id of ids.slice(15)) await backend.postRoomCreate({ room: stored(id) });
    await waitFor(() => order.length === ids.length, 'all 30 events');
    assert.deepEqual(order, ids);
    assert.equal(maxRunning, 1);
  });
});

test('a post event is acknowledged only after its handler resolves (waitForDelivery returns after it)', async () => {
  await withSidecar(async (sidecar, track) => {
    let finishedAt = 0;
    track(
      await started(
        app(quiet({ appId: 'acker' })).postRoomCreate(async () => {
          await sleep(300);
          finishedAt = Date.now();
        }),
        sidecar.endpoint,
      ),
    );
    const res = await track(sidecar.backend()).postRoomCreate({ room: stored('r1'), eventId: 'ev-1', waitForDelivery: true });
    const answeredAt = Date.now();
    assert.equal(res.outcomes[0].status, 'OUTCOME_STATUS_DELIVERED');
    assert.ok(finishedAt > 0 && finishedAt <= answeredAt, 'the handler had finished when the delivery was confirmed');
    const apps = await sidecar.listApps();
    assert.equal(apps.find((a) => a.appId === 'acker')?.queuedPostEvents, '0');
  });
});

test('a post handler that throws leaves the event unacknowledged: it is redelivered with attempt 2', async () => {
  await withSidecar(
    async (sidecar, track) => {
      const attempts: [string, number][] = [];
      const logger = recordingLogger();
      track(
        await started(
          app(quiet({ appId: 'flaky', logger })).postRoomCreate(async (_room, ctx) => {
            attempts.push([ctx.eventId, ctx.attempt]);
            if (ctx.attempt === 1) throw new Error('the audit store is down');
          }),
          sidecar.endpoint,
        ),
      );
      await track(sidecar.backend()).postRoomCreate({ room: stored('r1'), eventId: 'ev-flaky' });
      await waitFor(() => attempts.length === 2, 'the redelivery', 5000);
      assert.deepEqual(attempts, [
        ['ev-flaky', 1],
        ['ev-flaky', 2],
      ]);
      assert.ok(
        logger.lines.some((l) => l.includes('post handler failed: the audit store is down; not acknowledged, the sidecar will redeliver it')),
        logger.lines.join('\n'),
      );
      await waitFor(async () => (await sidecar.listApps()).find((a) => a.appId === 'flaky')?.queuedPostEvents === '0', 'the ack of attempt 2');
    },
    ['--post-ack-timeout', '300ms'],
  );
});

test("a handler past its timeout: the sidecar records TIMEOUT and the handler's AbortSignal fires at the deadline", async () => {
  await withSidecar(async (sidecar, track) => {
    let ctxSeen: HookContext | undefined;
    let abortedAfter = -1;
    track(
      await started(
        app(quiet({ appId: 'sleepy', timeoutMs: 300 })).preRoomCreatePrevent(async (_room, ctx) => {
          ctxSeen = ctx;
          const start = Date.now();
          await new Promise<void>((resolve) => ctx.signal.addEventListener('abort', () => resolve()));
          abortedAfter = Date.now() - start;
          return true; // too late: never sent
        }),
        sidecar.endpoint,
      ),
    );
    const res = await track(sidecar.backend()).preRoomCreate({ room: channel('late') });
    assert.equal(res.allowed, true, 'an ignore-policy app that times out raises no objection');
    assert.equal(res.outcomes[0].status, 'OUTCOME_STATUS_TIMEOUT');
    await waitFor(() => abortedAfter >= 0, 'the abort');
    assert.ok(ctxSeen?.signal.aborted);
    assert.ok(abortedAfter >= 250, `aborted after ${abortedAfter} ms, not before the deadline`);
    const reason = ctxSeen?.signal.reason as DOMException;
    assert.ok(['TimeoutError', 'AbortError'].includes(reason.name), `the reason is a timeout or the sidecar's CancelCall: ${reason.name}`);
  });
});

test("CancelCall aborts the handler's signal: a backend that gives up cancels a 5 s call within a second", async () => {
  await withSidecar(async (sidecar, track) => {
    let reason: DOMException | undefined;
    let started_ = false;
    track(
      await started(
        app(quiet({ appId: 'patient', timeoutMs: 5000 })).preRoomUserJoined(async (_ctx, ctx) => {
          started_ = true;
          await new Promise<void>((resolve) => ctx.signal.addEventListener('abort', () => resolve()));
          reason = ctx.signal.reason as DOMException;
        }),
        sidecar.endpoint,
      ),
    );
    const backend = track(sidecar.backend());
    const giveUp = new AbortController();
    const call = backend.preRoomUserJoin(join('alice'), { signal: giveUp.signal });
    await waitFor(() => started_, 'the handler to start');
    const cancelledAt = Date.now();
    giveUp.abort();
    await assert.rejects(call, /CANCELLED|Cancelled/);
    await waitFor(() => reason !== undefined, 'the CancelCall to reach the handler', 1000);
    assert.equal(reason?.name, 'AbortError');
    assert.match(reason?.message ?? '', /CancelCall/);
    assert.ok(Date.now() - cancelledAt < 1000);
  });
});

test('stop() drains: a call in flight is answered by its handler, a call arriving meanwhile is refused, then stop resolves', async () => {
  await withSidecar(async (sidecar, track) => {
    let inHandler = false;
    const drainer = await started(
      app(quiet({ appId: 'drainer', timeoutMs: 3000, drainTimeoutMs: 3000 })).preRoomUserJoined(async (context) => {
        inHandler = true;
        await sleep(500);
        if (context.joiningUser.username === 'late') throw new Error('unreachable: refused while draining');
      }),
      sidecar.endpoint,
    );
    const backend = track(sidecar.backend());
    const first = backend.preRoomUserJoin(join('early'));
    await waitFor(() => inHandler, 'the first call to start');
    const stopped = drainer.stop();
    const second = await backend.preRoomUserJoin(join('late'));
    assert.equal(second.outcomes[0].status, 'OUTCOME_STATUS_ERROR');
    assert.match(second.outcomes[0].detail, /shutting down/);
    assert.equal((await first).outcomes[0].status, 'OUTCOME_STATUS_ALLOWED', 'the in-flight call finished normally');
    await stopped;
    await waitFor(async () => (await sidecar.instances('drainer')).length === 0, 'the instance to leave');
  });
});

test('stop() gives up on a handler that outlives drainTimeoutMs: its signal aborts and the app stops anyway', async () => {
  await withSidecar(async (sidecar, track) => {
    let reason: DOMException | undefined;
    let entered = false;
    const stuck = await started(
      app(quiet({ appId: 'stuck', timeoutMs: 5000, drainTimeoutMs: 300 })).preRoomUserJoined(async (_context, ctx) => {
        entered = true;
        ctx.signal.addEventListener('abort', () => (reason = ctx.signal.reason as DOMException));
        await new Promise(() => {}); // never resolves
      }),
      sidecar.endpoint,
    );
    const backend = track(sidecar.backend());
    const call = backend.preRoomUserJoin(join('alice'));
    await waitFor(() => entered, 'the handler to start');
    const stopping = Date.now();
    await stuck.stop();
    assert.ok(Date.now() - stopping < 3000, `stopped after ${Date.now() - stopping} ms`);
    assert.match(reason?.message ?? '', /shutting down/);
    const res = await call;
    assert.notEqual(res.outcomes[0].status, 'OUTCOME_STATUS_ALLOWED', 'the abandoned call got no answer from the app');
  });
});
