/**
 * Helpers for unit-testing handlers without a sidecar: complete rooms, users and contexts with
 * the fields you care about filled in.
 *
 * @module
 */

import type { HookContext, PostContext } from './interfaces';
import { emptyRoom, emptyUser } from './types';
import type { Room, User } from './types';

/** A complete room (every field at its empty value) with `overrides` applied. */
export function createRoom(overrides: Partial<Room> = {}): Room {
  return { ...emptyRoom(), ...overrides };
}

/** A complete user with `overrides` applied. */
export function createUser(overrides: Partial<User> = {}): User {
  return { ...emptyUser(), ...overrides };
}

/** A HookContext as a call would carry it (1 s deadline, a signal that never fires unless given) with `overrides` applied. */
export function createHookContext(overrides: Partial<HookContext> = {}): HookContext {
  return {
    callId: '1',
    hook: 'HOOK_INTERFACE_UNSPECIFIED',
    requestId: '',
    dryRun: false,
    traceparent: '',
    deadline: Date.now() + 1000,
    signal: new AbortController().signal,
    appId: 'test-app',
    instanceId: 'test-instance',
    ...overrides,
  };
}

/** A PostContext for a first delivery with `overrides` applied. */
export function createPostContext(overrides: Partial<PostContext> = {}): PostContext {
  return { eventId: 'event-1', hook: 'HOOK_INTERFACE_UNSPECIFIED', attempt: 1, appId: 'test-app', instanceId: 'test-instance', ...overrides };
}
