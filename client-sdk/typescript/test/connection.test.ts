// Connecting: reconnect after the sidecar restarts, endpoints that rotate, a shared HTTP/2
// connection for several apps, refusals, tokens and bad endpoints that say what to do.

import { test } from 'node:test';
import { strict as assert } from 'node:assert';
import { Connection, InvalidEndpointError, RefusedError, app } from '../dist';
import { Sidecar, firstRetryWarning, quiet, recordingLogger, sleep, started, stored, waitFor, withSidecar } from './harness';

const join = (username: string) => ({ context: { room: stored('general'), joiningUser: { username } } });
const bouncer = (appId: string, extra: Parameters<typeof quiet>[0] | object = {}) =>
  app(quiet({ appId, ...extra })).preRoomUserJoined((context) => {
    if (context.joiningUser.username === 'troll') throw new Error('unreachable');
  });

test('the app reconnects and re-registers after the sidecar restarts on the same address', async () => {
  const first = await Sidecar.start();
  const logger = recordingLogger();
  const survivor = await started(bouncer('survivor', { logger }), first.endpoint);
  const firstInstance = await survivor.registered();
  let second: Sidecar | undefined;
  try {
    await first.stop('SIGKILL');
    second = await Sidecar.start([], { port: first.port });
    const secondInstance = await survivor.registered();
    await waitFor(async () => (await second!.instances('survivor')).length === 1, 'the app on the new sidecar');
    const backend = second.backend();
    const res = await backend.preRoomUserJoin(join('alice'));
    backend.close();
    assert.equal(res.outcomes[0].status, 'OUTCOME_STATUS_ALLOWED');
    assert.notEqual(secondInstance, firstInstance, 'a new registration, so a new instance id');
    assert.ok(logger.lines.some((l) => /connection to the sidecar ended .*reconnecting in \d+ ms/.test(l)), logger.lines.join('\n'));
  } finally {
    await survivor.stop();
    await second?.stop();
    await first.stop();
  }
});

test('a sidecar that stops answering (SIGSTOP) is noticed by the HTTP/2 keepalive ping, and the app reconnects', async () => {
  await withSidecar(async (sidecar, track) => {
    const logger = recordingLogger();
    const patient = track(await started(bouncer('patient', { logger }), sidecar.endpoint));
    const first = await patient.registered();
    sidecar.proc.kill('SIGSTOP'); // the socket stays open; nothing answers on it
    try {
      // One ping every 10 s, 10 s for its answer: the connection is given up within 20 s.
      await waitFor(() => logger.lines.some((l) => l.includes('keepalive: the sidecar did not answer an HTTP/2 ping within 10000 ms')), 'the keepalive to give up', 25_000);
    } finally {
      sidecar.proc.kill('SIGCONT');
    }
    assert.ok(logger.lines.some((l) => /connection to the sidecar ended \(UNAVAILABLE: keepalive: .*\); reconnecting in \d+ ms/.test(l)), logger.lines.join('\n'));
    await waitFor(async () => (await patient.registered()) !== first, 'a new registration on the resumed sidecar', 10_000);
  });
});

test('apps on a shared Connection re-register after the sidecar was down for a while', async () => {
  const first = await Sidecar.start();
  const shared = new Connection(first.endpoint);
  const apps = ['shared-a', 'shared-b'].map((id) => bouncer(id));
  let second: Sidecar | undefined;
  try {
    for (const a of apps) await started(a, shared);
    await first.stop('SIGKILL');
    await sleep(6000); // long enough for grpc-js's default channel backoff (1 s, x1.6 each try) to reach 4 s
    second = await Sidecar.start([], { port: first.port });
    const started_ = Date.now();
    await waitFor(async () => (await second!.listApps()).filter((a) => a.instances.length === 1).length === 2, 'both apps back', 8000);
    assert.ok(Date.now() - started_ < 2000, `back ${Date.now() - started_} ms after the restart`);
  } finally {
    await Promise.all(apps.map((a) => a.stop()));
    shared.close();
    await second?.stop();
  }
});

test('a stream the sidecar ends with OK (its graceful shutdown) is reconnected like an error', async () => {
  const first = await Sidecar.start(['--drain-timeout', '1s']);
  const logger = recordingLogger();
  const survivor = await started(bouncer('survivor', { logger }), first.endpoint);
  let second: Sidecar | undefined;
  try {
    await first.stop('SIGTERM');
    second = await Sidecar.start([], { port: first.port });
    await waitFor(async () => (await second!.instances('survivor')).length === 1, 'the app on the restarted sidecar');
    assert.ok(
      logger.lines.some((l) => l.includes('connection to the sidecar ended (the sidecar ended the stream); reconnecting')),
      `the stream ended with OK, and the app reconnected:\n${logger.lines.join('\n')}`,
    );
  } finally {
    await survivor.stop();
    await second?.stop();
  }
});

test('several endpoints rotate: an app given a dead endpoint first registers on the next one', async () => {
  await withSidecar(async (sidecar, track) => {
    const logger = recordingLogger();
    track(await started(bouncer('rotator', { logger }), ['http://127.0.0.1:1', sidecar.endpoint]));
    assert.equal((await sidecar.instances('rotator')).length, 1);
    assert.ok(
      logger.lines.some((l) => l.includes('cannot reach the sidecar at http://127.0.0.1:1') && l.includes('retrying in')),
      logger.lines.join('\n'),
    );
  });
});

test('apps on one Connection share one HTTP/2 connection; apps on their own have one each', async () => {
  await withSidecar(async (sidecar, track) => {
    const shared = track(new Connection(sidecar.endpoint));
    for (const id of ['shared-a', 'shared-b', 'shared-c']) track(await started(bouncer(id), shared));
    for (const id of ['own-a', 'own-b']) track(await started(bouncer(id), sidecar.endpoint));
    const peers = async (ids: string[]) => {
      const apps = await sidecar.listApps();
      return ids.map((id) => apps.find((a) => a.appId === id)?.instances[0]?.peerAddress);
    };
    const sharedPeers = await peers(['shared-a', 'shared-b', 'shared-c']);
    assert.equal(new Set(sharedPeers).size, 1, `one client address for the three shared apps: ${sharedPeers}`);
    const ownPeers = await peers(['own-a', 'own-b']);
    assert.equal(new Set([...ownPeers, sharedPeers[0]]).size, 3, `own connections differ: ${ownPeers}`);
    // A fan-out to all three shared apps works over the one connection.
    const res = await track(sidecar.backend()).preRoomUserJoin(join('alice'));
    assert.equal(res.outcomes.filter((o) => o.status === 'OUTCOME_STATUS_ALLOWED').length, 5);
  });
});

test('an endpoint without a scheme means http:// (as in the Rust SDK); another scheme, or none at all, is refused at once saying what to write', async () => {
  await withSidecar(async (sidecar, track) => {
    track(await started(bouncer('no-scheme'), sidecar.addr));
    assert.equal((await sidecar.instances('no-scheme')).length, 1);
  });
  await assert.rejects(bouncer('typo').run('grpc://127.0.0.1:50051'), (err: Error) => {
    assert.ok(err instanceof InvalidEndpointError);
    assert.match(err.message, /has the scheme grpc:\/\/, which is not supported: use http:\/\/ \(plaintext\) or https:\/\/ \(TLS\), e\.g\. http:\/\/127\.0\.0\.1:50051/);
    return true;
  });
  await assert.rejects(bouncer('typo').run(''), /the sidecar endpoint is empty: give its address, e\.g\. http:\/\/127\.0\.0\.1:50051/);
  assert.throws(() => new Connection('localhost:50051/roomhooks'), /has a path or query; write only scheme, host and port/);
});

test('an unreachable sidecar is retried with a warning naming the endpoint until stop()', async () => {
  const logger = recordingLogger();
  const lonely = bouncer('lonely', { logger });
  const running = lonely.run('http://127.0.0.1:1');
  await waitFor(() => logger.lines.filter((l) => l.startsWith('WARN cannot reach the sidecar at http://127.0.0.1:1')).length >= 2, 'two retries');
  assert.match(logger.lines[0], /is it running and listening there\? retrying in \d+ ms/);
  await lonely.stop();
  await running;
});

test('an https:// endpoint on a plaintext sidecar is retried with a warning that the TLS handshake failed', async () => {
  await withSidecar(async (sidecar) => {
    const logger = recordingLogger();
    const warning = await firstRetryWarning(bouncer('mistaken', { logger }), logger, `https://${sidecar.addr}`);
    assert.match(warning, /UNAVAILABLE: TLS handshake failed \(.+\): an https:\/\/ endpoint needs a sidecar serving TLS \(--tls-cert\)/);
    assert.doesNotMatch(warning, /\n/, 'one line, not OpenSSL\'s multi-line dump');
  });
});

test('a registration the sidecar refuses for good rejects run() with RefusedError naming the field', async () => {
  await withSidecar(async (sidecar) => {
    const logger = recordingLogger();
    await assert.rejects(bouncer('not a valid id!', { logger }).run(sidecar.endpoint), (err: Error) => {
      assert.ok(err instanceof RefusedError, String(err));
      assert.equal(err.code, 'INVALID_ARGUMENT');
      assert.match(err.message, /app_id/);
      assert.match(err.message, /fix the registration and restart/);
      return true;
    });
    assert.ok(logger.lines.some((l) => l.startsWith('ERROR the sidecar refused the app')));
  });
});

test('a taken instance id (FAILED_PRECONDITION) is retried, not fatal: the second instance registers once the first left', async () => {
  await withSidecar(async (sidecar, track) => {
    const first = await started(bouncer('twin', { instanceId: 'twin-1' }), sidecar.endpoint);
    const logger = recordingLogger();
    const second = track(bouncer('twin', { instanceId: 'twin-1', logger }));
    second.start(sidecar.endpoint);
    await waitFor(() => logger.lines.some((l) => l.includes('FAILED_PRECONDITION')), 'the refusal to be logged');
    await first.stop();
    assert.equal(await second.registered(), 'twin-1');
  });
});

test('an app without its token is refused UNAUTHENTICATED; with it, it registers', async () => {
  await withSidecar(
    async (sidecar, track) => {
      await assert.rejects(bouncer('guarded').run(sidecar.endpoint), (err: Error) => err instanceof RefusedError && err.code === 'UNAUTHENTICATED');
      await assert.rejects(
        bouncer('guarded', { token: 'wrong' }).run(sidecar.endpoint),
        (err: Error) => err instanceof RefusedError && ['UNAUTHENTICATED', 'PERMISSION_DENIED'].includes(err.code),
      );
      track(await started(bouncer('guarded', { token: 's3cret' }), sidecar.endpoint));
      assert.equal((await sidecar.instances('guarded')).length, 1);
    },
    ['--app-token', 'guarded=s3cret'],
  );
});

test('a token an HTTP header cannot carry (a trailing newline) is refused when the app is made, saying what to check', () => {
  assert.throws(() => bouncer('newline', { token: 's3cret\n' }), /the token must be a non-empty string of printable ASCII .*check for a trailing newline/);
  assert.throws(() => bouncer('empty', { token: '' }), /the token must be a non-empty string/);
});

test('an app with no handlers is refused before connecting, saying what to add', async () => {
  await assert.rejects(app(quiet({ appId: 'empty' })).run('http://127.0.0.1:50051'), /implements none of the ten interfaces: add a method such as executePreRoomCreatePrevent/);
});
