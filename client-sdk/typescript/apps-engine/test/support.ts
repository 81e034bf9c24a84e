// Test support: the SDK's sidecar harness (client-sdk/typescript/test/harness.ts, compiled by the
// SDK's `tsc -p tsconfig.test.json`, which ci.sh runs), packaging of the test apps the way
// `rc-apps package` lays out its zip, a recording log sink, and a local HTTP service.

import * as fs from 'node:fs';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import AdmZip = require('adm-zip');
import type { AppInfo__Output } from 'roomhooks-sdk/dist/generated/roomhooks/v1/AppInfo';
import type { RoomHooksClient } from 'roomhooks-sdk';
import type { LogRecord, LogSink } from '../src';

/** The SDK package's folder (client-sdk/typescript). */
export const SDK_DIR = path.resolve(__dirname, '..', '..', '..');
/** This package's folder (client-sdk/typescript/apps-engine). */
export const PKG_DIR = path.resolve(__dirname, '..', '..');

/** The parts of the SDK's harness `Sidecar` these tests use. */
export interface Sidecar {
  readonly endpoint: string;
  readonly logs: string[];
  backend(): RoomHooksClient;
  stop(signal?: NodeJS.Signals): Promise<void>;
  instances(appId: string): Promise<AppInfo__Output['instances']>;
}

/** The parts of the SDK's harness these tests use. */
interface Harness {
  REPO: string;
  Sidecar: { start(args?: string[], options?: { port?: number; dataDir?: string }): Promise<Sidecar> };
  waitFor(condition: () => boolean | Promise<boolean>, what: string, timeoutMs?: number): Promise<void>;
}

const harnessFile = path.join(SDK_DIR, 'build-test', 'harness.js');
if (!fs.existsSync(harnessFile)) {
  throw new Error(`no ${harnessFile}: run \`npx tsc -p tsconfig.test.json\` in client-sdk/typescript (ci.sh does)`);
}
// eslint-disable-next-line @typescript-eslint/no-require-imports
const harness = require(harnessFile) as Harness;

/** The repository's root. */
export const REPO = harness.REPO;
/** Starts a real sidecar on 127.0.0.1:0. */
export const startSidecar = (args: string[] = []): Promise<Sidecar> => harness.Sidecar.start(args);
/** Waits until `condition` holds. */
export const waitFor = harness.waitFor;

/** A fresh temporary directory. */
export function tempDir(prefix: string): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), `rhae-${prefix}-`));
}

/**
 * Packages the test app `name` (test/apps/<name>) as `rc-apps package` does: a zip with app.json
 * at its root, the compiled class file and i18n/*.json. `appJson` overrides app.json fields.
 * Returns the zip's path.
 */
export function packApp(name: string, appJson: Record<string, unknown> = {}): string {
  const source = path.join(PKG_DIR, 'test', 'apps', name);
  const compiled = path.join(__dirname, 'apps', name);
  const info = { ...(JSON.parse(fs.readFileSync(path.join(source, 'app.json'), 'utf8')) as Record<string, unknown>), ...appJson };
  const zip = new AdmZip();
  zip.addFile('app.json', Buffer.from(JSON.stringify(info, null, 2)));
  for (const f of fs.readdirSync(compiled).filter((f) => f.endsWith('.js'))) zip.addLocalFile(path.join(compiled, f));
  for (const f of fs.readdirSync(path.join(source, 'i18n'))) zip.addLocalFile(path.join(source, 'i18n', f), 'i18n');
  const out = path.join(tempDir('zip'), `${String(info.nameSlug)}_${String(info.version)}.zip`);
  zip.writeZip(out);
  return out;
}

/** Unpacks a zip into a folder (an "unpacked app folder"). */
export function unpack(zipFile: string): string {
  const dir = tempDir('folder');
  new AdmZip(zipFile).extractAllTo(dir, true);
  return dir;
}

/** A log sink that keeps every line. */
export function recording(): LogSink & { records: LogRecord[]; lines(match: string): LogRecord[] } {
  const records: LogRecord[] = [];
  const sink = ((r: LogRecord) => void records.push(r)) as LogSink & { records: LogRecord[]; lines(match: string): LogRecord[] };
  sink.records = records;
  sink.lines = (match) => records.filter((r) => r.msg.includes(match));
  return sink;
}

/** A local HTTP service: `handler` answers each request (its body parsed as JSON when there is one). */
export async function httpService(
  handler: (req: http.IncomingMessage, body: unknown) => { status?: number; json: unknown },
): Promise<{ url: string; close(): Promise<void> }> {
  const server = http.createServer((req, res) => {
    let raw = '';
    req.setEncoding('utf8');
    req.on('data', (c: string) => (raw += c));
    req.on('end', () => {
      const out = handler(req, raw === '' ? undefined : JSON.parse(raw));
      res.writeHead(out.status ?? 200, { 'content-type': 'application/json' });
      res.end(JSON.stringify(out.json));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return { url: `http://127.0.0.1:${port}`, close: () => new Promise((resolve) => server.close(() => resolve())) };
}
