/**
 * Capped exponential backoff with jitter, for reconnecting (the Rust SDK's `Backoff`).
 *
 * @module
 */

/** Reconnect delays: each attempt waits a random time between `min / 2` and a doubling ceiling, capped at `max`. */
export class Backoff {
  private ceiling: number;

  /** A backoff from `minMs` to `maxMs`; `random` is injectable for tests. */
  constructor(
    private readonly minMs: number,
    private readonly maxMs: number,
    private readonly random: () => number = Math.random,
  ) {
    this.ceiling = minMs;
  }

  /** The delay before the next attempt, in milliseconds. */
  nextDelay(): number {
    const ceiling = this.ceiling;
    this.ceiling = Math.min(this.ceiling * 2, this.maxMs);
    const floor = this.minMs / 2;
    return floor + Math.max(0, ceiling - floor) * this.random();
  }

  /** Starts over after a healthy connection. */
  reset(): void {
    this.ceiling = this.minMs;
  }
}
