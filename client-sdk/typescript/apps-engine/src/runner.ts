/**
 * The runner: loads an Apps-Engine app (`openPackage`, `loadAppClass`), constructs it with
 * `(info, logger, accessors)`, runs `initialize` and `onEnable`, and connects it to a roomhooks
 * sidecar as an app (through the TypeScript SDK) with one handler per room interface it
 * implements, each calling the app's `check*` / `execute*` with Apps-Engine's arguments.
 *
 * @module
 */

import type { App } from '@rocket.chat/apps-engine/definition/App';
import type {
  IAppAccessors,
  IConfigurationExtend,
  IConfigurationModify,
  IEnvironmentRead,
  IHttp,
  IModify,
  IPersistence,
  IRead,
} from '@rocket.chat/apps-engine/definition/accessors';
import { UserNotAllowedException as AeUserNotAllowedException } from '@rocket.chat/apps-engine/definition/exceptions';
import type { IAppInfo } from '@rocket.chat/apps-engine/definition/metadata';
import type { IRoom } from '@rocket.chat/apps-engine/definition/rooms';
import type { IUser } from '@rocket.chat/apps-engine/definition/users';
import { AppBuilder, UserNotAllowedException, app as sdkApp, prevent } from 'roomhooks-sdk';
import type { HookContext, HookInterface, Room, RoomType, RunTarget } from 'roomhooks-sdk';
import { AeRoomBuilder, AeRoomExtender } from './builders';
import { joinedToAe, leaveToAe, roomFromAe, roomToAe } from './convert';
import { createHttp } from './http';
import type { HttpDefaults } from './http';
import { loadAppClass, openPackage } from './loader';
import type { AppPackage } from './loader';
import { appLogger } from './applogger';
import { RunnerLog, stderrSink } from './log';
import type { LogSink } from './log';
import { AppStore } from './persistence';
import { createRead } from './read';
import type { EventScope } from './read';
import { AppSettings, environmentReader, readSettingsFile } from './settings';
import type { SettingsFile } from './settings';
import { Unavailable } from './unavailable';

/** How to run an app; flags given here override the settings file. */
export interface RunnerOptions {
  /** Where app data (persistence) lives: one SQLite file per app (default `./roomhooks-apps-engine-data`). */
  dataDir?: string;
  /** A settings file (see `SettingsFile`). */
  settingsFile?: string;
  /** Settings given directly (merged over the file's). */
  settings?: SettingsFile;
  /** The app's token for the sidecar (`--app-token ID=TOKEN` there). */
  token?: string;
  /** Priority (default 0). */
  priority?: number;
  /** Failure policy (default `ignore`). */
  failurePolicy?: 'ignore' | 'fail';
  /** The sidecar's timeout per call, in ms (default: the sidecar's, 1 s). */
  timeoutMs?: number;
  /** The message for a Prevent handler's `true` (default `"<app name> prevented this action."`). */
  preventMessage?: string;
  /** This instance's id (default: the sidecar assigns one). */
  instanceId?: string;
  /** Where log lines go (default: JSON lines on stderr). */
  log?: LogSink;
  /** Drain and stop on SIGTERM / SIGINT (default true). */
  stopOnSignals?: boolean;
}

/** The ten room interfaces: Apps-Engine's name, the SDK's hook, the app's methods. */
const ROOM_INTERFACES: ReadonlyArray<{ name: string; hook: HookInterface; execute: string; check?: string }> = [
  { name: 'IPreRoomCreatePrevent', hook: 'HOOK_INTERFACE_PRE_ROOM_CREATE_PREVENT', execute: 'executePreRoomCreatePrevent', check: 'checkPreRoomCreatePrevent' },
  { name: 'IPreRoomCreateExtend', hook: 'HOOK_INTERFACE_PRE_ROOM_CREATE_EXTEND', execute: 'executePreRoomCreateExtend', check: 'checkPreRoomCreateExtend' },
  { name: 'IPreRoomCreateModify', hook: 'HOOK_INTERFACE_PRE_ROOM_CREATE_MODIFY', execute: 'executePreRoomCreateModify', check: 'checkPreRoomCreateModify' },
  { name: 'IPostRoomCreate', hook: 'HOOK_INTERFACE_POST_ROOM_CREATE', execute: 'executePostRoomCreate', check: 'checkPostRoomCreate' },
  { name: 'IPreRoomDeletePrevent', hook: 'HOOK_INTERFACE_PRE_ROOM_DELETE_PREVENT', execute: 'executePreRoomDeletePrevent', check: 'checkPreRoomDeletePrevent' },
  { name: 'IPostRoomDeleted', hook: 'HOOK_INTERFACE_POST_ROOM_DELETED', execute: 'executePostRoomDeleted', check: 'checkPostRoomDeleted' },
  { name: 'IPreRoomUserJoined', hook: 'HOOK_INTERFACE_PRE_ROOM_USER_JOINED', execute: 'executePreRoomUserJoined' },
  { name: 'IPostRoomUserJoined', hook: 'HOOK_INTERFACE_POST_ROOM_USER_JOINED', execute: 'executePostRoomUserJoined' },
  { name: 'IPreRoomUserLeave', hook: 'HOOK_INTERFACE_PRE_ROOM_USER_LEAVE', execute: 'executePreRoomUserLeave' },
  { name: 'IPostRoomUserLeave', hook: 'HOOK_INTERFACE_POST_ROOM_USER_LEAVE', execute: 'executePostRoomUserLeave' },
];

/** The sidecar's name of an Apps-Engine interface, as `essential_hooks` spells it (`IPreRoomCreatePrevent` → `PreRoomCreatePrevent`). */
export function essentialHookName(aeInterface: string): string | undefined {
  return ROOM_INTERFACES.some((i) => i.name === aeInterface) ? aeInterface.slice(1) : undefined;
}

/** The TOML an operator adds to the sidecar's config for the app's `essentials` (empty when it has none). */
export function essentialsConfig(info: Pick<IAppInfo, 'id' | 'essentials'>): string {
  const hooks = (info.essentials ?? []).map((e) => essentialHookName(String(e))).filter((h): h is string => h !== undefined);
  if (hooks.length === 0) return '';
  return `[apps.${info.id}]\nessential_hooks = [${hooks.map((h) => JSON.stringify(h)).join(', ')}]\n`;
}

type Method = (...args: unknown[]) => Promise<unknown>;

/** An Apps-Engine app loaded, initialized and enabled, ready to connect to a sidecar. */
export class AppsEngineRunner {
  /** The app's `app.json`. */
  readonly info: IAppInfo;
  /** The runner's log for this app. */
  readonly log: RunnerLog;
  /** The Apps-Engine app instance. */
  readonly app: App;
  /** Whether `onEnable` returned true (only an enabled app registers). */
  readonly enabled: boolean;
  /** The Apps-Engine interfaces registered with the sidecar (from `implements`, cross-checked with the methods present). */
  readonly interfaces: readonly string[];
  private readonly unavailable: Unavailable;
  private readonly store: AppStore;
  private readonly pkg: AppPackage;
  private readonly env: IEnvironmentRead;
  private readonly httpDefaults: HttpDefaults;
  private readonly settingsFile: SettingsFile;
  private readonly options: RunnerOptions;
  private sdk: AppBuilder | undefined;

  private constructor(parts: {
    pkg: AppPackage;
    log: RunnerLog;
    app: App;
    enabled: boolean;
    unavailable: Unavailable;
    store: AppStore;
    env: IEnvironmentRead;
    httpDefaults: HttpDefaults;
    settingsFile: SettingsFile;
    options: RunnerOptions;
  }) {
    this.pkg = parts.pkg;
    this.info = parts.pkg.info;
    this.log = parts.log;
    this.app = parts.app;
    this.enabled = parts.enabled;
    this.unavailable = parts.unavailable;
    this.store = parts.store;
    this.env = parts.env;
    this.httpDefaults = parts.httpDefaults;
    this.settingsFile = parts.settingsFile;
    this.options = parts.options;
    this.interfaces = this.crossCheck();
  }

  /**
   * Loads `source` (an rc-apps `.zip` or an unpacked folder), constructs the app, runs
   * `initialize` and `onEnable`. Throws an `AppLoadError` for a package it cannot load; an app
   * whose `onEnable` returns false comes back with `enabled: false` (and is logged).
   */
  static async open(source: string, options: RunnerOptions = {}): Promise<AppsEngineRunner> {
    const pkg = openPackage(source);
    let store: AppStore | undefined;
    try {
      const fileSettings = options.settingsFile ? readSettingsFile(options.settingsFile) : {};
      const settingsFile: SettingsFile = {
        ...fileSettings,
        ...options.settings,
        settings: { ...fileSettings.settings, ...options.settings?.settings },
        serverSettings: { ...fileSettings.serverSettings, ...options.settings?.serverSettings },
      };
      const log = new RunnerLog(pkg.info.id, options.log ?? stderrSink);
      const unavailable = new Unavailable(log);
      const settings = new AppSettings(settingsFile.settings);
      const declared = (pkg.info as IAppInfo & { settings?: unknown }).settings;
      if (Array.isArray(declared)) for (const s of declared) settings.provide(s);
      const env = environmentReader(settings, settingsFile, unavailable);
      store = new AppStore(options.dataDir ?? 'roomhooks-apps-engine-data', pkg.info.id);
      const httpDefaults: HttpDefaults = { headers: new Map(), params: new Map() };
      const AppClass = loadAppClass(pkg);
      const accessors: IAppAccessors = {
        environmentReader: env,
        environmentWriter: unavailable.proxy('accessors.environmentWriter', 'roomhooks apps cannot change settings at run time'),
        reader: createRead(env, store.reader(), { users: [] }, unavailable), // no event: only the environment and persistence
        http: createHttp(httpDefaults),
        providedApiEndpoints: [],
      };
      const app = new AppClass(pkg.info, appLogger(log, 'constructor'), accessors);
      const config = configurationExtend(settings, httpDefaults, unavailable);
      await app.initialize(config, env);
      const enabled = (await app.onEnable(env, configurationModify(unavailable))) !== false;
      if (!enabled) log.warn(`${pkg.info.name} ${pkg.info.version}: onEnable returned false, so the app is not registered with the sidecar`);
      return new AppsEngineRunner({ pkg, log, app, enabled, unavailable, store, env, httpDefaults, settingsFile, options });
    } catch (err) {
      store?.close();
      pkg.cleanup();
      throw err;
    }
  }

  /** How often each unavailable accessor was called (`{ "read.getRoomReader().getMembers()": 2 }`). */
  unavailableCalls(): Record<string, number> {
    return this.unavailable.snapshot();
  }

  /** The registration: interfaces from `implements` that have their `execute*` method; mismatches are logged. */
  private crossCheck(): string[] {
    const declared = new Set((this.info.implements ?? []).map(String));
    const methods = this.app as unknown as Record<string, unknown>;
    const out: string[] = [];
    for (const i of ROOM_INTERFACES) {
      const present = typeof methods[i.execute] === 'function';
      if (declared.has(i.name) && present) out.push(i.name);
      else if (declared.has(i.name)) this.log.warn(`app.json implements ${i.name} but the app has no ${i.execute}: not registered`);
      else if (present) this.log.warn(`the app has ${i.execute} but app.json does not list ${i.name} in implements: not registered (as in Apps-Engine)`);
    }
    for (const name of declared) {
      if (!ROOM_INTERFACES.some((i) => i.name === name)) this.log.info(`${name} is not a room interface: roomhooks does not call it`);
    }
    return out;
  }

  private method(name: string): Method | undefined {
    const m = (this.app as unknown as Record<string, unknown>)[name];
    return typeof m === 'function' ? (m.bind(this.app) as Method) : undefined;
  }

  private accessors(scope: EventScope, signal?: AbortSignal): { read: IRead; http: IHttp; persistence: IPersistence } {
    return {
      read: createRead(this.env, this.store.reader(), scope, this.unavailable),
      http: createHttp(this.httpDefaults, signal),
      persistence: this.store.persistence(),
    };
  }

  private modify(): IModify {
    return this.unavailable.proxy<IModify>(
      'modify',
      'IModify (creating messages, rooms, users) is not available in roomhooks room hooks: the app runs outside the chat server',
    );
  }

  /** Runs `fn`, turning Apps-Engine's `UserNotAllowedException` into the SDK's (a veto with its message). */
  private static async vetoing<T>(fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      if (err instanceof AeUserNotAllowedException) throw new UserNotAllowedException(err.message);
      throw err;
    }
  }

  /** The SDK app this runner registers (built on first use). */
  sdkApp(): AppBuilder {
    if (this.sdk) return this.sdk;
    const s = this.settingsFile;
    const o = this.options;
    const failurePolicy = o.failurePolicy ?? s.failurePolicy ?? 'ignore';
    const timeoutMs = o.timeoutMs ?? s.timeoutMs;
    const roomTypes: RoomType[] = s.roomTypes ?? [];
    const a = sdkApp({
      appId: this.info.id,
      version: this.info.version,
      priority: o.priority ?? s.priority ?? 0,
      failurePolicy,
      ...(timeoutMs !== undefined ? { timeoutMs } : {}),
      ...(o.token !== undefined ? { token: o.token } : {}),
      ...(o.instanceId !== undefined ? { instanceId: o.instanceId } : {}),
      roomTypes,
      logger: this.log.sdkLogger(),
      stopOnSignals: o.stopOnSignals ?? true,
    });
    const preventMessage = o.preventMessage ?? s.preventMessage ?? `${this.info.name} prevented this action.`;
    const has = (name: string) => this.interfaces.includes(name);
    const usersOf = (room: IRoom, ...more: (IUser | undefined)[]) => [room.creator, ...more].filter((u): u is IUser => u !== undefined);

    const preventHook = (execute: string, check: string) => async (room: Room, ctx: HookContext) => {
      const r = roomToAe(room);
      const acc = this.accessors({ room: r, users: usersOf(r) }, ctx.signal);
      const checker = this.method(check);
      if (checker && !(await checker(r, acc.read, acc.http))) return false;
      const prevented = await AppsEngineRunner.vetoing(() => this.method(execute)!(r, acc.read, acc.http, acc.persistence));
      return prevented ? prevent(preventMessage) : false;
    };
    if (has('IPreRoomCreatePrevent')) a.preRoomCreatePrevent(preventHook('executePreRoomCreatePrevent', 'checkPreRoomCreatePrevent'));
    if (has('IPreRoomDeletePrevent')) a.preRoomDeletePrevent(preventHook('executePreRoomDeletePrevent', 'checkPreRoomDeletePrevent'));
    if (has('IPreRoomUserJoined')) {
      a.preRoomUserJoined(async (joined, ctx) => {
        const c = joinedToAe(joined);
        const acc = this.accessors({ room: c.room, users: usersOf(c.room, c.joiningUser, c.inviter) }, ctx.signal);
        await AppsEngineRunner.vetoing(() => this.method('executePreRoomUserJoined')!(c, acc.read, acc.http, acc.persistence));
      });
    }
    if (has('IPreRoomUserLeave')) {
      a.preRoomUserLeave(async (leave, ctx) => {
        const c = leaveToAe(leave);
        const acc = this.accessors({ room: c.room, users: usersOf(c.room, c.leavingUser, c.removedBy) }, ctx.signal);
        await AppsEngineRunner.vetoing(() => this.method('executePreRoomUserLeave')!(c, acc.read, acc.http, acc.persistence));
      });
    }
    if (has('IPreRoomCreateExtend')) {
      a.preRoomCreateExtend(async (room, extend, ctx) => {
        const r = roomToAe(room);
        const acc = this.accessors({ room: r, users: usersOf(r) }, ctx.signal);
        const checker = this.method('checkPreRoomCreateExtend');
        if (checker && !(await checker(r, acc.read, acc.http))) return;
        await this.method('executePreRoomCreateExtend')!(r, new AeRoomExtender(r, extend), acc.read, acc.http, acc.persistence);
      });
    }
    if (has('IPreRoomCreateModify')) {
      a.preRoomCreateModify(async (room, _builder, ctx) => {
        const r = roomToAe(room);
        const acc = this.accessors({ room: r, users: usersOf(r) }, ctx.signal);
        const checker = this.method('checkPreRoomCreateModify');
        if (checker && !(await checker(r, acc.read, acc.http))) return; // unchanged
        const builder = new AeRoomBuilder(r);
        await this.method('executePreRoomCreateModify')!(r, builder, acc.read, acc.http, acc.persistence);
        return roomFromAe(builder.getRoom(), room);
      });
    }
    const postRoom = (execute: string, check: string, withModify: boolean) => async (room: Room) => {
      const r = roomToAe(room);
      const acc = this.accessors({ room: r, users: usersOf(r) });
      const checker = this.method(check);
      if (checker && !(await checker(r, acc.read, acc.http))) return;
      const args: unknown[] = [r, acc.read, acc.http, acc.persistence];
      if (withModify) args.push(this.modify());
      await this.method(execute)!(...args);
    };
    if (has('IPostRoomCreate')) a.postRoomCreate(postRoom('executePostRoomCreate', 'checkPostRoomCreate', true));
    if (has('IPostRoomDeleted')) a.postRoomDeleted(postRoom('executePostRoomDeleted', 'checkPostRoomDeleted', false));
    if (has('IPostRoomUserJoined')) {
      a.postRoomUserJoined(async (joined) => {
        const c = joinedToAe(joined);
        const acc = this.accessors({ room: c.room, users: usersOf(c.room, c.joiningUser, c.inviter) });
        await this.method('executePostRoomUserJoined')!(c, acc.read, acc.http, acc.persistence, this.modify());
      });
    }
    if (has('IPostRoomUserLeave')) {
      a.postRoomUserLeave(async (leave) => {
        const c = leaveToAe(leave);
        const acc = this.accessors({ room: c.room, users: usersOf(c.room, c.leavingUser, c.removedBy) });
        await this.method('executePostRoomUserLeave')!(c, acc.read, acc.http, acc.persistence, this.modify());
      });
    }
    this.sdk = a;
    return a;
  }

  /** Connects to the sidecar in the background; `registered()` waits for the registration. Throws when the app is not enabled. */
  start(target: RunTarget): this {
    this.announce().start(target);
    return this;
  }

  /** Runs until stopped (SIGTERM / SIGINT unless `stopOnSignals: false`); resolves after the drain and clean-up. */
  async run(target: RunTarget): Promise<void> {
    try {
      await this.announce().run(target);
    } finally {
      await this.close();
    }
  }

  private announce(): AppBuilder {
    if (!this.enabled) throw new Error(`${this.info.name}: onEnable returned false, so it is not registered`);
    const app = this.sdkApp();
    this.log.info(`registering ${this.info.name} ${this.info.version} as ${this.info.id}`, {
      interfaces: this.interfaces.join(','),
      priority: app.options.priority,
      failure_policy: app.options.failurePolicy,
    });
    const essentials = essentialsConfig(this.info);
    if (essentials) this.log.info(`app.json declares essentials: the sidecar config needs ${essentials.trim().replace(/\n/g, ' ')}`);
    return app;
  }

  /** Resolves with the instance id once the sidecar accepted the registration. */
  registered(): Promise<string> {
    return this.sdkApp().registered();
  }

  /** Stops (drains in-flight calls), runs `onDisable`, closes the store and removes the unpacked package. */
  async stop(): Promise<void> {
    await this.sdk?.stop();
    await this.close();
  }

  private closed = false;

  private async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    try {
      await this.app.onDisable(configurationModify(this.unavailable));
    } catch (err) {
      this.log.warn(`onDisable failed: ${err instanceof Error ? err.message : String(err)}`);
    }
    this.store.close();
    this.pkg.cleanup();
  }
}

/** The `IConfigurationExtend` given to `initialize`: settings and HTTP defaults work; the rest is accepted and ignored (logged once). */
function configurationExtend(settings: AppSettings, http: HttpDefaults, unavailable: Unavailable): IConfigurationExtend {
  const ignored = (what: string) => unavailable.ignoring<never>(`configuration.${what}`, 'roomhooks runs room hooks only; the app still loads without it');
  return {
    settings: { provideSetting: async (setting) => settings.provide(setting) },
    http: {
      provideDefaultHeader: (k, v) => void http.headers.set(k, v),
      provideDefaultHeaders: (h) => Object.entries(h).forEach(([k, v]) => http.headers.set(k, v)),
      provideDefaultParam: (k, v) => void http.params.set(k, v),
      provideDefaultParams: (p) => Object.entries(p).forEach(([k, v]) => http.params.set(k, v)),
      providePreRequestHandler: () => unavailable.ignored('configuration.http.providePreRequestHandler()', 'pre-request handlers are not run by roomhooks'),
      providePreResponseHandler: () => unavailable.ignored('configuration.http.providePreResponseHandler()', 'pre-response handlers are not run by roomhooks'),
      getDefaultHeaders: () => new Map(http.headers),
      getDefaultParams: () => new Map(http.params),
      getPreRequestHandlers: () => [],
      getPreResponseHandlers: () => [],
    },
    slashCommands: ignored('slashCommands'),
    api: ignored('api'),
    externalComponents: ignored('externalComponents'),
    scheduler: ignored('scheduler'),
    ui: ignored('ui'),
    videoConfProviders: ignored('videoConfProviders'),
    outboundCommunication: ignored('outboundCommunication'),
  };
}

/** The `IConfigurationModify` given to `onEnable` / `onDisable`: accepted and ignored (logged once). */
function configurationModify(unavailable: Unavailable): IConfigurationModify {
  const ignored = (what: string) => unavailable.ignoring<never>(`configurationModify.${what}`, 'roomhooks runs room hooks only');
  return { slashCommands: ignored('slashCommands'), scheduler: ignored('scheduler'), serverSettings: ignored('serverSettings') };
}
