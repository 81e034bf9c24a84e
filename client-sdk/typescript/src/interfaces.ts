/**
 * The ten room event interfaces, named as Apps-Engine names them, and what a handler knows about
 * the call it answers. An app implements only the ones it needs: registration follows from the
 * `execute*` methods it has.
 *
 * Where Apps-Engine passes `(read, http, persistence, modify)`, roomhooks passes one context:
 * apps are separate processes and reach their own services directly.
 *
 * @module
 */

import type { PreventAnswer, RoomBuilder, RoomExtender } from './answers';
import type { HookInterface, Room, RoomUserJoined, RoomUserLeave } from './types';

/** The context of a Pre hook call. */
export interface HookContext {
  /** The sidecar's id of this call (a uint64, as a decimal string). */
  readonly callId: string;
  /** The hook being called. */
  readonly hook: HookInterface;
  /** The backend's request id, for logs. */
  readonly requestId: string;
  /** True when the action will not happen: do not cause side effects. */
  readonly dryRun: boolean;
  /** The backend's W3C trace context (`traceparent`), or empty. */
  readonly traceparent: string;
  /** When the sidecar stops waiting for the answer (milliseconds since the epoch, `Date.now()` clock). */
  readonly deadline: number;
  /** Fires when the sidecar sends `CancelCall` or the deadline passes: pass it to `fetch` and friends. */
  readonly signal: AbortSignal;
  /** This app's id. */
  readonly appId: string;
  /** This instance's id. */
  readonly instanceId: string;
}

/** The context of a post event. */
export interface PostContext {
  /** The event's id: events are delivered at least once, so use it to skip duplicates. */
  readonly eventId: string;
  /** The hook being notified. */
  readonly hook: HookInterface;
  /** 1 for the first delivery, 2, 3, ... on redelivery. */
  readonly attempt: number;
  /** This app's id. */
  readonly appId: string;
  /** This instance's id. */
  readonly instanceId: string;
}

/** A veto on room creation. */
export interface IPreRoomCreatePrevent {
  /** Optional filter: `false` skips the handler (no objection). */
  checkPreRoomCreatePrevent?(room: Room, ctx: HookContext): Promise<boolean> | boolean;
  /** `true` or `prevent(message)` stops the room from being created; `false` allows it. */
  executePreRoomCreatePrevent(room: Room, ctx: HookContext): Promise<PreventAnswer>;
}

/** Additions to a room being created (custom fields and members). */
export interface IPreRoomCreateExtend {
  /** Optional filter: `false` skips the handler (no additions). */
  checkPreRoomCreateExtend?(room: Room, ctx: HookContext): Promise<boolean> | boolean;
  /** Adds through `extend`; what it returns is ignored (Apps-Engine returns the room). */
  executePreRoomCreateExtend(room: Room, extend: RoomExtender, ctx: HookContext): Promise<unknown>;
}

/** Changes to a room being created, chained after the apps before this one. */
export interface IPreRoomCreateModify {
  /** Optional filter: `false` skips the handler (room unchanged). */
  checkPreRoomCreateModify?(room: Room, ctx: HookContext): Promise<boolean> | boolean;
  /** Returns the changed room, or changes `builder` and returns nothing; its `id` must not change. */
  executePreRoomCreateModify(room: Room, builder: RoomBuilder, ctx: HookContext): Promise<Room | void>;
}

/** A notification that a room was created. */
export interface IPostRoomCreate {
  /** Optional filter: `false` skips the handler (the event is still acknowledged). */
  checkPostRoomCreate?(room: Room, ctx: PostContext): Promise<boolean> | boolean;
  /** Resolving acknowledges the event; throwing leaves it unacknowledged (redelivered with `attempt + 1`). */
  executePostRoomCreate(room: Room, ctx: PostContext): Promise<void>;
}

/** A veto on room deletion. */
export interface IPreRoomDeletePrevent {
  /** Optional filter: `false` skips the handler (no objection). */
  checkPreRoomDeletePrevent?(room: Room, ctx: HookContext): Promise<boolean> | boolean;
  /** `true` or `prevent(message)` stops the room from being deleted; `false` allows it. */
  executePreRoomDeletePrevent(room: Room, ctx: HookContext): Promise<PreventAnswer>;
}

/** A notification that a room was deleted. */
export interface IPostRoomDeleted {
  /** Optional filter: `false` skips the handler (the event is still acknowledged). */
  checkPostRoomDeleted?(room: Room, ctx: PostContext): Promise<boolean> | boolean;
  /** Resolving acknowledges the event; throwing leaves it unacknowledged (redelivered). */
  executePostRoomDeleted(room: Room, ctx: PostContext): Promise<void>;
}

/** A veto on a user joining a room. */
export interface IPreRoomUserJoined {
  /** Throw `UserNotAllowedException(message)` to stop the join; resolving allows it. */
  executePreRoomUserJoined(context: RoomUserJoined, ctx: HookContext): Promise<void>;
}

/** A notification that a user joined a room. */
export interface IPostRoomUserJoined {
  /** Resolving acknowledges the event; throwing leaves it unacknowledged (redelivered). */
  executePostRoomUserJoined(context: RoomUserJoined, ctx: PostContext): Promise<void>;
}

/** A veto on a user leaving a room. */
export interface IPreRoomUserLeave {
  /** Throw `UserNotAllowedException(message)` to stop the leave; resolving allows it. */
  executePreRoomUserLeave(context: RoomUserLeave, ctx: HookContext): Promise<void>;
}

/** A notification that a user left a room. */
export interface IPostRoomUserLeave {
  /** Resolving acknowledges the event; throwing leaves it unacknowledged (redelivered). */
  executePostRoomUserLeave(context: RoomUserLeave, ctx: PostContext): Promise<void>;
}

/** Every handler an app may have; an app has any subset. @internal */
export type AnyHandlers = Partial<
  IPreRoomCreatePrevent &
    IPreRoomCreateExtend &
    IPreRoomCreateModify &
    IPostRoomCreate &
    IPreRoomDeletePrevent &
    IPostRoomDeleted &
    IPreRoomUserJoined &
    IPostRoomUserJoined &
    IPreRoomUserLeave &
    IPostRoomUserLeave
>;

/** The interfaces in registration order, with the method that implements each. @internal */
export const INTERFACES: ReadonlyArray<readonly [HookInterface, keyof AnyHandlers]> = [
  ['HOOK_INTERFACE_PRE_ROOM_CREATE_PREVENT', 'executePreRoomCreatePrevent'],
  ['HOOK_INTERFACE_PRE_ROOM_CREATE_EXTEND', 'executePreRoomCreateExtend'],
  ['HOOK_INTERFACE_PRE_ROOM_CREATE_MODIFY', 'executePreRoomCreateModify'],
  ['HOOK_INTERFACE_POST_ROOM_CREATE', 'executePostRoomCreate'],
  ['HOOK_INTERFACE_PRE_ROOM_DELETE_PREVENT', 'executePreRoomDeletePrevent'],
  ['HOOK_INTERFACE_POST_ROOM_DELETED', 'executePostRoomDeleted'],
  ['HOOK_INTERFACE_PRE_ROOM_USER_JOINED', 'executePreRoomUserJoined'],
  ['HOOK_INTERFACE_POST_ROOM_USER_JOINED', 'executePostRoomUserJoined'],
  ['HOOK_INTERFACE_PRE_ROOM_USER_LEAVE', 'executePreRoomUserLeave'],
  ['HOOK_INTERFACE_POST_ROOM_USER_LEAVE', 'executePostRoomUserLeave'],
];
