// TLS and mutual TLS: an app and a backend on https:// with certificates made for the test
// (a CA, a server certificate for "localhost", a client certificate) by openssl.

import { test } from 'node:test';
import { strict as assert } from 'node:assert';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { Connection, RoomHooksClient, app } from '../dist';
import type { TlsOptions } from '../dist';
import { Sidecar, quiet, recordingLogger, started, stored, tempDir, waitFor } from './harness';

interface Pki {
  dir: string;
  ca: string;
  client: { cert: string; key: string };
}

/** Makes a CA and two leaves signed by it with openssl (present on Debian and on CI's machine). */
function pki(): Pki {
  const dir = tempDir('roomhooks-tls-');
  const ossl = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
  ossl('req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', 'ca.key', '-out', 'ca.pem',
    '-days', '2', '-subj', '/CN=roomhooks test CA', '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign');
  const leaf = (name: string, ext: string) => {
    ossl('req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${name}`);
    fs.writeFileSync(path.join(dir, `${name}.ext`), ext);
    ossl('x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-out', `${name}.pem`, '-days', '2', '-extfile', `${name}.ext`);
  };
  leaf('server', 'subjectAltName=DNS:localhost\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n');
  leaf('client', 'extendedKeyUsage=clientAuth\nbasicConstraints=CA:FALSE\n');
  const read = (f: string) => fs.readFileSync(path.join(dir, f), 'utf8');
  return { dir, ca: read('ca.pem'), client: { cert: read('client.pem'), key: read('client.key') } };
}

test('mutual TLS: an app and a backend with the CA and a client certificate work on https://; an app without one does not register', async () => {
  const certs = pki();
  const sidecar = await Sidecar.start([
    '--tls-cert', path.join(certs.dir, 'server.pem'),
    '--tls-key', path.join(certs.dir, 'server.key'),
    '--tls-client-ca', path.join(certs.dir, 'ca.pem'),
  ]);
  const endpoint = `https://${sidecar.addr}`;
  sidecar.admin = {
    credentials: grpc.credentials.createSsl(Buffer.from(certs.ca), Buffer.from(certs.client.key), Buffer.from(certs.client.cert)),
    options: { 'grpc.ssl_target_name_override': 'localhost' },
  };
  const tls: TlsOptions = { ca: certs.ca, cert: certs.client.cert, key: certs.client.key, serverName: 'localhost' };
  const logger = recordingLogger();
  const anonymous = app(quiet({ appId: 'anonymous', logger, tls: { ca: certs.ca, serverName: 'localhost' } })).preRoomUserJoined(() => {});
  const secure = app(quiet({ appId: 'secure', tls })).preRoomUserJoined((context) => {
    if (context.joiningUser.username === 'troll') throw new Error('no trolls over TLS either');
  });
  const shared = new Connection(endpoint, { tls });
  const onShared = app(quiet({ appId: 'secure-shared' })).preRoomUserJoined(() => {});
  const backend = new RoomHooksClient(endpoint, { tls, deadlineMs: 5000 });
  try {
    await started(secure, endpoint);
    await started(onShared, shared);
    const res = await backend.preRoomUserJoin({ context: { room: stored('general'), joiningUser: { username: 'alice' } } });
    assert.deepEqual(res.outcomes.map((o) => o.status), ['OUTCOME_STATUS_ALLOWED', 'OUTCOME_STATUS_ALLOWED']);
    anonymous.start(endpoint);
    await waitFor(() => logger.lines.some((l) => l.startsWith('WARN cannot reach the sidecar')), 'the refused handshake to be logged');
    assert.equal((await sidecar.instances('anonymous')).length, 0);
    assert.equal((await sidecar.instances('secure-shared')).length, 1);
    assert.throws(() => new RoomHooksClient(`http://${sidecar.addr}`, { tls }), /TLS settings were given but the endpoint .* is http:\/\/; use https:\/\//);
  } finally {
    backend.close();
    await Promise.all([secure.stop(), onShared.stop(), anonymous.stop()]);
    shared.close();
    await sidecar.stop();
    fs.rmSync(certs.dir, { recursive: true, force: true });
  }
});
