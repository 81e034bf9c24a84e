/**
 * The settings file (`--settings settings.json`) and the environment reader built from it: the
 * app's settings (declared by the app with `provideSetting`, valued by the file) and the server
 * settings the file lists.
 *
 * @module
 */

import * as fs from 'node:fs';
import type { IEnvironmentRead, IServerSettingRead, ISettingRead } from '@rocket.chat/apps-engine/definition/accessors';
import type { ISetting } from '@rocket.chat/apps-engine/definition/settings';
import { SettingType } from '@rocket.chat/apps-engine/definition/settings';
import type { JsonValue, RoomType } from 'roomhooks-sdk';
import { AppLoadError } from './errors';
import type { Unavailable } from './unavailable';

/** What `--settings settings.json` holds; every key is optional. */
export interface SettingsFile {
  /** Apps run in ascending priority (default 0); `--priority` overrides it. */
  priority?: number;
  /** `ignore` (default) or `fail`; `--failure-policy` overrides it. */
  failurePolicy?: 'ignore' | 'fail';
  /** The sidecar's timeout per call, in ms (default: the sidecar's, 1 s); `--timeout-ms` overrides it. */
  timeoutMs?: number;
  /** The room types the app is called for (default all), e.g. `["ROOM_TYPE_CHANNEL"]`. */
  roomTypes?: RoomType[];
  /** The message shown when a Prevent handler returns `true` (default `"<app name> prevented this action."`). */
  preventMessage?: string;
  /** Values of the app's settings, by setting id (what an admin sets in Rocket.Chat's app page). */
  settings?: Record<string, JsonValue>;
  /** Server settings the app may read through `getServerSettings()`, by id (e.g. `"Site_Url"`). */
  serverSettings?: Record<string, JsonValue>;
}

/** Reads and checks a settings file; throws an `AppLoadError` naming the file and the bad key. */
export function readSettingsFile(file: string): SettingsFile {
  let parsed: unknown;
  try {
    parsed = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (err) {
    throw new AppLoadError(`cannot read the settings file ${file}: ${err instanceof Error ? err.message : String(err)}`);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw new AppLoadError(`the settings file ${file} must hold a JSON object`);
  }
  const known = ['priority', 'failurePolicy', 'timeoutMs', 'roomTypes', 'preventMessage', 'settings', 'serverSettings'];
  for (const key of Object.keys(parsed)) {
    if (!known.includes(key)) throw new AppLoadError(`the settings file ${file} has an unknown key "${key}" (known: ${known.join(', ')})`);
  }
  const s = parsed as SettingsFile;
  if (s.failurePolicy !== undefined && s.failurePolicy !== 'ignore' && s.failurePolicy !== 'fail') {
    throw new AppLoadError(`the settings file ${file}: failurePolicy is ${JSON.stringify(s.failurePolicy)}, expected "ignore" or "fail"`);
  }
  for (const key of ['priority', 'timeoutMs'] as const) {
    if (s[key] !== undefined && typeof s[key] !== 'number') throw new AppLoadError(`the settings file ${file}: ${key} must be a number`);
  }
  return s;
}

/** The app's settings: declared by `provideSetting` (or `app.json` `settings`), valued by the settings file. */
export class AppSettings {
  private readonly declared = new Map<string, ISetting>();

  /** Settings valued by `values` (from the settings file). */
  constructor(private readonly values: Record<string, JsonValue> = {}) {}

  /** Declares a setting (what `configuration.settings.provideSetting` does). */
  provide(setting: ISetting): void {
    if (!setting || typeof setting.id !== 'string' || setting.id === '') throw new Error('provideSetting: the setting needs an id');
    this.declared.set(setting.id, { ...setting });
  }

  /** A declared setting with its value filled in, or undefined. */
  get(id: string): ISetting | undefined {
    const setting = this.declared.get(id);
    if (!setting) return undefined;
    const value = Object.prototype.hasOwnProperty.call(this.values, id) ? this.values[id] : setting.value;
    return { ...setting, value };
  }

  /** The ids of the declared settings. */
  ids(): string[] {
    return [...this.declared.keys()];
  }

  /** Apps-Engine's `ISettingRead`. */
  reader(): ISettingRead {
    return {
      getById: async (id) => {
        const setting = this.get(id);
        if (!setting) throw new Error(`the app has no setting "${id}" (declare it with configuration.settings.provideSetting)`);
        return setting;
      },
      getValueById: async (id) => {
        const setting = this.get(id);
        if (!setting) throw new Error(`the app has no setting "${id}" (declare it with configuration.settings.provideSetting)`);
        return setting.value ?? setting.packageValue;
      },
    };
  }
}

/** Apps-Engine's `IServerSettingRead` over the settings file's `serverSettings`. */
export function serverSettingsReader(values: Record<string, JsonValue>, unavailable: Unavailable): IServerSettingRead {
  const has = (id: string) => Object.prototype.hasOwnProperty.call(values, id);
  const setting = (id: string): ISetting => ({
    id,
    type: typeof values[id] === 'boolean' ? SettingType.BOOLEAN : typeof values[id] === 'number' ? SettingType.NUMBER : SettingType.STRING,
    packageValue: values[id],
    value: values[id],
    required: false,
    public: true,
    i18nLabel: id,
  });
  const missing = (method: string, id: string): never =>
    unavailable.fail(
      `read.getEnvironmentReader().getServerSettings().${method}()`,
      `the server setting "${id}" is not in the runner's settings file: add it under "serverSettings"`,
    );
  return {
    getOneById: async (id) => (has(id) ? setting(id) : missing('getOneById', id)),
    getValueById: async (id) => (has(id) ? values[id] : missing('getValueById', id)),
    getAll: async () => Object.keys(values).map(setting)[Symbol.iterator](),
    isReadableById: async (id) => has(id),
  };
}

/** Apps-Engine's `IEnvironmentRead`: the app's settings, the server settings of the settings file; no environment variables. */
export function environmentReader(settings: AppSettings, file: SettingsFile, unavailable: Unavailable): IEnvironmentRead {
  const server = serverSettingsReader(file.serverSettings ?? {}, unavailable);
  return {
    getSettings: () => settings.reader(),
    getServerSettings: () => server,
    getEnvironmentVariables: () =>
      unavailable.fail(
        'read.getEnvironmentReader().getEnvironmentVariables()',
        'the runner does not expose its environment to apps; put the value in the settings file ("settings" or "serverSettings")',
      ),
  };
}
