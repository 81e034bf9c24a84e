// Apps-Engine's IHttp on fetch, alone against a local service: every method, Apps-Engine's request
// options and response shape, a timeout.

import { strict as assert } from 'node:assert';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import { test } from 'node:test';
import { RequestMethod } from '@rocket.chat/apps-engine/definition/accessors';
import { createHttp } from '../src';
import { httpService } from './support';

const noDefaults = () => ({ headers: new Map<string, string>(), params: new Map<string, string>() });

test('put, del and patch send their method; content is sent as is; auth becomes a Basic header; query and params are merged', async () => {
  const seen: string[] = [];
  const service = await httpService((req, body) => {
    seen.push(`${req.method} ${req.url} ${String(req.headers.authorization)} ${JSON.stringify(body)}`);
    return { json: { ok: true } };
  });
  try {
    const h = createHttp(noDefaults());
    await h.put(`${service.url}/a`, { content: '{"raw":1}', headers: { 'content-type': 'application/json' } });
    await h.del(`${service.url}/b`, { query: 'x=1', params: { y: '2' } });
    const res = await h.patch(`${service.url}/c`, { data: { z: 3 }, auth: 'user:pass' });
    assert.deepEqual(seen, [
      'PUT /a undefined {"raw":1}',
      'DELETE /b?x=1&y=2 undefined undefined',
      `PATCH /c Basic ${Buffer.from('user:pass').toString('base64')} {"z":3}`,
    ]);
    assert.equal(res.method, RequestMethod.PATCH);
    assert.equal(res.statusCode, 200);
    assert.equal(res.headers?.['content-type'], 'application/json');
    assert.equal(res.content, '{"ok":true}');
    assert.deepEqual(res.data, { ok: true });
  } finally {
    await service.close();
  }
});

test('a response that is not JSON has its content and no data; an error status is returned, not thrown', async () => {
  const server = http.createServer((_req, res) => {
    res.writeHead(418, { 'content-type': 'text/plain' });
    res.end('short and stout');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  try {
    const res = await createHttp(noDefaults()).get(`http://127.0.0.1:${(server.address() as AddressInfo).port}/`);
    assert.equal(res.statusCode, 418);
    assert.equal(res.content, 'short and stout');
    assert.equal(res.data, undefined);
  } finally {
    server.close();
  }
});

test("a request's timeout option ends a request the server never answers", async () => {
  const server = http.createServer(() => {});
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  try {
    await assert.rejects(createHttp(noDefaults()).get(`http://127.0.0.1:${(server.address() as AddressInfo).port}/`, { timeout: 100 }), /timeout|aborted/i);
  } finally {
    server.closeAllConnections();
    server.close();
  }
});
