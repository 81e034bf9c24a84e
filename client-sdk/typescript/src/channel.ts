/**
 * One HTTP/2 connection to one sidecar endpoint for app streams: dialled on the first stream,
 * kept alive with pings, and dialled again for the next stream once it closed, failed or got
 * a GOAWAY.
 *
 * @module
 * @internal
 */

import * as http2 from 'node:http2';
import type { Target, TlsOptions } from './connection';
import { AppStream } from './stream';
import type { StreamHandlers } from './stream';
import { appStreamCodec } from './wire';

/** How often the connection is pinged, and how long the answer may take (as the grpc-js keepalive was set). */
export const KEEPALIVE_MS = 10_000;
/** The HTTP/2 receive window of each stream: post events arrive in bursts. */
const STREAM_WINDOW_BYTES = 1024 * 1024;
/** Sent as `user-agent`, so the sidecar's logs can tell the SDK's streams apart. */
const USER_AGENT = 'roomhooks-sdk-node';

/** An HTTP/2 connection (re-dialled when needed) that app streams are opened on. */
export class Http2Channel {
  private session: http2.ClientHttp2Session | undefined;
  private keepalive: NodeJS.Timeout | undefined;
  private streams = 0;

  /** A channel to `target` (nothing is dialled yet). */
  constructor(
    private readonly target: Target,
    private readonly tls: TlsOptions | undefined,
  ) {}

  /** Opens a `Connect` stream with the extra `headers` (e.g. `authorization`). */
  open(headers: http2.OutgoingHttpHeaders, handlers: StreamHandlers): AppStream {
    const session = this.live();
    // A session with a stream open keeps the process alive (as a grpc-js call would); an idle one does not.
    this.streams += 1;
    session.ref();
    const authority = this.tls?.serverName ? { ':authority': this.tls.serverName } : {};
    return new AppStream(session, appStreamCodec(), { ...headers, ...authority, 'user-agent': USER_AGENT }, {
      message: handlers.message,
      status: (status) => {
        this.streams -= 1;
        if (this.streams === 0 && !session.destroyed) session.unref();
        handlers.status(status);
      },
    });
  }

  /** Closes the connection now (streams on it end with UNAVAILABLE); the next stream dials anew. */
  close(): void {
    this.drop()?.destroy();
  }

  /** The current session, or a new one when there is none or it can take no new streams. */
  private live(): http2.ClientHttp2Session {
    const current = this.session;
    if (current && !current.closed && !current.destroyed) return current;
    this.drop();
    this.session = this.dial();
    return this.session;
  }

  private dial(): http2.ClientHttp2Session {
    const { target, tls } = this;
    const authority = `${target.secure ? 'https' : 'http'}://${target.address}`;
    const options: http2.SecureClientSessionOptions = { settings: { initialWindowSize: STREAM_WINDOW_BYTES } };
    if (target.secure) {
      if (tls?.ca !== undefined) options.ca = tls.ca;
      if (tls?.cert !== undefined) options.cert = tls.cert;
      if (tls?.key !== undefined) options.key = tls.key;
      if (tls?.serverName) options.servername = tls.serverName;
    }
    const session = http2.connect(authority, options);
    // Errors reach the streams on the session; an error with none open must not crash the process.
    session.on('error', () => {});
    session.on('goaway', () => {
      if (this.session === session) this.drop();
    });
    session.on('close', () => {
      if (this.session === session) this.drop();
    });
    this.keepAlive(session);
    return session;
  }

  /** Pings every KEEPALIVE_MS; a ping unanswered for KEEPALIVE_MS ends the connection. */
  private keepAlive(session: http2.ClientHttp2Session): void {
    let waiting = false;
    this.keepalive = setInterval(() => {
      if (waiting || session.destroyed) return;
      waiting = true;
      const deadline = setTimeout(() => {
        session.destroy(new Error(`keepalive: the sidecar did not answer an HTTP/2 ping within ${KEEPALIVE_MS} ms`));
      }, KEEPALIVE_MS);
      deadline.unref();
      let sent = false;
      try {
        sent = session.ping((err) => {
          clearTimeout(deadline);
          waiting = false;
          if (err && !session.destroyed) session.destroy(err);
        });
      } catch {
        // destroyed or closing in between: its streams report that themselves
      }
      if (!sent) {
        clearTimeout(deadline);
        waiting = false;
      }
    }, KEEPALIVE_MS);
    this.keepalive.unref();
  }

  /** Forgets the current session (its streams finish on it) and stops its pings. */
  private drop(): http2.ClientHttp2Session | undefined {
    const session = this.session;
    this.session = undefined;
    clearInterval(this.keepalive);
    this.keepalive = undefined;
    if (session && !session.closed) session.close();
    return session;
  }
}
