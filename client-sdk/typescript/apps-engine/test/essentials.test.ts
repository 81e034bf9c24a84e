// app.json essentials, declared to the sidecar the way docs/apps-engine.md tells an operator to:
// the lines `roomhooks-apps-engine essentials` prints, in the sidecar's --config.

import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { AppsEngineRunner, essentialsConfig, openPackage } from '../src';
import { packApp, recording, startSidecar, tempDir } from './support';

test('an essential hook of an app that is not connected is prevented; once the runner connects it answers', async () => {
  const zip = packApp('word-filter', { essentials: ['IPreRoomCreatePrevent'] });
  const pkg = openPackage(zip);
  const config = path.join(tempDir('config'), 'roomhooks.toml');
  fs.writeFileSync(config, essentialsConfig(pkg.info));
  pkg.cleanup();
  const sidecar = await startSidecar(['--config', config]);
  let runner: AppsEngineRunner | undefined;
  try {
    const away = await sidecar.backend().preRoomCreate({ room: { displayName: 'Launch Party', type: 'ROOM_TYPE_CHANNEL' } });
    assert.equal(away.allowed, false);
    assert.equal(away.preventions[0]?.reason, 'PREVENTION_REASON_APP_UNAVAILABLE');
    const log = recording();
    runner = await AppsEngineRunner.open(zip, { dataDir: tempDir('data'), log, stopOnSignals: false });
    await runner.start(sidecar.endpoint).registered();
    assert.equal(log.lines('app.json declares essentials').length, 1, 'the runner tells the operator at start');
    const back = await sidecar.backend().preRoomCreate({ room: { displayName: 'Launch Party', type: 'ROOM_TYPE_CHANNEL' } });
    assert.equal(back.allowed, true);
  } finally {
    await runner?.stop();
    await sidecar.stop();
  }
});
