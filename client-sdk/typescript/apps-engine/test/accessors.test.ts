// Apps-Engine's accessors through the runner against the real sidecar: durable persistence read
// back after a runner restart (the CLI, as an operator runs it), IHttp against a local service,
// and an unavailable accessor failing with one clear error so the failure policy applies.

import { strict as assert } from 'node:assert';
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, test } from 'node:test';
import { AppsEngineRunner } from '../src';
import { PKG_DIR, httpService, packApp, recording, startSidecar, tempDir, waitFor } from './support';
import type { Sidecar } from './support';

const JOIN_COUNTER = '4c4a8c63-3b0f-4d3e-9a53-6f7d1f0e0a04';
const POLICY = '4c4a8c63-3b0f-4d3e-9a53-6f7d1f0e0a05';
const MEMBERS = '4c4a8c63-3b0f-4d3e-9a53-6f7d1f0e0a06';
const CLI = path.join(PKG_DIR, 'dist', 'cli.js');

let sidecar: Sidecar;

before(async () => {
  sidecar = await startSidecar();
});

after(async () => {
  await sidecar?.stop();
});

/** Runs the CLI (`roomhooks-apps-engine run …`) as a child process; resolves once its app is registered. */
async function cli(args: string[], appId: string): Promise<ChildProcess & { stderr: NodeJS.ReadableStream; output: string[] }> {
  const proc = spawn(process.execPath, [CLI, 'run', ...args, '--sidecar', sidecar.endpoint], { stdio: ['ignore', 'ignore', 'pipe'] });
  const output: string[] = [];
  proc.stderr.setEncoding('utf8');
  proc.stderr.on('data', (c: string) => output.push(c));
  await waitFor(async () => (await sidecar.instances(appId)).length === 1, `the CLI's ${appId} to register (log: ${output.join('')})`);
  return Object.assign(proc, { output }) as ChildProcess & { stderr: NodeJS.ReadableStream; output: string[] };
}

async function stopCli(proc: ChildProcess): Promise<number | null> {
  const exited = new Promise<number | null>((resolve) => proc.once('exit', (code) => resolve(code)));
  proc.kill('SIGTERM');
  return exited;
}

const join = (username: string) => ({ room: { id: 'r-1', type: 'ROOM_TYPE_CHANNEL' as const }, joiningUser: { id: `u-${username}`, username } });

test('joins counted in persistence by a post handler are read back by a Pre handler, and survive a runner restart', async () => {
  const dataDir = tempDir('data');
  const settings = path.join(tempDir('settings'), 'settings.json');
  fs.writeFileSync(settings, JSON.stringify({ settings: { max_joins: 2 } }));
  const zip = packApp('join-counter');
  const args = [zip, '--data-dir', dataDir, '--settings', settings];
  const backend = sidecar.backend();

  let proc = await cli(args, JOIN_COUNTER);
  assert.equal((await backend.preRoomUserJoin({ context: join('alice') })).allowed, true);
  for (const [i, user] of ['alice', 'bob'].entries()) {
    const res = await backend.postRoomUserJoined({ context: join(user), eventId: `join-${i}`, waitForDelivery: true });
    assert.equal(res.outcomes[0]?.status, 'OUTCOME_STATUS_DELIVERED', 'acknowledged after executePostRoomUserJoined resolved');
  }
  const full = await backend.preRoomUserJoin({ context: join('carol') });
  assert.equal(full.allowed, false);
  assert.equal(full.preventions[0]?.message, 'r-1 is full: 2 joins');
  assert.equal(await stopCli(proc), 0, 'the CLI exits 0 after SIGTERM');
  await waitFor(async () => (await sidecar.instances(JOIN_COUNTER)).length === 0, 'the first runner to leave');

  proc = await cli(args, JOIN_COUNTER);
  try {
    const again = await backend.preRoomUserJoin({ context: join('carol') });
    assert.equal(again.allowed, false, 'the count was read back from --data-dir after the restart');
    assert.equal(again.preventions[0]?.message, 'r-1 is full: 2 joins');
    assert.ok(fs.existsSync(path.join(dataDir, `${JOIN_COUNTER}.sqlite`)));
  } finally {
    await stopCli(proc);
  }
});

test('IHttp get and post reach a local service: query params, JSON data, default headers, statusCode and parsed data', async () => {
  const seen: string[] = [];
  const service = await httpService((req, body) => {
    seen.push(`${req.method} ${req.url} x-app=${String(req.headers['x-app'])}`);
    if (req.url?.startsWith('/policy')) return { json: { allowed: !new URL(req.url, 'http://x').searchParams.get('name')?.includes('forbidden') } };
    const b = body as { name: string; site: string };
    return { status: 201, json: { category: `${b.name.length > 5 ? 'long' : 'short'}@${b.site}`, header: req.headers['x-app'] } };
  });
  const runner = await AppsEngineRunner.open(packApp('policy'), {
    dataDir: tempDir('data'),
    log: recording(),
    stopOnSignals: false,
    settings: { settings: { policy_url: service.url }, serverSettings: { Site_Url: 'https://chat.example' } },
  });
  try {
    await runner.start(sidecar.endpoint).registered();
    const refused = await sidecar.backend().preRoomCreate({ room: { displayName: 'forbidden topics', type: 'ROOM_TYPE_CHANNEL' } });
    assert.equal(refused.allowed, false);
    assert.equal(refused.preventions[0]?.appId, POLICY);
    const allowed = await sidecar.backend().preRoomCreate({ room: { displayName: 'Launch Party', type: 'ROOM_TYPE_CHANNEL' } });
    assert.equal(allowed.allowed, true);
    assert.equal(allowed.room.customFields.category, 'long@https://chat.example');
    assert.equal(allowed.room.customFields.classified_by, '201 policy');
    assert.ok(seen.includes('GET /policy?name=Launch+Party x-app=policy'), seen.join('\n'));
    assert.ok(seen.includes('POST /classify x-app=policy'), seen.join('\n'));
  } finally {
    await runner.stop();
    await service.close();
  }
});

test('an unavailable accessor fails the call with one clear NotAvailableInRoomHooks error, logged once and counted, and the fail policy prevents', async () => {
  const log = recording();
  const runner = await AppsEngineRunner.open(packApp('members'), { dataDir: tempDir('data'), log, failurePolicy: 'fail', stopOnSignals: false });
  try {
    await runner.start(sidecar.endpoint).registered();
    for (let i = 0; i < 2; i += 1) {
      const verdict = await sidecar.backend().preRoomCreate({ room: { displayName: 'Big Room', type: 'ROOM_TYPE_CHANNEL' } });
      assert.equal(verdict.allowed, false);
      assert.equal(verdict.preventions[0]?.reason, 'PREVENTION_REASON_APP_UNAVAILABLE');
      const outcome = verdict.outcomes.find((o) => o.appId === MEMBERS);
      assert.equal(outcome?.status, 'OUTCOME_STATUS_ERROR');
      assert.match(outcome?.detail ?? '', /^error: NotAvailableInRoomHooks: read\.getRoomReader\(\)\.getMembers\(\) — /);
    }
    assert.deepEqual(runner.unavailableCalls(), { 'read.getRoomReader().getMembers()': 2 });
    assert.equal(log.lines('NotAvailableInRoomHooks: read.getRoomReader().getMembers()').length, 1, 'logged once');
  } finally {
    await runner.stop();
  }
});

test('with the default ignore policy the same unavailable accessor fails open: the room is allowed and the error is in the outcome', async () => {
  const runner = await AppsEngineRunner.open(packApp('members'), { dataDir: tempDir('data'), log: recording(), stopOnSignals: false });
  try {
    await runner.start(sidecar.endpoint).registered();
    const verdict = await sidecar.backend().preRoomCreate({ room: { displayName: 'Big Room', type: 'ROOM_TYPE_CHANNEL' } });
    assert.equal(verdict.allowed, true);
    assert.match(verdict.outcomes.find((o) => o.appId === MEMBERS)?.detail ?? '', /NotAvailableInRoomHooks/);
  } finally {
    await runner.stop();
  }
});

test("a Pre call's http request is aborted when the sidecar stops waiting for the call", async () => {
  let aborted = false;
  let received = false;
  const http = await import('node:http');
  const server = http.createServer((req) => {
    received = true;
    req.socket.once('close', () => (aborted = true)); // never answered: only an abort closes it
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as import('node:net').AddressInfo).port;
  const runner = await AppsEngineRunner.open(packApp('policy'), {
    dataDir: tempDir('data'),
    log: recording(),
    stopOnSignals: false,
    timeoutMs: 300,
    settings: { settings: { policy_url: `http://127.0.0.1:${port}` } },
  });
  try {
    await runner.start(sidecar.endpoint).registered();
    const verdict = await sidecar.backend().preRoomCreate({ room: { displayName: 'Slow', type: 'ROOM_TYPE_CHANNEL' } });
    assert.equal(verdict.outcomes.find((o) => o.appId === POLICY)?.status, 'OUTCOME_STATUS_TIMEOUT');
    assert.equal(received, true);
    // The request's own timeout is 10 s (DEFAULT_HTTP_TIMEOUT_MS): closing sooner is the call's abort.
    await waitFor(() => aborted, 'the request to be aborted with the call', 5000);
  } finally {
    await runner.stop();
    server.closeAllConnections();
    server.close();
  }
});
