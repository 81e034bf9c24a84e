/**
 * The runner's structured log: one JSON object per line on stderr (or any sink), each with the
 * app id, so an operator can tell apps apart and a test can read what happened.
 *
 * @module
 */

import type { Logger as SdkLogger, LogFields } from 'roomhooks-sdk';

/** One log line. */
export interface LogRecord {
  /** ISO 8601 time. */
  ts: string;
  /** `debug`, `info`, `warn` or `error`. */
  level: LogLevel;
  /** Who wrote it: `runner` (this package), `sdk` (the stream to the sidecar) or `app` (the app's own `ILogger`). */
  source: 'runner' | 'sdk' | 'app';
  /** The app's id (`app.json` `id`). */
  app_id: string;
  /** The message. */
  msg: string;
  /** More fields (the app's method, an accessor, an event id, …). */
  [field: string]: string | number | boolean | undefined;
}

/** A log level. */
export type LogLevel = 'debug' | 'info' | 'warn' | 'error';

/** Where log lines go. */
export type LogSink = (record: LogRecord) => void;

/** The default sink: a JSON line on stderr; `ROOMHOOKS_APPS_ENGINE_LOG=warn` keeps warnings and errors, `off` silences it. */
export const stderrSink: LogSink = (record) => {
  const level = process.env.ROOMHOOKS_APPS_ENGINE_LOG;
  if (level === 'off') return;
  if (level === 'warn' && (record.level === 'debug' || record.level === 'info')) return;
  process.stderr.write(JSON.stringify(record) + '\n');
};

/** The runner's log for one app. */
export class RunnerLog {
  /** A log for `appId` writing to `sink`. */
  constructor(
    /** The app's id, on every line. */
    readonly appId: string,
    /** Where lines go. */
    readonly sink: LogSink = stderrSink,
  ) {}

  /** Writes one line. */
  write(level: LogLevel, source: LogRecord['source'], msg: string, fields: LogFields = {}): void {
    this.sink({ ts: new Date().toISOString(), level, source, app_id: this.appId, msg, ...fields });
  }

  /** An informational line from the runner. */
  info(msg: string, fields?: LogFields): void {
    this.write('info', 'runner', msg, fields);
  }

  /** A warning from the runner. */
  warn(msg: string, fields?: LogFields): void {
    this.write('warn', 'runner', msg, fields);
  }

  /** An error from the runner. */
  error(msg: string, fields?: LogFields): void {
    this.write('error', 'runner', msg, fields);
  }

  /** The SDK's logger, writing here with `source: "sdk"`. */
  sdkLogger(): SdkLogger {
    return {
      info: (m, f) => this.write('info', 'sdk', m, f),
      warn: (m, f) => this.write('warn', 'sdk', m, f),
      error: (m, f) => this.write('error', 'sdk', m, f),
    };
  }
}

/** Renders an app's log items (strings, errors, objects) as one message. @internal */
export function renderItems(items: readonly unknown[]): string {
  return items
    .map((item) => {
      if (typeof item === 'string') return item;
      if (item instanceof Error) return item.stack ?? `${item.name}: ${item.message}`;
      try {
        return JSON.stringify(item);
      } catch {
        return String(item);
      }
    })
    .join(' ');
}
