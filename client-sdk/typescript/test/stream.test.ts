// The app stream's framing when the peer is not a well-behaved sidecar: another HTTP/2 server
// that answers `Connect` with bytes the SDK cannot take. Each ends the session with a status
// naming what was wrong, and the app retries instead of crashing.

import { test } from 'node:test';
import { strict as assert } from 'node:assert';
import * as http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import { app } from '../dist';
import { quiet, recordingLogger, waitFor } from './harness';

/** An HTTP/2 server that answers every stream with gRPC headers and then `body`. */
async function answering(body: Buffer): Promise<{ endpoint: string; close(): Promise<void> }> {
  const server = http2.createServer();
  server.on('stream', (stream) => {
    stream.respond({ ':status': 200, 'content-type': 'application/grpc' });
    stream.write(body);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    endpoint: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

/** Runs an app against `endpoint` until it logged a retry, and returns that warning. */
async function firstRetry(endpoint: string): Promise<string> {
  const logger = recordingLogger();
  const probe = app(quiet({ appId: 'probe', logger })).preRoomUserJoined(() => {});
  const running = probe.run(endpoint);
  await waitFor(() => logger.lines.some((l) => l.startsWith('WARN cannot reach the sidecar')), 'a retry warning');
  await probe.stop();
  await running;
  return logger.lines.find((l) => l.startsWith('WARN cannot reach the sidecar')) ?? '';
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
