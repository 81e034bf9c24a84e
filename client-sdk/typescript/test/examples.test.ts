// The four TypeScript example apps (examples/typescript), run as their own Node processes against
// the real sidecar: they answer as the Rust examples do, and drain and exit 0 on SIGTERM.

import { test } from 'node:test';
import { strict as assert } from 'node:assert';
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { userMessage } from '../dist';
import { REPO, Sidecar, channel, stored, waitFor } from './harness';

const EXAMPLES = path.join(REPO, 'examples', 'typescript', 'dist');

interface Running {
  proc: ChildProcess;
  stdout: string[];
  stderr: string[];
  exit: Promise<number | null>;
}

const NAMES = ['word_filter', 'extender', 'modifier', 'audit_logger'];
const exampleFile = (name: string) => path.join(EXAMPLES, `${name}.js`);

function runExample(name: string, endpoint: string): Running {
  const proc = spawn(process.execPath, [exampleFile(name), endpoint], { stdio: ['ignore', 'pipe', 'pipe'] });
  const running: Running = {
    proc,
    stdout: [],
    stderr: [],
    exit: new Promise((resolve) => proc.once('exit', (code) => resolve(code))),
  };
  proc.stdout?.setEncoding('utf8').on('data', (c: string) => running.stdout.push(...c.split('\n').filter((l) => l !== '')));
  proc.stderr?.setEncoding('utf8').on('data', (c: string) => running.stderr.push(...c.split('\n').filter((l) => l !== '')));
  return running;
}

test('the four TypeScript examples answer like the Rust ones, and each drains and exits 0 on SIGTERM', async () => {
  for (const file of NAMES.map(exampleFile)) {
    assert.ok(fs.existsSync(file), `no ${file}: run \`npm ci && npm run build\` in examples/typescript (ci.sh does)`);
  }
  const sidecar = await Sidecar.start();
  const apps = NAMES.map((name) => runExample(name, sidecar.endpoint));
  const backend = sidecar.backend();
  try {
    await waitFor(async () => {
      const live = (await sidecar.listApps()).filter((a) => a.instances.length > 0).map((a) => a.appId);
      return ['word-filter', 'extender', 'slug-normaliser', 'audit-logger'].every((id) => live.includes(id));
    }, 'the four example apps to register');

    const spam = await backend.preRoomCreate({ room: channel('Spam Corner') });
    assert.equal(spam.allowed, false);
    assert.equal(userMessage(spam), 'Room names may not contain "spam".');

    const party = await backend.preRoomCreate({ room: channel('  Café Launch!! 2026 ') });
    assert.equal(party.allowed, true);
    assert.deepEqual(party.room.customFields, { created_via: 'roomhooks' });
    assert.deepEqual(party.room.memberUsernames, ['welcome-bot']);
    assert.equal(party.room.slugifiedName, 'caf-launch-2026');
    assert.deepEqual(
      party.outcomes.map((o) => [o.appId, o.status]),
      [
        ['word-filter', 'OUTCOME_STATUS_ALLOWED'],
        ['extender', 'OUTCOME_STATUS_CHANGED'],
        ['slug-normaliser', 'OUTCOME_STATUS_CHANGED'],
      ],
    );

    const troll = await backend.preRoomUserJoin({ context: { room: stored('general'), joiningUser: { username: 'Troll' } } });
    assert.equal(userMessage(troll), 'troll is banned from this server.');

    await backend.postRoomCreate({ room: stored('r-42', { displayName: 'Launch' }), eventId: 'ev-42', waitForDelivery: true });
    await backend.postRoomUserJoined({ context: { room: stored('r-42'), joiningUser: { username: 'alice' } }, eventId: 'ev-43', waitForDelivery: true });
    const audit = apps[3];
    await waitFor(() => audit.stdout.length >= 2, 'two audit lines');
    assert.deepEqual(audit.stdout, ['audit ev-42 room created: Launch (r-42)', 'audit ev-43 alice joined r-42']);

    for (const running of apps) running.proc.kill('SIGTERM');
    const codes = await Promise.all(apps.map((r) => r.exit));
    assert.deepEqual(codes, [0, 0, 0, 0], apps.map((r) => r.stderr.join('\n')).join('\n---\n'));
    assert.ok(apps.every((r) => r.stderr.some((l) => l.includes('draining before shutdown'))));
  } finally {
    backend.close();
    for (const running of apps) running.proc.kill('SIGKILL');
    await sidecar.stop();
  }
});
