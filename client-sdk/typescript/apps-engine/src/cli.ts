#!/usr/bin/env node
/**
 * `roomhooks-apps-engine`: run an Apps-Engine app package on a roomhooks sidecar.
 *
 * ```sh
 * roomhooks-apps-engine run my-app.zip --sidecar http://127.0.0.1:50051 [--settings settings.json] [--data-dir DIR] [--token T]
 * roomhooks-apps-engine essentials my-app.zip   # the sidecar config lines for app.json "essentials"
 * ```
 *
 * @module
 */

import { AppLoadError } from './errors';
import { AppsEngineRunner, essentialsConfig } from './runner';
import type { RunnerOptions } from './runner';
import { openPackage } from './loader';

const USAGE = `usage:
  roomhooks-apps-engine run <app.zip | app folder> [--sidecar URL] [--settings FILE] [--data-dir DIR] [--token T]
                            [--priority N] [--failure-policy ignore|fail] [--timeout-ms N] [--prevent-message TEXT] [--instance-id ID]
  roomhooks-apps-engine essentials <app.zip | app folder>

  --sidecar          the sidecar's endpoint (default http://127.0.0.1:50051, or $ROOMHOOKS_SIDECAR)
  --settings         a JSON file: app setting values, server settings, priority, failurePolicy, timeoutMs, ...
  --data-dir         where the app's persistence lives (default ./roomhooks-apps-engine-data)
  --token            the app's token (the sidecar's --app-token <app id>=<token>; or $ROOMHOOKS_APP_TOKEN)
  --priority         apps run in ascending priority (default 0)
  --failure-policy   what an error or timeout of this app means: ignore (default) or fail
  --timeout-ms       the sidecar's timeout per call (default: the sidecar's, 1 s)
  --prevent-message  shown when a Prevent handler returns true (default "<app name> prevented this action.")
`;

function fail(message: string, code = 2): never {
  process.stderr.write(`roomhooks-apps-engine: ${message}\n`);
  process.exit(code);
}

function number(flag: string, value: string): number {
  const n = Number(value);
  if (!Number.isFinite(n)) fail(`${flag} "${value}" is not a number`);
  return n;
}

async function main(argv: string[]): Promise<void> {
  const [command, source, ...rest] = argv;
  if (command === '--help' || command === '-h' || command === undefined) {
    process.stdout.write(USAGE);
    return;
  }
  if (!source) fail(`${command} needs an app package\n${USAGE}`);
  if (command === 'essentials') {
    const pkg = openPackage(source);
    process.stdout.write(essentialsConfig(pkg.info) || `# ${pkg.info.name} declares no essentials\n`);
    pkg.cleanup();
    return;
  }
  if (command !== 'run') fail(`unknown command "${command}"\n${USAGE}`);
  const options: RunnerOptions = {};
  let sidecar = process.env.ROOMHOOKS_SIDECAR ?? 'http://127.0.0.1:50051';
  if (process.env.ROOMHOOKS_APP_TOKEN) options.token = process.env.ROOMHOOKS_APP_TOKEN;
  for (let i = 0; i < rest.length; i += 2) {
    const flag = rest[i];
    const value = rest[i + 1];
    if (value === undefined) fail(`${flag} needs a value`);
    switch (flag) {
      case '--sidecar':
        sidecar = value;
        break;
      case '--settings':
        options.settingsFile = value;
        break;
      case '--data-dir':
        options.dataDir = value;
        break;
      case '--token':
        options.token = value;
        break;
      case '--priority':
        options.priority = number(flag, value);
        break;
      case '--failure-policy':
        if (value !== 'ignore' && value !== 'fail') fail(`--failure-policy "${value}": expected ignore or fail`);
        options.failurePolicy = value;
        break;
      case '--timeout-ms':
        options.timeoutMs = number(flag, value);
        break;
      case '--prevent-message':
        options.preventMessage = value;
        break;
      case '--instance-id':
        options.instanceId = value;
        break;
      default:
        fail(`unknown flag "${flag}"\n${USAGE}`);
    }
  }
  const runner = await AppsEngineRunner.open(source, options);
  if (!runner.enabled) process.exit(3);
  await runner.run(sidecar);
}

main(process.argv.slice(2)).catch((err: unknown) => {
  if (err instanceof AppLoadError) fail(err.message, 1);
  fail(err instanceof Error ? (err.stack ?? err.message) : String(err), 1);
});
