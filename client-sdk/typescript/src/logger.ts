/**
 * Where the SDK writes what it does: connections, registrations, reconnects, failed handlers.
 *
 * @module
 */

/** Fields that go with a log line (app id, event id, ...). */
export type LogFields = Record<string, string | number | boolean | undefined>;

/** A logger the SDK writes to; `console`-like loggers (pino, winston, bunyan) fit with a small adapter. */
export interface Logger {
  /** Something worth knowing in normal operation (registered, reconnecting). */
  info(message: string, fields?: LogFields): void;
  /** Something went wrong and the SDK copes (a handler failed, the sidecar is unreachable). */
  warn(message: string, fields?: LogFields): void;
  /** Something went wrong that needs a person (a refused registration). */
  error(message: string, fields?: LogFields): void;
}

function line(level: string, message: string, fields?: LogFields): string {
  const extra = fields
    ? Object.entries(fields)
        .filter(([, v]) => v !== undefined)
        .map(([k, v]) => ` ${k}=${String(v)}`)
        .join('')
    : '';
  return `${new Date().toISOString()} ${level} roomhooks-sdk: ${message}${extra}\n`;
}

/** The default logger: one line per message on stderr; `ROOMHOOKS_SDK_LOG=warn` keeps only warnings and errors, `off` silences it. */
export const stderrLogger: Logger = {
  info(message, fields) {
    const level = process.env.ROOMHOOKS_SDK_LOG;
    if (level !== 'warn' && level !== 'error' && level !== 'off') process.stderr.write(line('INFO', message, fields));
  },
  warn(message, fields) {
    const level = process.env.ROOMHOOKS_SDK_LOG;
    if (level !== 'error' && level !== 'off') process.stderr.write(line('WARN', message, fields));
  },
  error(message, fields) {
    if (process.env.ROOMHOOKS_SDK_LOG !== 'off') process.stderr.write(line('ERROR', message, fields));
  },
};

/** A logger that drops everything. */
export const silentLogger: Logger = { info() {}, warn() {}, error() {} };
