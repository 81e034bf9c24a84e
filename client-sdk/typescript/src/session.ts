/**
 * One session with the sidecar (one `Connect` stream): register, then answer calls concurrently
 * and post events one at a time in delivery order, until the stream ends or the app drains.
 *
 * Node runs handlers on one thread, but every handler is async: while one awaits, the stream
 * keeps reading, so heartbeats are answered and other calls start and finish meanwhile.
 *
 * @module
 * @internal
 */

import { isDeepStrictEqual } from 'node:util';
import { status as Code } from '@grpc/grpc-js';
import { Prevent, RoomBuilder, RoomExtender, Warn, copy } from './answers';
import { RefusedError } from './errors';
import type { AppMessage } from './generated/roomhooks/v1/AppMessage';
import type { Duration__Output } from './generated/google/protobuf/Duration';
import type { HookCall__Output } from './generated/roomhooks/v1/HookCall';
import type { HookResult } from './generated/roomhooks/v1/HookResult';
import type { PostEvent__Output } from './generated/roomhooks/v1/PostEvent';
import type { Register } from './generated/roomhooks/v1/Register';
import type { RuntimeMessage__Output } from './generated/roomhooks/v1/RuntimeMessage';
import { UserNotAllowedException } from './errors';
import type { AnyHandlers, HookContext, PostContext } from './interfaces';
import type { Lease } from './connection';
import type { StreamStatus } from './stream';
import type { Logger } from './logger';
import { joinedFromWire, leaveFromWire, roomFromWire, roomToWire, structToWire } from './types';
import type { HookInterface } from './types';

/** Post events waiting for the in-order worker, at most (above the sidecar's default window of 1024). */
const POST_BACKLOG = 4096;
/** How long a drained stream waits for the sidecar to close its side before cancelling. */
const CLOSE_GRACE_MS = 2000;
/** The timeout of a call whose HookCall carries none. */
const DEFAULT_CALL_TIMEOUT_MS = 30_000;

/** Refusals that retrying cannot fix. */
const FATAL = new Set([Code.INVALID_ARGUMENT, Code.PERMISSION_DENIED, Code.UNAUTHENTICATED, Code.UNIMPLEMENTED]);

/** What a session needs from its app. */
export interface SessionApp {
  /** The Register message. */
  register: Register;
  /** The handlers (the app object itself). */
  handlers: AnyHandlers;
  /** `authorization: Bearer <token>`, when set. */
  token: string | undefined;
  /** Calls handled at once; more are answered with an error. */
  maxConcurrentCalls: number;
  /** How long a drain waits for calls in flight. */
  drainTimeoutMs: number;
  /** How long to wait for `Registered`. */
  registerTimeoutMs: number;
  /** Where to log. */
  logger: Logger;
  /** Told when the sidecar accepted the registration. */
  onRegistered(instanceId: string): void;
  /**
   * The app's last post handler, across sessions: a new session waits for a handler the previous
   * one left running (its event is redelivered) so post events never overlap.
   */
  postTail: { current: Promise<void> };
}

/** How a session ended. */
export type SessionEnd =
  | { kind: 'drained' }
  | { kind: 'disconnected'; registered: boolean; reason: string };

/** A running session: its end, and a way to drain it. */
export interface Session {
  /** Settles when the session ends; rejects with a `RefusedError` on a fatal refusal. */
  readonly ended: Promise<SessionEnd>;
  /** Stops taking calls and events, lets those in flight finish (up to the drain timeout), then closes the stream. */
  drain(): void;
}

/**
 * A call's abort signal, created only when the handler looks at it: most handlers never do, and
 * an AbortController per call was the largest single cost of a call in the profile.
 */
class CallAbort {
  private controller: AbortController | undefined;
  private reason: unknown;
  private aborted = false;

  /** The signal (already aborted when the call was). */
  get signal(): AbortSignal {
    if (!this.controller) {
      this.controller = new AbortController();
      if (this.aborted) this.controller.abort(this.reason);
    }
    return this.controller.signal;
  }

  /** Aborts with `reason` (made only now, and only once). */
  abort(reason: () => unknown): void {
    if (this.aborted) return;
    this.aborted = true;
    if (this.controller) this.controller.abort(reason());
    else this.reason = reason();
  }
}

interface InFlight {
  abort: CallAbort;
  timer: NodeJS.Timeout;
}

function durationMs(d: Duration__Output | null | undefined): number | undefined {
  if (!d) return undefined;
  return Number(d.seconds) * 1000 + d.nanos / 1e6;
}

function messageOf(err: unknown): string {
  if (err instanceof Error) return err.message || err.name;
  return String(err);
}

/**
 * This SDK's `UserNotAllowedException`, or one with that name from elsewhere — Apps-Engine's own
 * (`@rocket.chat/apps-engine/definition/exceptions`), so ported app code keeps working.
 */
function isUserNotAllowed(err: unknown): err is Error {
  return (
    err instanceof UserNotAllowedException ||
    (err instanceof Error && (err.name === 'UserNotAllowedException' || err.constructor?.name === 'UserNotAllowedException'))
  );
}

function describe(hook: HookInterface): string {
  return hook.replace(/^HOOK_INTERFACE_/, '');
}

/** Starts a session on `lease`. */
export function startSession(app: SessionApp, lease: Lease): Session {
  const { logger } = app;
  const appId = app.register.appId ?? '';
  const headers = app.token !== undefined ? { authorization: `Bearer ${app.token}` } : {};
  // The handlers are defined below; the stream reports nothing before this function returns.
  const stream = lease.open(headers, { message: (m) => onMessage(m), status: (s) => onStatus(s) });

  let state: 'registering' | 'running' | 'draining' | 'ended' = 'registering';
  let instanceId = '';
  const calls = new Map<string, InFlight>();
  const backlog: PostEvent__Output[] = [];
  let posting = false;
  let drainTimer: NodeJS.Timeout | undefined;
  let closeTimer: NodeJS.Timeout | undefined;
  let halfClosed = false;

  let settle!: (end: SessionEnd) => void;
  let fail!: (err: Error) => void;
  const ended = new Promise<SessionEnd>((resolve, reject) => {
    settle = resolve;
    fail = reject;
  });

  const send = (message: AppMessage): void => {
    if (state === 'ended' || halfClosed) return;
    try {
      stream.write(message);
    } catch (err) {
      logger.warn(`could not write to the app stream: ${messageOf(err)}`, { app_id: appId });
    }
  };

  const finish = (end: SessionEnd | Error): void => {
    if (state === 'ended') return;
    const wasDraining = state === 'draining';
    state = 'ended';
    clearTimeout(registerTimer);
    clearTimeout(drainTimer);
    clearTimeout(closeTimer);
    for (const [, call] of calls) {
      clearTimeout(call.timer);
      call.abort.abort(() => new DOMException('the connection to the sidecar ended', 'AbortError'));
    }
    calls.clear();
    backlog.length = 0;
    lease.release();
    if (end instanceof Error) fail(end);
    else settle(wasDraining ? { kind: 'drained' } : end);
  };

  const registerTimer = setTimeout(() => {
    if (state !== 'registering') return;
    stream.cancel();
    finish({ kind: 'disconnected', registered: false, reason: `no Registered within ${app.registerTimeoutMs} ms` });
  }, app.registerTimeoutMs);

  // --- draining ---
  const closeIfDrained = (): void => {
    if (state !== 'draining' || halfClosed) return;
    if (calls.size > 0 || posting) return;
    halfClose();
  };
  const halfClose = (): void => {
    if (halfClosed) return;
    halfClosed = true;
    clearTimeout(drainTimer);
    try {
      stream.end();
    } catch {
      // already ended
    }
    // The sidecar ends its side once it saw ours; if it does not, stop waiting.
    closeTimer = setTimeout(() => {
      stream.cancel();
      finish({ kind: 'drained' });
    }, CLOSE_GRACE_MS);
  };
  const drain = (): void => {
    if (state === 'ended' || state === 'draining') return;
    if (state === 'registering') {
      stream.cancel();
      state = 'draining';
      finish({ kind: 'drained' });
      return;
    }
    state = 'draining';
    backlog.length = 0; // not acknowledged: the sidecar redelivers them
    logger.info('draining before shutdown', { app_id: appId, in_flight: calls.size });
    drainTimer = setTimeout(() => {
      if (calls.size > 0 || posting) {
        logger.warn('drain timeout passed with calls still running; abandoning them', { app_id: appId, left: calls.size });
      }
      for (const [, call] of calls) {
        clearTimeout(call.timer);
        call.abort.abort(() => new DOMException('the app is shutting down', 'AbortError'));
      }
      calls.clear();
      halfClose();
    }, app.drainTimeoutMs);
    closeIfDrained();
  };

  // --- calls ---
  const result = (callId: string, answer: Omit<HookResult, 'callId'>): void => {
    send({ result: { callId, ...answer } });
  };
  const startCall = (call: HookCall__Output): void => {
    const callId = call.callId;
    if (state === 'draining') {
      result(callId, { error: { message: 'the app instance is shutting down' } });
      return;
    }
    if (calls.size >= app.maxConcurrentCalls) {
      result(callId, { error: { message: `the app instance is at its maxConcurrentCalls (${app.maxConcurrentCalls})` } });
      return;
    }
    const timeoutMs = durationMs(call.timeout) ?? DEFAULT_CALL_TIMEOUT_MS;
    const abort = new CallAbort();
    const timer = setTimeout(() => {
      // Past the deadline the sidecar no longer waits: send nothing.
      if (calls.delete(callId)) {
        abort.abort(() => new DOMException(`the call's deadline (${Math.round(timeoutMs)} ms) passed`, 'TimeoutError'));
        closeIfDrained();
      }
    }, timeoutMs);
    calls.set(callId, { abort, timer });
    const ctx: HookContext = {
      callId,
      hook: call.hook,
      requestId: call.requestId,
      dryRun: call.dryRun,
      traceparent: call.traceparent,
      deadline: Date.now() + timeoutMs,
      get signal() {
        return abort.signal;
      },
      appId,
      instanceId,
    };
    void answer(app.handlers, call, ctx).then((answered) => {
      const entry = calls.get(callId);
      if (!entry || entry.abort !== abort) return; // cancelled, timed out or disconnected
      clearTimeout(entry.timer);
      calls.delete(callId);
      result(callId, answered);
      closeIfDrained();
    });
  };
  const cancelCall = (callId: string): void => {
    const entry = calls.get(callId);
    if (!entry) return;
    calls.delete(callId);
    clearTimeout(entry.timer);
    entry.abort.abort(() => new DOMException('the sidecar cancelled the call (CancelCall)', 'AbortError'));
    closeIfDrained();
  };

  // --- post events, one at a time in delivery order ---
  const pump = async (): Promise<void> => {
    if (posting) return;
    posting = true;
    try {
      await app.postTail.current;
      while (state === 'running' && backlog.length > 0) {
        const event = backlog.shift() as PostEvent__Output;
        const ctx: PostContext = { eventId: event.eventId, hook: event.hook, attempt: event.attempt, appId, instanceId };
        let ok = false;
        try {
          const handled = handlePost(app.handlers, event, ctx);
          app.postTail.current = handled.then(
            () => {},
            () => {},
          );
          await handled;
          ok = true;
        } catch (err) {
          logger.warn(`post handler failed: ${messageOf(err)}; not acknowledged, the sidecar will redeliver it`, {
            app_id: appId,
            event_id: event.eventId,
            attempt: event.attempt,
          });
        }
        if (ok) send({ postAck: { eventId: event.eventId } });
      }
    } finally {
      posting = false;
      closeIfDrained();
    }
  };

  // --- the stream ---
  const onMessage = (message: RuntimeMessage__Output): void => {
    if (state === 'ended') return;
    if (state === 'registering') {
      if (message.msg !== 'registered' || !message.registered) {
        stream.cancel();
        finish({ kind: 'disconnected', registered: false, reason: 'the sidecar did not answer Register with Registered' });
        return;
      }
      clearTimeout(registerTimer);
      instanceId = message.registered.instanceId;
      state = 'running';
      logger.info('registered with the sidecar', { app_id: message.registered.appId, instance_id: instanceId });
      app.onRegistered(instanceId);
      return;
    }
    switch (message.msg) {
      case 'heartbeat':
        send({ heartbeatAck: { nonce: message.heartbeat?.nonce ?? '0' } });
        break;
      case 'call':
        if (message.call) startCall(message.call);
        break;
      case 'cancel':
        if (message.cancel) cancelCall(message.cancel.callId);
        break;
      case 'postEvent':
        if (state !== 'running' || !message.postEvent) break;
        if (backlog.length >= POST_BACKLOG) {
          logger.warn('post-event backlog full; the event will be redelivered', { app_id: appId, event_id: message.postEvent.eventId });
          break;
        }
        backlog.push(message.postEvent);
        void pump();
        break;
      default:
        break;
    }
  };
  const onStatus = (status: StreamStatus): void => {
    if (state === 'ended') return;
    const registered = state !== 'registering';
    if (!registered && FATAL.has(status.code)) {
      finish(new RefusedError(Code[status.code] ?? String(status.code), status.details));
      return;
    }
    const reason = status.code === Code.OK ? 'the sidecar ended the stream' : `${Code[status.code] ?? status.code}: ${status.details}`;
    finish({ kind: 'disconnected', registered, reason });
  };

  stream.write({ register: app.register });
  return { ended, drain };
}

/** Runs the handler for one call and turns its outcome into an answer; never rejects. */
async function answer(h: AnyHandlers, call: HookCall__Output, ctx: HookContext): Promise<Omit<HookResult, 'callId'>> {
  const error = (message: string) => ({ error: { message } });
  const missing = () => error(`this app has no handler for ${call.hook}`);
  const veto = (answered: unknown, method: string) => {
    if (answered instanceof Prevent) return { decision: { prevent: true, message: answered.message } };
    if (answered instanceof Warn) return { decision: { prevent: false, message: '', warning: answered.message } };
    if (typeof answered === 'boolean') return { decision: { prevent: answered, message: '' } };
    return error(`${method} returned ${answered === undefined ? 'undefined' : typeof answered}: return false to allow, true or prevent(message) to prevent, warn(message) to allow with a warning`);
  };
  try {
    switch (call.hook) {
      case 'HOOK_INTERFACE_PRE_ROOM_CREATE_PREVENT': {
        if (call.payload !== 'room' || !h.executePreRoomCreatePrevent) break;
        const room = roomFromWire(call.room);
        if (h.checkPreRoomCreatePrevent && !(await h.checkPreRoomCreatePrevent(room, ctx))) return veto(false, '');
        return veto(await h.executePreRoomCreatePrevent(room, ctx), 'executePreRoomCreatePrevent');
      }
      case 'HOOK_INTERFACE_PRE_ROOM_DELETE_PREVENT': {
        if (call.payload !== 'room' || !h.executePreRoomDeletePrevent) break;
        const room = roomFromWire(call.room);
        if (h.checkPreRoomDeletePrevent && !(await h.checkPreRoomDeletePrevent(room, ctx))) return veto(false, '');
        return veto(await h.executePreRoomDeletePrevent(room, ctx), 'executePreRoomDeletePrevent');
      }
      case 'HOOK_INTERFACE_PRE_ROOM_USER_JOINED': {
        if (call.payload !== 'userJoined' || !h.executePreRoomUserJoined) break;
        await h.executePreRoomUserJoined(joinedFromWire(call.userJoined), ctx);
        return veto(false, '');
      }
      case 'HOOK_INTERFACE_PRE_ROOM_USER_LEAVE': {
        if (call.payload !== 'userLeave' || !h.executePreRoomUserLeave) break;
        await h.executePreRoomUserLeave(leaveFromWire(call.userLeave), ctx);
        return veto(false, '');
      }
      case 'HOOK_INTERFACE_PRE_ROOM_CREATE_EXTEND': {
        if (call.payload !== 'room' || !h.executePreRoomCreateExtend) break;
        const room = roomFromWire(call.room);
        if (h.checkPreRoomCreateExtend && !(await h.checkPreRoomCreateExtend(room, ctx))) return { extension: { memberUsernames: [] } };
        const extender = new RoomExtender(copy(room));
        await h.executePreRoomCreateExtend(room, extender, ctx);
        const fields = extender.getCustomFieldsBeingAdded();
        return {
          extension: {
            customFields: Object.keys(fields).length > 0 ? structToWire(fields, 'customFields') : null,
            memberUsernames: extender.getMembersBeingAdded(),
          },
        };
      }
      case 'HOOK_INTERFACE_PRE_ROOM_CREATE_MODIFY': {
        if (call.payload !== 'room' || !h.executePreRoomCreateModify) break;
        const room = roomFromWire(call.room);
        if (h.checkPreRoomCreateModify && !(await h.checkPreRoomCreateModify(room, ctx))) return { modification: { room: null } };
        const original = copy(room);
        const builder = new RoomBuilder(room);
        const returned = await h.executePreRoomCreateModify(room, builder, ctx);
        const changed = returned ?? builder.getRoom();
        if (isDeepStrictEqual(changed, original)) return { modification: { room: null } };
        return { modification: { room: roomToWire(changed, 'room') } };
      }
      default:
        return error(`HookCall for ${call.hook} is not a Pre hook this SDK knows`);
    }
  } catch (err) {
    const vetoHook =
      call.hook === 'HOOK_INTERFACE_PRE_ROOM_USER_JOINED' ||
      call.hook === 'HOOK_INTERFACE_PRE_ROOM_USER_LEAVE' ||
      call.hook === 'HOOK_INTERFACE_PRE_ROOM_CREATE_PREVENT' ||
      call.hook === 'HOOK_INTERFACE_PRE_ROOM_DELETE_PREVENT';
    if (vetoHook && isUserNotAllowed(err)) return { decision: { prevent: true, message: err.message } };
    return error(messageOf(err));
  }
  const present = INTERFACE_METHOD[call.hook];
  return present && typeof (h as Record<string, unknown>)[present] === 'function'
    ? error(`HookCall for ${describe(call.hook)} carried a payload that does not fit it (${call.payload ?? 'none'})`)
    : missing();
}

const INTERFACE_METHOD: Partial<Record<HookInterface, string>> = {
  HOOK_INTERFACE_PRE_ROOM_CREATE_PREVENT: 'executePreRoomCreatePrevent',
  HOOK_INTERFACE_PRE_ROOM_CREATE_EXTEND: 'executePreRoomCreateExtend',
  HOOK_INTERFACE_PRE_ROOM_CREATE_MODIFY: 'executePreRoomCreateModify',
  HOOK_INTERFACE_PRE_ROOM_DELETE_PREVENT: 'executePreRoomDeletePrevent',
  HOOK_INTERFACE_PRE_ROOM_USER_JOINED: 'executePreRoomUserJoined',
  HOOK_INTERFACE_PRE_ROOM_USER_LEAVE: 'executePreRoomUserLeave',
};

/** Runs the post handler for one event; resolves when it may be acknowledged, rejects when not. */
async function handlePost(h: AnyHandlers, event: PostEvent__Output, ctx: PostContext): Promise<void> {
  switch (event.hook) {
    case 'HOOK_INTERFACE_POST_ROOM_CREATE': {
      if (event.payload !== 'room') break;
      if (!h.executePostRoomCreate) return;
      const room = roomFromWire(event.room);
      if (h.checkPostRoomCreate && !(await h.checkPostRoomCreate(room, ctx))) return;
      return h.executePostRoomCreate(room, ctx);
    }
    case 'HOOK_INTERFACE_POST_ROOM_DELETED': {
      if (event.payload !== 'room') break;
      if (!h.executePostRoomDeleted) return;
      const room = roomFromWire(event.room);
      if (h.checkPostRoomDeleted && !(await h.checkPostRoomDeleted(room, ctx))) return;
      return h.executePostRoomDeleted(room, ctx);
    }
    case 'HOOK_INTERFACE_POST_ROOM_USER_JOINED':
      if (event.payload !== 'userJoined') break;
      if (!h.executePostRoomUserJoined) return;
      return h.executePostRoomUserJoined(joinedFromWire(event.userJoined), ctx);
    case 'HOOK_INTERFACE_POST_ROOM_USER_LEAVE':
      if (event.payload !== 'userLeave') break;
      if (!h.executePostRoomUserLeave) return;
      return h.executePostRoomUserLeave(leaveFromWire(event.userLeave), ctx);
    default:
      break;
  }
  throw new Error(`PostEvent for ${event.hook} carried a payload that does not fit it (${event.payload ?? 'none'})`);
}
