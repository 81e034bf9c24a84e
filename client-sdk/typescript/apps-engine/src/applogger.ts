/**
 * Apps-Engine's `ILogger` for an app, writing to the runner's structured log with the app id
 * (`source: "app"`, the method it was made for).
 *
 * @module
 */

import type { ILogger } from '@rocket.chat/apps-engine/definition/accessors';
import type { ILogEntry } from '@rocket.chat/apps-engine/definition/accessors/ILogEntry';
import type { AppMethod } from '@rocket.chat/apps-engine/definition/metadata/AppMethod';
import type { LogLevel, RunnerLog } from './log';
import { renderItems } from './log';

/** An `ILogger` for `method` writing to `log`. */
export function appLogger(log: RunnerLog, method: string): ILogger {
  const start = new Date();
  const entries: ILogEntry[] = [];
  const write = (level: LogLevel, severity: string) => (...items: unknown[]) => {
    log.write(level, 'app', renderItems(items), { method, severity });
    entries.push({ severity, method, timestamp: new Date(), args: items, caller: method } as unknown as ILogEntry);
  };
  return {
    method: method as `${AppMethod}`,
    debug: write('debug', 'debug'),
    info: write('info', 'info'),
    log: write('info', 'log'),
    warn: write('warn', 'warning'),
    error: write('error', 'error'),
    success: write('info', 'success'),
    getEntries: () => [...entries],
    getMethod: () => method as `${AppMethod}`,
    getStartTime: () => start,
    getEndTime: () => new Date(),
    getTotalTime: () => Date.now() - start.getTime(),
  };
}
