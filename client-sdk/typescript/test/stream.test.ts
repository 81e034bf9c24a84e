// The app stream when the peer is not a well-behaved sidecar: another HTTP/2 server that answers
// `Connect` with an HTTP error or with bytes the SDK cannot take. Each ends the session with a
// status naming what was wrong; the app gives up (404) or retries, and never crashes.

import { test } from 'node:test';
import { strict as assert } from 'node:assert';
import { RefusedError, app } from '../dist';
import { firstRetryWarning, http2Peer, quiet, recordingLogger } from './harness';

/** A peer that answers every stream with gRPC's headers and then `body`. */
function answering(body: Buffer): ReturnType<typeof http2Peer> {
  return http2Peer((stream) => {
    stream.respond({ ':status': 200, 'content-type': 'application/grpc' });
    stream.write(body);
  });
}

/** The first retry warning of a veto app run against `endpoint`. */
function firstRetry(endpoint: string): Promise<string> {
  const logger = recordingLogger();
  return firstRetryWarning(app(quiet({ appId: 'probe', logger })).preRoomUserJoined(() => {}), logger, endpoint);
}

/** A gRPC message prefix: the compressed flag and the big-endian length. */
function prefix(compressed: number, length: number): Buffer {
  const out = Buffer.alloc(5);
  out[0] = compressed;
  out.writeUInt32BE(length, 1);
  return out;
}

test('a message that is not a RuntimeMessage ends the stream with INTERNAL naming the decode error, and the app retries', async () => {
  const garbage = Buffer.from([0xff, 0xff, 0xff, 0xff]);
  const server = await answering(Buffer.concat([prefix(0, garbage.length), garbage]));
  try {
    assert.match(await firstRetry(server.endpoint), /\(INTERNAL: could not decode a message from the sidecar: .+\); is it running/);
  } finally {
    await server.close();
  }
});

test('a compressed message, or one above 4 MiB, ends the stream with a status that says so', async () => {
  const compressed = await answering(Buffer.concat([prefix(1, 1), Buffer.from([0])]));
  const huge = await answering(prefix(0, 5 * 1024 * 1024));
  try {
    assert.match(await firstRetry(compressed.endpoint), /\(INTERNAL: the sidecar sent a compressed message, and this SDK asks for none\)/);
    assert.match(await firstRetry(huge.endpoint), /\(RESOURCE_EXHAUSTED: the sidecar sent a message of 5242880 bytes, above the SDK's limit of 4194304\)/);
  } finally {
    await compressed.close();
    await huge.close();
  }
});

test('an HTTP/2 server that is not the sidecar (it answers 404) is refused at once: RefusedError asks for the --listen address', async () => {
  const other = await http2Peer((stream) => {
    stream.respond({ ':status': 404 });
    stream.end();
  });
  try {
    await assert.rejects(app(quiet({ appId: 'lost' })).preRoomUserJoined(() => {}).run(other.endpoint), (err: Error) => {
      assert.ok(err instanceof RefusedError, String(err));
      assert.equal(err.code, 'UNIMPLEMENTED');
      assert.match(err.message, /HTTP status 404 without a gRPC status: is it the sidecar's gRPC address \(--listen\)/);
      return true;
    });
  } finally {
    await other.close();
  }
});
