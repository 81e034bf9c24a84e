/**
 * roomhooks-apps-engine: run an unmodified Rocket.Chat Apps-Engine app's room handlers on a
 * roomhooks sidecar.
 *
 * ```ts
 * import { AppsEngineRunner } from 'roomhooks-apps-engine';
 * const runner = await AppsEngineRunner.open('dist/my-app_1.0.0.zip', { dataDir: 'data', priority: 10 });
 * await runner.run('http://127.0.0.1:50051');
 * ```
 *
 * @packageDocumentation
 */

export { AppsEngineRunner, essentialsConfig, essentialHookName } from './runner';
export type { RunnerOptions } from './runner';
export { openPackage, loadAppClass, ENGINE_VERSION } from './loader';
export type { AppPackage, AppClass } from './loader';
export { NotAvailableInRoomHooks, AppLoadError } from './errors';
export { readSettingsFile } from './settings';
export type { SettingsFile } from './settings';
export { RunnerLog, stderrSink } from './log';
export type { LogRecord, LogLevel, LogSink } from './log';
export { roomToAe, roomFromAe, userToAe, userFromAe, joinedToAe, leaveToAe, roomTypeToAe, roomTypeFromAe } from './convert';
export { AeRoomBuilder, AeRoomExtender } from './builders';
export { AppStore } from './persistence';
export { createHttp, DEFAULT_HTTP_TIMEOUT_MS } from './http';
export type { HttpDefaults } from './http';
