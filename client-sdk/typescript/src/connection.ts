/**
 * How an app reaches the sidecar: on a connection of its own (a fresh one for every session), or
 * on one HTTP/2 connection that every app of the process shares, one stream per app. Endpoints
 * and TLS settings are parsed here for both the app streams and the backend client.
 *
 * @module
 */

import type * as http2 from 'node:http2';
import * as grpc from '@grpc/grpc-js';
import { Http2Channel, KEEPALIVE_MS } from './channel';
import { InvalidEndpointError } from './errors';
import { MAX_RECEIVE_MESSAGE_BYTES } from './stream';
import type { AppStream, StreamHandlers } from './stream';

/** TLS settings (PEM): the CA to trust, and a client certificate and key for mutual TLS. */
export interface TlsOptions {
  /** The CA certificate(s) to trust; absent = the system's roots. */
  ca?: Buffer | string;
  /** The client certificate chain, for mutual TLS (with `key`). */
  cert?: Buffer | string;
  /** The client private key, for mutual TLS (with `cert`). */
  key?: Buffer | string;
  /** The name to check the server certificate against, when it differs from the endpoint's host. */
  serverName?: string;
}

/** A parsed endpoint. @internal */
export interface Target {
  /** The endpoint as given, for logs. */
  endpoint: string;
  /** `host:port`. */
  address: string;
  /** Whether to use TLS (`https://`). */
  secure: boolean;
}

/**
 * Parses `http://host:port` / `https://host:port`. As in the Rust SDK, an endpoint without a
 * scheme means `http://` (`https://` when TLS settings are given); any other scheme, an empty
 * endpoint or a path throws an `InvalidEndpointError` that says what to write. @internal
 */
export function parseEndpoint(endpoint: string, tls = false): Target {
  const example = 'http://127.0.0.1:50051 (plaintext) or https://sidecar.example:50051 (TLS)';
  if (typeof endpoint !== 'string' || endpoint.trim() === '') {
    throw new InvalidEndpointError(`the sidecar endpoint is empty: give its address, e.g. ${example}`);
  }
  const given = endpoint.trim();
  const scheme = /^([a-zA-Z][a-zA-Z0-9+.-]*):\/\//.exec(given);
  const full = scheme ? given : `${tls ? 'https' : 'http'}://${given}`;
  if (scheme && scheme[1] !== 'http' && scheme[1] !== 'https') {
    throw new InvalidEndpointError(
      `the sidecar endpoint "${endpoint}" has the scheme ${scheme[1]}://, which is not supported: use http:// (plaintext) or https:// (TLS), e.g. ${example}`,
    );
  }
  let url: URL;
  try {
    url = new URL(full);
  } catch {
    throw new InvalidEndpointError(`the sidecar endpoint "${endpoint}" is not a valid address: write one such as ${example}`);
  }
  if (url.hostname === '') throw new InvalidEndpointError(`the sidecar endpoint "${endpoint}" has no host: write one such as ${example}`);
  if ((url.pathname !== '' && url.pathname !== '/') || url.search !== '') {
    throw new InvalidEndpointError(`the sidecar endpoint "${endpoint}" has a path or query; write only scheme, host and port, e.g. ${example}`);
  }
  const secure = url.protocol === 'https:';
  const port = url.port !== '' ? url.port : secure ? '443' : '80';
  return { endpoint: full, address: `${url.hostname}:${port}`, secure };
}

/** The grpc-js credentials for a target (the backend client's). @internal */
export function credentialsFor(target: Target, tls: TlsOptions | undefined): grpc.ChannelCredentials {
  checkTls(target, tls);
  if (!target.secure) return grpc.credentials.createInsecure();
  const buf = (v: Buffer | string | undefined) => (v === undefined ? null : Buffer.isBuffer(v) ? v : Buffer.from(v));
  return grpc.credentials.createSsl(buf(tls?.ca), buf(tls?.key), buf(tls?.cert));
}

/** The backend client's grpc-js channel options (HTTP/2 keepalive catches dead connections). @internal */
export function channelOptions(tls: TlsOptions | undefined): grpc.ChannelOptions {
  const options: grpc.ChannelOptions = {
    'grpc.keepalive_time_ms': KEEPALIVE_MS,
    'grpc.keepalive_timeout_ms': KEEPALIVE_MS,
    'grpc.max_receive_message_length': MAX_RECEIVE_MESSAGE_BYTES,
  };
  if (tls?.serverName) {
    options['grpc.ssl_target_name_override'] = tls.serverName;
    options['grpc.default_authority'] = tls.serverName;
  }
  return options;
}

/** One session's way to the sidecar, and how to let go of it. @internal */
export interface Lease {
  /** Opens the session's `Connect` stream, with the extra `headers` (e.g. `authorization`). */
  open(headers: http2.OutgoingHttpHeaders, handlers: StreamHandlers): AppStream;
  /** Called when the session ended. */
  release(): void;
}

/** Where one app's sessions get their connection from. @internal */
export interface Link {
  /** The endpoints, rotated through on failures. */
  readonly targets: readonly Target[];
  /** A connection for a session on `targets[index]`. */
  lease(index: number): Lease;
}

/** Checks that TLS settings fit the target (they need `https://`). @internal */
function checkTls(target: Target, tls: TlsOptions | undefined): void {
  if (!target.secure && tls) {
    throw new InvalidEndpointError(`TLS settings were given but the endpoint "${target.endpoint}" is http://; use https://`);
  }
}

/** A connection of the app's own: a fresh HTTP/2 connection for every session. @internal */
export function ownLink(endpoints: readonly string[], tls: TlsOptions | undefined): Link {
  const targets = endpoints.map((e) => parseEndpoint(e, tls !== undefined));
  targets.forEach((t) => checkTls(t, tls));
  return {
    targets,
    lease(index) {
      const channel = new Http2Channel(targets[index], tls);
      return { open: (headers, handlers) => channel.open(headers, handlers), release: () => channel.close() };
    },
  };
}

/** Options of a shared connection. */
export interface ConnectionOptions {
  /** TLS settings, for `https://` endpoints (the apps' own `tls` option is not used on a shared connection). */
  tls?: TlsOptions;
}

/**
 * One HTTP/2 connection to the sidecar (per endpoint) that any number of apps of this process
 * share, each on its own stream: pass it to `app.run(connection)`.
 *
 * A call fanned out to several apps of one process then travels as one write and one read
 * instead of one per app. The connection opens when the first app starts and reopens by itself
 * when it drops (each app re-registers with its own backoff). With several endpoints, each app
 * rotates through them on failures, on one shared connection per endpoint.
 */
export class Connection {
  /** The endpoints, as given. */
  readonly endpoints: readonly string[];
  /** The endpoints, parsed (scheme, address, TLS or not). @internal */
  readonly targets: readonly Target[];
  private readonly channels: Http2Channel[];
  private closed = false;

  /** A connection to the sidecar at `endpoint` (e.g. `http://127.0.0.1:50051`; without a scheme `http://` is assumed), or to several endpoints; it opens when the first app starts. */
  constructor(endpoint: string | readonly string[], options: ConnectionOptions = {}) {
    this.endpoints = typeof endpoint === 'string' ? [endpoint] : [...endpoint];
    if (this.endpoints.length === 0) throw new InvalidEndpointError('a Connection needs at least one endpoint, e.g. http://127.0.0.1:50051');
    this.targets = this.endpoints.map((e) => parseEndpoint(e, options.tls !== undefined));
    this.targets.forEach((t) => checkTls(t, options.tls)); // fail now, not at the first app
    // Each channel redials as soon as a stream needs it: the apps' own backoff paces that.
    this.channels = this.targets.map((t) => new Http2Channel(t, options.tls));
  }

  /** The link apps on this connection use. @internal */
  link(): Link {
    return {
      targets: this.targets,
      lease: (index) => ({
        open: (headers, handlers) => {
          if (this.closed) throw new InvalidEndpointError('this Connection was closed');
          return this.channels[index].open(headers, handlers);
        },
        release: () => {},
      }),
    };
  }

  /** Closes the connection; stop the apps on it first. */
  close(): void {
    this.closed = true;
    for (const channel of this.channels) channel.close();
  }
}
