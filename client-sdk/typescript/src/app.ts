/**
 * An app: a class extending `RoomHooksApp` that implements the interfaces it needs (or the
 * functional builder, `app(id)`), and how it runs: connect, register, answer, reconnect, drain.
 *
 * @module
 */

import { Backoff } from './backoff';
import { Connection, ownLink } from './connection';
import type { Link, TlsOptions } from './connection';
import { SdkError } from './errors';
import type { Register } from './generated/roomhooks/v1/Register';
import { INTERFACES } from './interfaces';
import type {
  AnyHandlers,
  HookContext,
  IPostRoomCreate,
  IPostRoomDeleted,
  IPostRoomUserJoined,
  IPostRoomUserLeave,
  IPreRoomCreateExtend,
  IPreRoomCreateModify,
  IPreRoomCreatePrevent,
  IPreRoomDeletePrevent,
  IPreRoomUserJoined,
  IPreRoomUserLeave,
  PostContext,
} from './interfaces';
import type { PreventAnswer, RoomBuilder, RoomExtender } from './answers';
import { stderrLogger } from './logger';
import type { Logger } from './logger';
import { startSession } from './session';
import type { Session } from './session';
import type { FailurePolicy, HookInterface, Room, RoomType, RoomUserJoined, RoomUserLeave } from './types';

/** How an app registers, connects and behaves; only `appId` is required. */
export interface AppOptions {
  /** The app's id (1-128 characters of `A-Z a-z 0-9 . _ -`); connections with one id are instances of one app. */
  appId: string;
  /** The version shown by `Admin.ListApps` (default `0.0.0`). */
  version?: string;
  /** This instance's id; absent = the sidecar assigns one. */
  instanceId?: string;
  /** Apps run in ascending priority, ties broken by app id (default 0). */
  priority?: number;
  /** What an error, timeout or missing instance of this app means: `ignore` (fail open, the default) or `fail` (prevent). */
  failurePolicy?: 'ignore' | 'fail' | FailurePolicy;
  /** How long the sidecar waits for each answer, in ms; absent = the sidecar's default (1 s), capped by its `--max-timeout`. */
  timeoutMs?: number;
  /** The room types to be called for (e.g. `['ROOM_TYPE_CHANNEL']`); absent or empty = all. */
  roomTypes?: RoomType[];
  /** The app's token, sent as `authorization: Bearer <token>` when the sidecar requires one. */
  token?: string;
  /** TLS settings for the app's own connection (use an `https://` endpoint); a shared `Connection` has its own. */
  tls?: TlsOptions;
  /** Calls handled at once; more are answered with an error, so the failure policy applies (default 1024). */
  maxConcurrentCalls?: number;
  /** How long `stop()` waits for calls in flight, in ms (default 10 000). */
  drainTimeoutMs?: number;
  /** The first reconnect delay, in ms (default 100). */
  reconnectMinMs?: number;
  /** The longest reconnect delay, in ms (default 5000). */
  reconnectMaxMs?: number;
  /** How long to wait for the sidecar to accept the registration before retrying, in ms (default 10 000). */
  registerTimeoutMs?: number;
  /** Where the SDK logs (default: one line per message on stderr). */
  logger?: Logger;
  /** Whether `run()` drains and stops on SIGTERM and SIGINT (default true). */
  stopOnSignals?: boolean;
}

/** The options with their defaults filled in. */
export type ResolvedAppOptions = Required<Omit<AppOptions, 'instanceId' | 'timeoutMs' | 'token' | 'tls' | 'failurePolicy'>> &
  Pick<AppOptions, 'instanceId' | 'timeoutMs' | 'token' | 'tls'> & { failurePolicy: FailurePolicy };

function resolve(options: AppOptions): ResolvedAppOptions {
  if (!options || typeof options.appId !== 'string' || options.appId === '') {
    throw new SdkError('an app needs an appId, e.g. new MyApp({ appId: "word-filter" })');
  }
  // An HTTP header value: visible ASCII and spaces, nothing that would end the header.
  if (options.token !== undefined && (typeof options.token !== 'string' || options.token === '' || !/^[\x20-\x7e]+$/.test(options.token))) {
    throw new SdkError('the token must be a non-empty string of printable ASCII (it is sent as `authorization: Bearer <token>`); check for a trailing newline');
  }
  const policy = options.failurePolicy ?? 'ignore';
  const failurePolicy: FailurePolicy =
    policy === 'ignore' ? 'FAILURE_POLICY_IGNORE' : policy === 'fail' ? 'FAILURE_POLICY_FAIL' : policy;
  const reconnectMinMs = Math.max(1, options.reconnectMinMs ?? 100);
  return {
    appId: options.appId,
    version: options.version ?? '0.0.0',
    instanceId: options.instanceId,
    priority: options.priority ?? 0,
    failurePolicy,
    timeoutMs: options.timeoutMs,
    roomTypes: options.roomTypes ?? [],
    token: options.token,
    tls: options.tls,
    maxConcurrentCalls: Math.max(1, options.maxConcurrentCalls ?? 1024),
    drainTimeoutMs: options.drainTimeoutMs ?? 10_000,
    reconnectMinMs,
    reconnectMaxMs: Math.max(reconnectMinMs, options.reconnectMaxMs ?? 5000),
    registerTimeoutMs: options.registerTimeoutMs ?? 10_000,
    logger: options.logger ?? stderrLogger,
    stopOnSignals: options.stopOnSignals ?? true,
  };
}

/** Where an app runs: an endpoint (`http://127.0.0.1:50051`), several endpoints to rotate through, or a shared `Connection`. */
export type RunTarget = string | readonly string[] | Connection;

/**
 * A roomhooks app. Extend it and implement the interfaces you need (`IPreRoomCreatePrevent`,
 * `IPostRoomCreate`, ...): registration follows from the `execute*` methods the object has.
 *
 * `run()` connects, registers, answers many calls at once, handles post events one at a time in
 * delivery order (acknowledging each after its handler resolves), reconnects with capped
 * exponential backoff and jitter when the stream ends (with an error or OK), and drains in-flight
 * calls on `stop()` or SIGTERM.
 */
export class RoomHooksApp {
  /** The options, with defaults filled in. */
  readonly options: ResolvedAppOptions;
  private running: Promise<void> | undefined;
  private session: Session | undefined;
  private stopping = false;
  private wake: (() => void) | undefined;
  private instance: string | undefined;
  private waiters: { resolve: (id: string) => void; reject: (err: Error) => void }[] = [];
  private readonly postTail = { current: Promise.resolve() };

  /** An app with these options (only `appId` is required). */
  constructor(options: AppOptions) {
    this.options = resolve(options);
  }

  /** The interfaces this app registers, derived from the `execute*` methods it has. */
  interfaces(): HookInterface[] {
    const handlers = this as unknown as Record<string, unknown>;
    return INTERFACES.filter(([, method]) => typeof handlers[method] === 'function').map(([hook]) => hook);
  }

  /** The Register message this app sends. */
  registerMessage(): Register {
    const o = this.options;
    const timeout =
      o.timeoutMs === undefined
        ? null
        : { seconds: String(Math.floor(o.timeoutMs / 1000)), nanos: Math.round((o.timeoutMs % 1000) * 1e6) };
    return {
      appId: o.appId,
      version: o.version,
      instanceId: o.instanceId ?? '',
      interfaces: this.interfaces(),
      priority: o.priority,
      failurePolicy: o.failurePolicy,
      timeout,
      roomTypes: o.roomTypes,
    };
  }

  /**
   * Runs the app until `stop()` (or SIGTERM / SIGINT, unless `stopOnSignals: false`); resolves once
   * it drained. Rejects with an `InvalidEndpointError` for an endpoint it cannot dial and with a
   * `RefusedError` when the sidecar refuses the registration for good; an unreachable sidecar is
   * retried (and logged) until stopped.
   */
  run(target: RunTarget): Promise<void> {
    if (this.running) return Promise.reject(new SdkError(`the app ${this.options.appId} is already running`));
    let link: Link;
    try {
      if (this.interfaces().length === 0) {
        throw new SdkError(
          `the app ${this.options.appId} implements none of the ten interfaces: add a method such as executePreRoomCreatePrevent (or use app(id).preRoomCreatePrevent(...))`,
        );
      }
      link = target instanceof Connection ? target.link() : ownLink(typeof target === 'string' ? [target] : [...target], this.options.tls);
      if (link.targets.length === 0) throw new SdkError('run() needs at least one endpoint, e.g. http://127.0.0.1:50051');
      if (target instanceof Connection && this.options.tls) {
        this.options.logger.warn("this app's tls option is not used on a shared Connection; pass tls to the Connection", {
          app_id: this.options.appId,
        });
      }
    } catch (err) {
      return Promise.reject(err);
    }
    this.stopping = false;
    const onSignal = () => void this.stop();
    if (this.options.stopOnSignals) {
      process.once('SIGTERM', onSignal);
      process.once('SIGINT', onSignal);
    }
    const running = this.loop(link).finally(() => {
      process.removeListener('SIGTERM', onSignal);
      process.removeListener('SIGINT', onSignal);
      this.running = undefined;
      this.setRegistered(undefined);
      const waiters = this.waiters.splice(0);
      for (const w of waiters) w.reject(new SdkError(`the app ${this.options.appId} stopped`));
    });
    this.running = running;
    return running;
  }

  /** Starts the app in the background (as `run` does) and returns it; `stop()` ends it, `registered()` waits for it. */
  start(target: RunTarget): this {
    this.run(target).catch((err: unknown) => {
      this.options.logger.error(`the app stopped: ${err instanceof Error ? err.message : String(err)}`, { app_id: this.options.appId });
    });
    return this;
  }

  /** Resolves with the instance id once the sidecar accepted the registration (at once when it already has). */
  registered(): Promise<string> {
    if (this.instance !== undefined) return Promise.resolve(this.instance);
    if (!this.running) return Promise.reject(new SdkError(`the app ${this.options.appId} is not running`));
    return new Promise((resolve, reject) => this.waiters.push({ resolve, reject }));
  }

  /** Stops gracefully: no new calls, in-flight calls finish (up to `drainTimeoutMs`), then the stream closes; resolves when stopped. */
  async stop(): Promise<void> {
    this.stopping = true;
    this.session?.drain();
    this.wake?.();
    await this.running;
  }

  private setRegistered(instanceId: string | undefined): void {
    this.instance = instanceId;
    if (instanceId !== undefined) {
      for (const w of this.waiters.splice(0)) w.resolve(instanceId);
    }
  }

  private async loop(link: Link): Promise<void> {
    const o = this.options;
    const backoff = new Backoff(o.reconnectMinMs, o.reconnectMaxMs);
    let index = 0;
    while (!this.stopping) {
      const target = link.targets[index % link.targets.length];
      const session = startSession(
        {
          register: this.registerMessage(),
          handlers: this as AnyHandlers,
          token: o.token,
          maxConcurrentCalls: o.maxConcurrentCalls,
          drainTimeoutMs: o.drainTimeoutMs,
          registerTimeoutMs: o.registerTimeoutMs,
          logger: o.logger,
          onRegistered: (id) => this.setRegistered(id),
          postTail: this.postTail,
        },
        link.lease(index % link.targets.length),
      );
      this.session = session;
      if (this.stopping) session.drain();
      let end;
      try {
        end = await session.ended;
      } catch (err) {
        o.logger.error(err instanceof Error ? err.message : String(err), { app_id: o.appId, endpoint: target.endpoint });
        throw err;
      } finally {
        this.session = undefined;
        this.setRegistered(undefined);
      }
      if (end.kind === 'drained' || this.stopping) return;
      if (end.registered) {
        backoff.reset();
      } else {
        index += 1; // try the next endpoint, when there are several
      }
      const delay = Math.round(backoff.nextDelay());
      if (end.registered) {
        o.logger.info(`connection to the sidecar ended (${end.reason}); reconnecting in ${delay} ms`, { app_id: o.appId, endpoint: target.endpoint });
      } else {
        o.logger.warn(
          `cannot reach the sidecar at ${target.endpoint} (${end.reason}); is it running and listening there? retrying in ${delay} ms`,
          { app_id: o.appId },
        );
      }
      await new Promise<void>((done) => {
        const timer = setTimeout(done, delay);
        this.wake = () => {
          clearTimeout(timer);
          done();
        };
      });
      this.wake = undefined;
    }
  }
}

/** A Pre handler of the functional builder. */
type Pre<I, O> = (input: I, ctx: HookContext) => O | Promise<O>;
/** A post handler of the functional builder. */
type Post<I> = (input: I, ctx: PostContext) => void | Promise<void>;

/**
 * The functional builder for small apps: `app('audit').postRoomCreate(async (room) => ...).run(endpoint)`.
 * Each method sets the handler of one interface; registration follows from those set.
 */
export class AppBuilder extends RoomHooksApp implements Partial<
  IPreRoomCreatePrevent & IPreRoomCreateExtend & IPreRoomCreateModify & IPostRoomCreate & IPreRoomDeletePrevent &
    IPostRoomDeleted & IPreRoomUserJoined & IPostRoomUserJoined & IPreRoomUserLeave & IPostRoomUserLeave
> {
  /** Set by `preRoomCreatePrevent`. */
  executePreRoomCreatePrevent?: IPreRoomCreatePrevent['executePreRoomCreatePrevent'];
  /** Set by `preRoomCreateExtend`. */
  executePreRoomCreateExtend?: IPreRoomCreateExtend['executePreRoomCreateExtend'];
  /** Set by `preRoomCreateModify`. */
  executePreRoomCreateModify?: IPreRoomCreateModify['executePreRoomCreateModify'];
  /** Set by `postRoomCreate`. */
  executePostRoomCreate?: IPostRoomCreate['executePostRoomCreate'];
  /** Set by `preRoomDeletePrevent`. */
  executePreRoomDeletePrevent?: IPreRoomDeletePrevent['executePreRoomDeletePrevent'];
  /** Set by `postRoomDeleted`. */
  executePostRoomDeleted?: IPostRoomDeleted['executePostRoomDeleted'];
  /** Set by `preRoomUserJoined`. */
  executePreRoomUserJoined?: IPreRoomUserJoined['executePreRoomUserJoined'];
  /** Set by `postRoomUserJoined`. */
  executePostRoomUserJoined?: IPostRoomUserJoined['executePostRoomUserJoined'];
  /** Set by `preRoomUserLeave`. */
  executePreRoomUserLeave?: IPreRoomUserLeave['executePreRoomUserLeave'];
  /** Set by `postRoomUserLeave`. */
  executePostRoomUserLeave?: IPostRoomUserLeave['executePostRoomUserLeave'];

  /** IPreRoomCreatePrevent: answer `true` or `prevent(message)` to stop a room from being created. */
  preRoomCreatePrevent(fn: Pre<Room, PreventAnswer>): this {
    this.executePreRoomCreatePrevent = async (room, ctx) => fn(room, ctx);
    return this;
  }

  /** IPreRoomCreateExtend: add custom fields and members through the extender. */
  preRoomCreateExtend(fn: (room: Room, extend: RoomExtender, ctx: HookContext) => unknown): this {
    this.executePreRoomCreateExtend = async (room, extend, ctx) => fn(room, extend, ctx);
    return this;
  }

  /** IPreRoomCreateModify: return the changed room, or change the builder and return nothing. */
  preRoomCreateModify(fn: (room: Room, builder: RoomBuilder, ctx: HookContext) => Room | void | Promise<Room | void>): this {
    this.executePreRoomCreateModify = async (room, builder, ctx) => fn(room, builder, ctx);
    return this;
  }

  /** IPostRoomCreate: a room was created; resolving acknowledges the event. */
  postRoomCreate(fn: Post<Room>): this {
    this.executePostRoomCreate = async (room, ctx) => fn(room, ctx);
    return this;
  }

  /** IPreRoomDeletePrevent: answer `true` or `prevent(message)` to stop a room from being deleted. */
  preRoomDeletePrevent(fn: Pre<Room, PreventAnswer>): this {
    this.executePreRoomDeletePrevent = async (room, ctx) => fn(room, ctx);
    return this;
  }

  /** IPostRoomDeleted: a room was deleted; resolving acknowledges the event. */
  postRoomDeleted(fn: Post<Room>): this {
    this.executePostRoomDeleted = async (room, ctx) => fn(room, ctx);
    return this;
  }

  /** IPreRoomUserJoined: throw `UserNotAllowedException(message)` to stop the join. */
  preRoomUserJoined(fn: (context: RoomUserJoined, ctx: HookContext) => void | Promise<void>): this {
    this.executePreRoomUserJoined = async (context, ctx) => fn(context, ctx);
    return this;
  }

  /** IPostRoomUserJoined: a user joined; resolving acknowledges the event. */
  postRoomUserJoined(fn: Post<RoomUserJoined>): this {
    this.executePostRoomUserJoined = async (context, ctx) => fn(context, ctx);
    return this;
  }

  /** IPreRoomUserLeave: throw `UserNotAllowedException(message)` to stop the leave. */
  preRoomUserLeave(fn: (context: RoomUserLeave, ctx: HookContext) => void | Promise<void>): this {
    this.executePreRoomUserLeave = async (context, ctx) => fn(context, ctx);
    return this;
  }

  /** IPostRoomUserLeave: a user left; resolving acknowledges the event. */
  postRoomUserLeave(fn: Post<RoomUserLeave>): this {
    this.executePostRoomUserLeave = async (context, ctx) => fn(context, ctx);
    return this;
  }
}

/** Starts a functional app: `app('audit')` or `app({ appId: 'audit', priority: 5 })`. */
export function app(options: string | AppOptions): AppBuilder {
  return new AppBuilder(typeof options === 'string' ? { appId: options } : options);
}
