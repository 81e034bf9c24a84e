// The bench row "a veto app through the runner vs the same app on the TypeScript SDK":
// PreRoomUserJoin against the real sidecar with one veto app connected — the word filter test app
// through `roomhooks-apps-engine run` (a child process), then the TypeScript SDK's bench veto app
// (client-sdk/typescript/bench/veto-app.js, a child process) — alternating, medians printed as a
// Markdown table. The backend client runs in this process. Run: `npm run bench` (after a build).
// Not a test: no assertion on speed.

import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import * as path from 'node:path';
import type { RoomHooksClient } from 'roomhooks-sdk';
import { PKG_DIR, SDK_DIR, packApp, startSidecar, tempDir, waitFor } from './support';

const WORD_FILTER = '4c4a8c63-3b0f-4d3e-9a53-6f7d1f0e0a01';
const SEQUENTIAL = Number(process.env.BENCH_CALLS ?? 2000);
const IN_FLIGHT = 64;
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);

interface Result {
  p50: number;
  p99: number;
  rate: number;
}

const join = { context: { room: { id: 'r-1', type: 'ROOM_TYPE_CHANNEL' as const }, joiningUser: { id: 'u-1', username: 'alice' } } };

async function measure(backend: RoomHooksClient): Promise<Result> {
  for (let i = 0; i < 200; i += 1) await backend.preRoomUserJoin(join); // warm-up
  const times: number[] = [];
  for (let i = 0; i < SEQUENTIAL; i += 1) {
    const t = process.hrtime.bigint();
    const v = await backend.preRoomUserJoin(join);
    times.push(Number(process.hrtime.bigint() - t) / 1000);
    if (!v.allowed || v.outcomes.length !== 1) throw new Error(`unexpected verdict ${JSON.stringify(v)}`);
  }
  times.sort((a, b) => a - b);
  let left = SEQUENTIAL * 2;
  const start = process.hrtime.bigint();
  await Promise.all(
    Array.from({ length: IN_FLIGHT }, async () => {
      while (left > 0) {
        left -= 1;
        await backend.preRoomUserJoin(join);
      }
    }),
  );
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  return { p50: times[Math.floor(times.length / 2)], p99: times[Math.floor(times.length * 0.99)], rate: (SEQUENTIAL * 2) / seconds };
}

/** Starts a fresh sidecar (a departed app stays known to a sidecar, so each app gets its own), then `start(endpoint)`, measures, and stops both. */
async function withApp(appId: string, start: (endpoint: string) => ChildProcess): Promise<Result> {
  const sidecar = await startSidecar();
  const proc = start(sidecar.endpoint);
  try {
    await waitFor(async () => (await sidecar.instances(appId)).length === 1, `${appId} to register`, 20_000);
    return await measure(sidecar.backend());
  } finally {
    const exited = new Promise((resolve) => proc.once('exit', resolve));
    proc.kill('SIGTERM');
    proc.stdin?.end();
    await exited;
    await sidecar.stop();
  }
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

async function main(): Promise<void> {
  const zip = packApp('word-filter');
  const runner: Result[] = [];
  const sdk: Result[] = [];
  for (let round = 0; round < ROUNDS; round += 1) {
    runner.push(
      await withApp(WORD_FILTER, (endpoint) =>
        spawn(process.execPath, [path.join(PKG_DIR, 'dist', 'cli.js'), 'run', zip, '--sidecar', endpoint, '--data-dir', tempDir('bench')], {
          stdio: ['pipe', 'ignore', 'ignore'],
          env: { ...process.env, ROOMHOOKS_APPS_ENGINE_LOG: 'warn' },
        }),
      ),
    );
    sdk.push(
      await withApp('veto-ts-00', (endpoint) =>
        spawn(process.execPath, [path.join(SDK_DIR, 'bench', 'veto-app.js'), '--endpoint', endpoint, '--app-id', 'veto-ts-00'], { stdio: ['pipe', 'ignore', 'ignore'] }),
      ),
    );
  }
  const row = (name: string, rs: Result[]) =>
    `| ${name} | ${median(rs.map((r) => r.p50)).toFixed(0)} | ${median(rs.map((r) => r.p99)).toFixed(0)} | ${median(rs.map((r) => r.rate)).toFixed(0)} |`;
  console.log(`PreRoomUserJoin, 1 veto app, ${SEQUENTIAL} sequential calls and ${SEQUENTIAL * 2} at ${IN_FLIGHT} in flight, medians of ${ROUNDS} alternating rounds (node ${process.version})\n`);
  console.log(`| app | p50 µs | p99 µs | calls/s @${IN_FLIGHT} |`);
  console.log('|---|---:|---:|---:|');
  console.log(row('Apps-Engine word filter through roomhooks-apps-engine', runner));
  console.log(row('TypeScript SDK veto app (bench/veto-app.js)', sdk));
  const ratio = (f: (r: Result) => number) => (median(runner.map(f)) / median(sdk.map(f))).toFixed(2);
  console.log(`| ratio runner / SDK | ${ratio((r) => r.p50)}× | ${ratio((r) => r.p99)}× | ${ratio((r) => r.rate)}× |`);
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
