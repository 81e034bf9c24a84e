/**
 * One app stream (`AppRuntime.Connect`) spoken over Node's own HTTP/2 client: gRPC's
 * length-prefixed messages (encoded by protobufjs through proto-loader, as grpc-js would) in
 * both directions, and the call's status from its trailers, its HTTP status or how the stream
 * broke.
 *
 * The app stream is the SDK's hot path, and the one call grpc-js is not used for: its
 * per-message machinery made a Node app's sequential p50 1.3–1.5× the Rust SDK app's, this
 * 1.0–1.1× (docs/performance-history.md, 2026-12-04).
 *
 * @module
 * @internal
 */

import * as http2 from 'node:http2';
import { status as Code } from '@grpc/grpc-js';
import type { AppMessage } from './generated/roomhooks/v1/AppMessage';
import type { RuntimeMessage__Output } from './generated/roomhooks/v1/RuntimeMessage';
import type { AppStreamCodec } from './wire';

/** The largest message the sidecar may send (as grpc-js's default). */
export const MAX_RECEIVE_MESSAGE_BYTES = 4 * 1024 * 1024;
/** gRPC's message prefix: a compressed flag and a 4-byte big-endian length. */
const PREFIX_BYTES = 5;

/** How a stream ended: a gRPC status code (`@grpc/grpc-js`'s `status`) and its message. */
export interface StreamStatus {
  /** The status code. */
  code: Code;
  /** What happened, for logs. */
  details: string;
}

/** What a stream tells its session. */
export interface StreamHandlers {
  /** One message from the sidecar, in order. */
  message(message: RuntimeMessage__Output): void;
  /** The stream ended (exactly once, also after `cancel()`). */
  status(status: StreamStatus): void;
}

/** The gRPC code for an HTTP status without a grpc-status (gRPC's http-grpc-status-mapping). */
function codeForHttp(httpStatus: number): Code {
  switch (httpStatus) {
    case 400:
      return Code.INTERNAL;
    case 401:
      return Code.UNAUTHENTICATED;
    case 403:
      return Code.PERMISSION_DENIED;
    case 404:
      return Code.UNIMPLEMENTED;
    case 429:
    case 502:
    case 503:
    case 504:
      return Code.UNAVAILABLE;
    default:
      return Code.UNKNOWN;
  }
}

/** What broke a stream, in one line: Node's error, its cause, or OpenSSL's reason with a hint. */
function describeFailure(err: Error): string {
  const cause = (err as { cause?: unknown }).cause;
  const root = cause instanceof Error ? cause : err;
  const reason = (root as { reason?: unknown }).reason;
  const code = (root as { code?: unknown }).code;
  if (typeof code === 'string' && (code.startsWith('ERR_SSL_') || code.startsWith('ERR_TLS_') || /CERT|SELF_SIGNED|UNABLE_TO_/.test(code))) {
    const what = typeof reason === 'string' && reason !== '' ? reason : root.message.split('\n')[0];
    return `TLS handshake failed (${what}): an https:// endpoint needs a sidecar serving TLS (--tls-cert) and the CA that signed it (the tls.ca option)`;
  }
  return root.message.split('\n')[0].trim();
}

/** `grpc-message` is percent-encoded; a malformed one is shown as sent. */
function decodeMessage(raw: string): string {
  try {
    return decodeURIComponent(raw);
  } catch {
    return raw;
  }
}

/** The status a header block carries, if any. */
function statusIn(headers: http2.IncomingHttpHeaders): StreamStatus | undefined {
  const raw = headers['grpc-status'];
  if (raw === undefined) return undefined;
  const code = Number(raw);
  const message = headers['grpc-message'];
  const details = typeof message === 'string' ? decodeMessage(message) : '';
  if (!Number.isInteger(code) || code < 0 || code > 16) {
    return { code: Code.UNKNOWN, details: `the sidecar sent grpc-status "${String(raw)}"${details ? `: ${details}` : ''}` };
  }
  return { code: code as Code, details };
}

/** One open `Connect` stream. */
export class AppStream {
  private readonly req: http2.ClientHttp2Stream | undefined;
  private pending: Buffer = Buffer.alloc(0);
  private ended: StreamStatus | undefined;
  private reported = false;
  private httpStatus: number | undefined;
  private failure: Error | undefined;

  /** Opens the stream on `session`, with `headers` (e.g. `authorization`) added to gRPC's own. */
  constructor(
    session: http2.ClientHttp2Session,
    private readonly codec: AppStreamCodec,
    headers: http2.OutgoingHttpHeaders,
    private readonly handlers: StreamHandlers,
  ) {
    let req: http2.ClientHttp2Stream;
    try {
      req = session.request({
        ...headers,
        ':method': 'POST',
        ':path': codec.path,
        'content-type': 'application/grpc',
        te: 'trailers',
      });
    } catch (err) {
      // The session closed between the channel's check and here.
      this.req = undefined;
      this.ended = { code: Code.UNAVAILABLE, details: err instanceof Error ? err.message : String(err) };
      queueMicrotask(() => this.report());
      return;
    }
    this.req = req;
    req.on('response', (h) => {
      this.httpStatus = Number(h[':status']);
      this.ended ??= statusIn(h); // Trailers-Only: the status comes with the headers
    });
    req.on('data', (chunk: Buffer) => this.receive(chunk));
    req.on('trailers', (t) => {
      this.ended ??= statusIn(t);
    });
    req.on('error', (err: Error) => {
      this.failure ??= err;
    });
    req.on('close', () => this.report());
  }

  /** Sends one message (dropped once the stream ended or was half-closed). */
  write(message: AppMessage): void {
    const req = this.req;
    if (!req || this.ended || req.destroyed || req.writableEnded) return;
    const body = this.codec.serialize(message);
    const framed = Buffer.allocUnsafe(PREFIX_BYTES + body.length);
    framed[0] = 0;
    framed.writeUInt32BE(body.length, 1);
    body.copy(framed, PREFIX_BYTES);
    req.write(framed);
  }

  /** Half-closes: the app sends nothing more; the sidecar ends its side in turn. */
  end(): void {
    const req = this.req;
    if (req && !req.destroyed && !req.writableEnded) req.end();
  }

  /** Resets the stream (`RST_STREAM CANCEL`); the status is CANCELLED. */
  cancel(): void {
    this.close({ code: Code.CANCELLED, details: 'cancelled by the app' });
  }

  private close(status: StreamStatus): void {
    this.ended ??= status;
    const req = this.req;
    if (req && !req.destroyed) req.close(http2.constants.NGHTTP2_CANCEL);
    else this.report();
  }

  /** Splits the bytes into messages and hands each on, until the stream ends. */
  private receive(chunk: Buffer): void {
    if (this.ended) return;
    this.pending = this.pending.length === 0 ? chunk : Buffer.concat([this.pending, chunk]);
    while (!this.ended && this.pending.length >= PREFIX_BYTES) {
      const compressed = this.pending[0];
      const length = this.pending.readUInt32BE(1);
      if (compressed !== 0) {
        this.close({ code: Code.INTERNAL, details: 'the sidecar sent a compressed message, and this SDK asks for none' });
        return;
      }
      if (length > MAX_RECEIVE_MESSAGE_BYTES) {
        this.close({
          code: Code.RESOURCE_EXHAUSTED,
          details: `the sidecar sent a message of ${length} bytes, above the SDK's limit of ${MAX_RECEIVE_MESSAGE_BYTES}`,
        });
        return;
      }
      if (this.pending.length < PREFIX_BYTES + length) return;
      const bytes = this.pending.subarray(PREFIX_BYTES, PREFIX_BYTES + length);
      this.pending = this.pending.subarray(PREFIX_BYTES + length);
      let message: RuntimeMessage__Output;
      try {
        message = this.codec.deserialize(bytes);
      } catch (err) {
        this.close({ code: Code.INTERNAL, details: `could not decode a message from the sidecar: ${err instanceof Error ? err.message : String(err)}` });
        return;
      }
      this.handlers.message(message);
    }
  }

  /** Tells the session how the stream ended, once. */
  private report(): void {
    if (this.reported) return;
    this.reported = true;
    this.handlers.status(this.ended ?? this.inferred());
  }

  /** The status of a stream that ended without one. */
  private inferred(): StreamStatus {
    if (this.httpStatus !== undefined && this.httpStatus !== 200) {
      return {
        code: codeForHttp(this.httpStatus),
        details: `the endpoint answered HTTP status ${this.httpStatus} without a gRPC status: is it the sidecar's gRPC address (--listen), not another port or service?`,
      };
    }
    const rst = this.req?.rstCode;
    if (rst === http2.constants.NGHTTP2_REFUSED_STREAM) {
      return { code: Code.UNAVAILABLE, details: 'the sidecar refused the stream (RST_STREAM REFUSED_STREAM)' };
    }
    if (this.failure) return { code: Code.UNAVAILABLE, details: describeFailure(this.failure) };
    if (rst !== undefined && rst !== http2.constants.NGHTTP2_NO_ERROR) {
      return { code: Code.UNAVAILABLE, details: `the sidecar reset the stream (RST_STREAM code ${rst})` };
    }
    return { code: Code.UNAVAILABLE, details: 'the connection closed before the sidecar sent a status' };
  }
}
