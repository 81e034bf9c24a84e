/**
 * Accessors roomhooks does not provide: each call fails with one clear `NotAvailableInRoomHooks`
 * error, logged once per accessor and counted, so the app's failure policy applies.
 *
 * @module
 */

import { NotAvailableInRoomHooks } from './errors';
import type { RunnerLog } from './log';

/** Counts and logs the unavailable accessors an app touched. */
export class Unavailable {
  private readonly counts = new Map<string, number>();
  private readonly ignoredOnce = new Set<string>();

  /** A tracker logging to `log`. */
  constructor(private readonly log: RunnerLog) {}

  /** Counts `accessor`, logs it the first time, and throws its `NotAvailableInRoomHooks`. */
  fail(accessor: string, reason: string): never {
    const error = new NotAvailableInRoomHooks(accessor, reason);
    const n = (this.counts.get(accessor) ?? 0) + 1;
    this.counts.set(accessor, n);
    if (n === 1) this.log.warn(error.message, { accessor, note: 'logged once; later calls are only counted' });
    return (() => {
      throw error;
    })();
  }

  /** How often each unavailable accessor was called. */
  snapshot(): Record<string, number> {
    return Object.fromEntries(this.counts);
  }

  /**
   * An object whose every method throws `NotAvailableInRoomHooks` naming `prefix.method()`, except
   * those in `provided`. `then` is absent, so awaiting the object itself is harmless.
   */
  proxy<T extends object>(prefix: string, reason: string, provided: Partial<T> = {}): T {
    return new Proxy(provided as T, {
      get: (target, prop, receiver) => {
        if (typeof prop === 'symbol' || prop === 'then' || prop === 'toJSON') return Reflect.get(target, prop, receiver);
        if (Object.prototype.hasOwnProperty.call(target, prop)) return Reflect.get(target, prop, receiver);
        return () => this.fail(`${prefix}.${prop}()`, reason);
      },
    });
  }

  /** Logs, once per `what`, that the app's call `what` was accepted and ignored. */
  ignored(what: string, reason: string): void {
    if (this.ignoredOnce.has(what)) return;
    this.ignoredOnce.add(what);
    this.log.warn(`ignored: ${what} — ${reason}`, { accessor: what });
  }

  /**
   * An object whose every method is accepted and ignored (logged once per method): configuration
   * roomhooks has no use for (slash commands, API endpoints, UI, …), so the app still loads.
   */
  ignoring<T extends object>(prefix: string, reason: string): T {
    return new Proxy({} as T, {
      get: (target, prop, receiver) => {
        if (typeof prop === 'symbol' || prop === 'then' || prop === 'toJSON') return Reflect.get(target, prop, receiver);
        return () => {
          this.ignored(`${prefix}.${prop}()`, reason);
          return Promise.resolve();
        };
      },
    });
  }
}
