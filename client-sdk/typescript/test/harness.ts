// The shared test harness: a real release `roomhooks` sidecar on 127.0.0.1:0 (its address read
// from its JSON log), a backend client, an admin view, and helpers to run apps and wait.
//
// The binary is $ROOMHOOKS_BIN, else <repo>/target/release/roomhooks (ci.sh builds it).

import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { RoomHooksClient } from '../dist';
import type { AppOptions, Logger, RoomHooksApp, RoomInput, RunTarget } from '../dist';
import { v1 } from '../dist/wire';
import type { AppInfo__Output } from '../dist/generated/roomhooks/v1/AppInfo';
import type { AdminClient } from '../dist/generated/roomhooks/v1/Admin';

/** The repository's root. */
export const REPO = path.resolve(__dirname, '..', '..', '..');
/** The sidecar binary under test. */
export const BIN = process.env.ROOMHOOKS_BIN ?? path.join(REPO, 'target', 'release', 'roomhooks');

/** A running sidecar process. */
export class Sidecar {
  /** Its log lines (JSON), as read so far. */
  readonly logs: string[] = [];
  private exited: Promise<number | null>;

  private constructor(
    readonly proc: ChildProcess,
    readonly addr: string,
    readonly dataDir: string,
  ) {
    this.exited = new Promise((resolve) => proc.once('exit', (code) => resolve(code)));
  }

  /** `http://<addr>`, what apps and backends dial. */
  get endpoint(): string {
    return `http://${this.addr}`;
  }

  /** The port it listens on. */
  get port(): number {
    return Number(this.addr.split(':').pop());
  }

  /**
   * Starts the sidecar on 127.0.0.1:`port` (0 = any free port) with `args` added, and waits
   * until it logs its address. `dataDir` keeps the store across restarts; absent = ephemeral.
   */
  static async start(args: string[] = [], options: { port?: number; dataDir?: string } = {}): Promise<Sidecar> {
    if (!fs.existsSync(BIN)) {
      throw new Error(`no sidecar binary at ${BIN}: run \`cargo build --release --bin roomhooks\` in the repo root, or set ROOMHOOKS_BIN`);
    }
    const store = options.dataDir ? ['--data-dir', options.dataDir] : ['--ephemeral'];
    const proc = spawn(
      BIN,
      ['--listen', `127.0.0.1:${options.port ?? 0}`, '--log-format', 'json', '--metrics-listen', 'off', ...store, ...args],
      { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, RUST_LOG: 'info' } },
    );
    const logs: string[] = [];
    let buffered = '';
    const addr = await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`the sidecar did not log its address within 10 s:\n${logs.join('\n')}`)), 10_000);
      proc.stderr?.setEncoding('utf8');
      proc.stderr?.on('data', (chunk: string) => {
        buffered += chunk;
        const lines = buffered.split('\n');
        buffered = lines.pop() ?? '';
        for (const line of lines) {
          logs.push(line);
          const found = /"local_addr":"([^"]+)"/.exec(line);
          if (found) {
            clearTimeout(timer);
            resolve(found[1]);
          }
        }
      });
      proc.once('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`the sidecar exited (${code}) at start:\n${logs.join('\n')}`));
      });
    });
    const sidecar = new Sidecar(proc, addr, options.dataDir ?? '');
    sidecar.logs.push(...logs);
    proc.stderr?.on('data', (chunk: string) => sidecar.logs.push(...chunk.split('\n').filter((l) => l !== '')));
    return sidecar;
  }

  /** Stops it with `signal` and waits for it to exit (SIGKILL after 5 s). */
  async stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    if (this.proc.exitCode !== null || this.proc.signalCode !== null) return;
    this.proc.kill(signal);
    const timer = setTimeout(() => this.proc.kill('SIGKILL'), 5000);
    await this.exited;
    clearTimeout(timer);
  }

  /** A backend client for it. */
  backend(): RoomHooksClient {
    return new RoomHooksClient(this.endpoint, { deadlineMs: 5000 });
  }

  /** How the admin view dials it (set for a TLS sidecar). */
  admin: { credentials: grpc.ChannelCredentials; options: grpc.ChannelOptions } = {
    credentials: grpc.credentials.createInsecure(),
    options: {},
  };

  /** Admin.ListApps. */
  async listApps(): Promise<AppInfo__Output[]> {
    const client: AdminClient = new (v1().Admin)(this.addr, this.admin.credentials, this.admin.options);
    try {
      return await new Promise((resolve, reject) =>
        client.ListApps({}, { deadline: new Date(Date.now() + 5000) }, (err, res) => (err || !res ? reject(err) : resolve(res.apps))),
      );
    } finally {
      client.close();
    }
  }

  /** The live instances of `appId`, as ListApps shows them. */
  async instances(appId: string): Promise<AppInfo__Output['instances']> {
    const apps = await this.listApps();
    return apps.find((a) => a.appId === appId)?.instances ?? [];
  }
}

/** Runs `body` with a fresh sidecar, then stops the sidecar and every app passed to `track`. */
export async function withSidecar(
  body: (sidecar: Sidecar, track: <T extends { stop(): Promise<void> } | { close(): void }>(x: T) => T) => Promise<void>,
  args: string[] = [],
): Promise<void> {
  const sidecar = await Sidecar.start(args);
  const tracked: ({ stop(): Promise<void> } | { close(): void })[] = [];
  try {
    await body(sidecar, (x) => {
      tracked.push(x);
      return x;
    });
  } finally {
    for (const x of tracked.reverse()) {
      if ('stop' in x) await x.stop().catch(() => {});
      else x.close();
    }
    await sidecar.stop();
  }
}

/** Starts `app` on `target` and waits until it is registered. */
export async function started<T extends RoomHooksApp>(app: T, target: RunTarget): Promise<T> {
  app.start(target);
  await app.registered();
  return app;
}

/** Waits until `condition` holds (polling every 20 ms), failing after `timeoutMs` with `what`. */
export async function waitFor(condition: () => boolean | Promise<boolean>, what: string, timeoutMs = 10_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > until) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(20);
  }
}

/** Resolves after `ms`. */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** A logger that keeps every line (and prints nothing), for assertions on what the SDK says. */
export function recordingLogger(): Logger & { lines: string[] } {
  const lines: string[] = [];
  const rec = (level: string) => (message: string, fields?: Record<string, unknown>) =>
    lines.push(`${level} ${message}${fields ? ' ' + JSON.stringify(fields) : ''}`);
  return { lines, info: rec('INFO'), warn: rec('WARN'), error: rec('ERROR') };
}

/** Options every test app gets: quiet, no signal handlers, fast reconnects. */
export function quiet(options: AppOptions): AppOptions {
  return { logger: recordingLogger(), stopOnSignals: false, reconnectMinMs: 50, reconnectMaxMs: 200, ...options };
}

/** A channel room to create, named `name`. */
export function channel(name: string, extra: RoomInput = {}): RoomInput {
  return { displayName: name, type: 'ROOM_TYPE_CHANNEL', ...extra };
}

/** A stored room with an id, for delete / join / leave / post calls. */
export function stored(id: string, extra: RoomInput = {}): RoomInput {
  return { id, displayName: id, type: 'ROOM_TYPE_CHANNEL', ...extra };
}

/** A fresh temporary directory. */
export function tempDir(prefix: string): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

/** An HTTP/2 server on 127.0.0.1:0 that is not a sidecar: `answer` handles every stream. */
export async function http2Peer(answer: (stream: http2.ServerHttp2Stream) => void): Promise<{ endpoint: string; close(): Promise<void> }> {
  const server = http2.createServer();
  server.on('stream', answer);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    endpoint: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

/** Runs `app` against `endpoint` until it logs that it retries, stops it, and returns that warning. */
export async function firstRetryWarning(app: RoomHooksApp, logger: { lines: string[] }, endpoint: string): Promise<string> {
  const retry = (l: string) => l.startsWith('WARN cannot reach the sidecar');
  const running = app.run(endpoint);
  await waitFor(() => logger.lines.some(retry), 'a retry warning');
  await app.stop();
  await running;
  return logger.lines.find(retry) ?? '';
}
