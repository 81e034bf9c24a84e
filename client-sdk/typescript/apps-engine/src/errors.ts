/**
 * The errors the runner raises: an accessor roomhooks does not provide, and an app package it
 * cannot load.
 *
 * @module
 */

/**
 * An Apps-Engine accessor that roomhooks does not provide in room hooks. Its message names the
 * accessor and why, e.g. `NotAvailableInRoomHooks: read.getRoomReader().getMembers() — …`. A
 * handler that lets it escape answers `AppError`, so the app's failure policy applies.
 */
export class NotAvailableInRoomHooks extends Error {
  /** The error's name. */
  override name = 'NotAvailableInRoomHooks';

  /** The error for `accessor` (e.g. `read.getRoomReader().getMembers()`), with why it is missing. */
  constructor(
    /** The accessor the app called, e.g. `modify.getCreator()`. */
    readonly accessor: string,
    /** Why roomhooks does not provide it, and what to do instead. */
    readonly reason: string,
  ) {
    super(`NotAvailableInRoomHooks: ${accessor} — ${reason}`);
    // The message starts with the name already: keep the stack's first line and toString() to it once.
    const newline = this.stack?.indexOf('\n') ?? -1;
    this.stack = newline >= 0 ? this.message + (this.stack ?? '').slice(newline) : this.message;
  }

  /** The message, which starts with the error's name. */
  override toString(): string {
    return this.message;
  }
}

/** An app package that cannot be loaded: a missing or bad `app.json`, an incompatible `requiredApiVersion`, no app class. */
export class AppLoadError extends Error {
  /** The error's name. */
  override name = 'AppLoadError';
}
