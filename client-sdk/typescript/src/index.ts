/**
 * roomhooks-sdk: write roomhooks apps in TypeScript with Apps-Engine's room interfaces, and call
 * the roomhooks sidecar from a Node.js chat backend.
 *
 * ```ts
 * import { RoomHooksApp, IPreRoomCreatePrevent, Room, HookContext, prevent } from 'roomhooks-sdk';
 *
 * class NoSpam extends RoomHooksApp implements IPreRoomCreatePrevent {
 *   async executePreRoomCreatePrevent(room: Room, ctx: HookContext) {
 *     return room.displayName.includes('spam') ? prevent('No spam rooms.') : false;
 *   }
 * }
 * await new NoSpam({ appId: 'no-spam' }).run('http://127.0.0.1:50051');
 * ```
 *
 * @packageDocumentation
 */

export { RoomHooksApp, AppBuilder, app } from './app';
export type { AppOptions, ResolvedAppOptions, RunTarget } from './app';
export { Prevent, prevent, Warn, warn, RoomExtender, RoomBuilder } from './answers';
export type { PreventAnswer } from './answers';
export { Connection } from './connection';
export type { ConnectionOptions, TlsOptions } from './connection';
export { AppsEngineException, UserNotAllowedException, SdkError, InvalidEndpointError, RefusedError } from './errors';
export type {
  HookContext,
  PostContext,
  IPreRoomCreatePrevent,
  IPreRoomCreateExtend,
  IPreRoomCreateModify,
  IPostRoomCreate,
  IPreRoomDeletePrevent,
  IPostRoomDeleted,
  IPreRoomUserJoined,
  IPostRoomUserJoined,
  IPreRoomUserLeave,
  IPostRoomUserLeave,
} from './interfaces';
export { RoomHooksClient, userMessage } from './backend';
export type {
  RoomHooksClientOptions,
  CallOptions,
  RoomHooksError,
  AppOutcome,
  Prevention,
  PreventResponse,
  Warning,
  PostEventResponse,
  PreRoomCreateResponse,
  PreRoomCreateRequest,
  PreRoomDeleteRequest,
  PreRoomUserJoinRequest,
  PreRoomUserLeaveRequest,
  PostRoomCreateRequest,
  PostRoomDeletedRequest,
  PostRoomUserJoinedRequest,
  PostRoomUserLeaveRequest,
  PostEventsItem,
} from './backend';
export { Backoff } from './backoff';
export { stderrLogger, silentLogger } from './logger';
export type { Logger, LogFields } from './logger';
export type {
  JsonValue,
  JsonObject,
  RoomType,
  HookInterface,
  FailurePolicy,
  Timestamp,
  User,
  Room,
  RoomUserJoined,
  RoomUserLeave,
  UserInput,
  RoomInput,
  RoomUserJoinedInput,
  RoomUserLeaveInput,
} from './types';
export { createRoom, createUser, createHookContext, createPostContext } from './testing';
