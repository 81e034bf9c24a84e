// Delete-prevent and the post hooks of an Apps-Engine app through the runner: check* methods,
// the configurable prevent message, post handlers acknowledged after they resolve and
// redelivered after they throw.

import { strict as assert } from 'node:assert';
import { after, before, test } from 'node:test';
import { AppsEngineRunner } from '../src';
import { httpService, packApp, recording, startSidecar, tempDir, waitFor } from './support';
import type { Sidecar } from './support';

const AUDIT = '4c4a8c63-3b0f-4d3e-9a53-6f7d1f0e0a07';
let sidecar: Sidecar;
let runner: AppsEngineRunner;
let service: Awaited<ReturnType<typeof httpService>>;
const reports: Record<string, unknown>[] = [];
let failNext = 0;

before(async () => {
  service = await httpService((_req, body) => {
    if (failNext > 0) {
      failNext -= 1;
      return { status: 503, json: {} };
    }
    reports.push(body as Record<string, unknown>);
    return { json: { ok: true } };
  });
  // A short ack timeout, so an event whose handler threw is redelivered quickly.
  sidecar = await startSidecar(['--post-ack-timeout', '300ms']);
  runner = await AppsEngineRunner.open(packApp('audit'), {
    dataDir: tempDir('data'),
    log: recording(),
    stopOnSignals: false,
    preventMessage: 'Protected rooms cannot be deleted.',
    settings: { settings: { audit_url: `${service.url}/audit` } },
  });
  await runner.start(sidecar.endpoint).registered();
});

after(async () => {
  await runner?.stop();
  await sidecar?.stop();
  await service?.close();
});

test('executePreRoomDeletePrevent returning true vetoes with the configured prevent message', async () => {
  const verdict = await sidecar.backend().preRoomDelete({ room: { id: 'r-1', type: 'ROOM_TYPE_CHANNEL', customFields: { protected: true } } });
  assert.equal(verdict.allowed, false);
  assert.equal(verdict.preventions[0]?.appId, AUDIT);
  assert.equal(verdict.preventions[0]?.message, 'Protected rooms cannot be deleted.');
  const open = await sidecar.backend().preRoomDelete({ room: { id: 'r-2', type: 'ROOM_TYPE_CHANNEL', customFields: { protected: false } } });
  assert.equal(open.allowed, true);
});

test('executePostRoomCreate runs after checkPostRoomCreate, and the event is acknowledged once it resolved', async () => {
  reports.length = 0;
  const quiet = await sidecar.backend().postRoomCreate({ room: { id: 'r-q', slugifiedName: 'quiet', type: 'ROOM_TYPE_CHANNEL' }, eventId: 'c-quiet', waitForDelivery: true });
  assert.equal(quiet.outcomes[0]?.status, 'OUTCOME_STATUS_DELIVERED', 'a check that returns false still acknowledges');
  const loud = await sidecar.backend().postRoomCreate({
    room: { id: 'r-l', slugifiedName: 'launch', type: 'ROOM_TYPE_PRIVATE_GROUP', creator: { id: 'u-1', username: 'alice' } },
    eventId: 'c-launch',
    waitForDelivery: true,
  });
  assert.equal(loud.outcomes[0]?.status, 'OUTCOME_STATUS_DELIVERED');
  assert.deepEqual(reports, [{ event: 'created', room: 'launch', type: 'p', creator: 'alice' }]);
});

test('executePostRoomDeleted and executePostRoomUserLeave get the room and the leave context', async () => {
  reports.length = 0;
  await sidecar.backend().postRoomDeleted({ room: { id: 'r-d', slugifiedName: 'old', type: 'ROOM_TYPE_CHANNEL' }, eventId: 'd-1', waitForDelivery: true });
  await sidecar.backend().postRoomUserLeave({
    context: { room: { id: 'r-1', type: 'ROOM_TYPE_CHANNEL' }, leavingUser: { id: 'u-2', username: 'bob' }, removedBy: { id: 'u-1', username: 'alice' } },
    eventId: 'l-1',
    waitForDelivery: true,
  });
  assert.deepEqual(reports, [
    { event: 'deleted', room: 'old' },
    { event: 'left', room: 'r-1', user: 'bob', removedBy: 'alice' },
  ]);
});

test('a post handler that throws leaves the event unacknowledged, and its redelivery runs it again', async () => {
  reports.length = 0;
  failNext = 1; // the audit service fails once: the handler throws, the event is not acknowledged
  await sidecar.backend().postRoomDeleted({ room: { id: 'r-x', slugifiedName: 'retried', type: 'ROOM_TYPE_CHANNEL' }, eventId: 'd-retry' });
  await waitFor(() => reports.length === 1, 'the redelivered event to be reported');
  assert.deepEqual(reports, [{ event: 'deleted', room: 'retried' }]);
  assert.equal(failNext, 0, 'the first delivery reached the service and failed');
});
