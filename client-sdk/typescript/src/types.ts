/**
 * The domain types handlers and backends see: rooms, users and the contexts of room events, as
 * `roomhooks.v1` defines them, with custom fields as plain JSON instead of `google.protobuf.Struct`.
 *
 * The field names are the proto's in camelCase; a compile-time check at the end of this file
 * fails the build when a field is added to or removed from the proto without this file following.
 *
 * @module
 */

import type { Room__Output as WireRoom, Room as WireRoomIn } from './generated/roomhooks/v1/Room';
import type { User__Output as WireUser, User as WireUserIn } from './generated/roomhooks/v1/User';
import type { RoomUserJoined__Output as WireJoined, RoomUserJoined as WireJoinedIn } from './generated/roomhooks/v1/RoomUserJoined';
import type { RoomUserLeave__Output as WireLeave, RoomUserLeave as WireLeaveIn } from './generated/roomhooks/v1/RoomUserLeave';
import type { Struct__Output as WireStruct, Struct as WireStructIn } from './generated/google/protobuf/Struct';
import type { Value__Output as WireValue, Value as WireValueIn } from './generated/google/protobuf/Value';
import type { RoomType__Output } from './generated/roomhooks/v1/RoomType';
import type { HookInterface__Output } from './generated/roomhooks/v1/HookInterface';
import type { FailurePolicy__Output } from './generated/roomhooks/v1/FailurePolicy';

/** A JSON value, as custom fields hold them. */
export type JsonValue = null | boolean | number | string | JsonValue[] | { [key: string]: JsonValue };

/** A JSON object: the custom fields of a room or a user. */
export type JsonObject = { [key: string]: JsonValue };

/** The kind of a room (Apps-Engine's `c`, `p`, `d`, `l`). */
export type RoomType = RoomType__Output;

/** One of the ten room event interfaces, by its proto name (e.g. `HOOK_INTERFACE_PRE_ROOM_CREATE_PREVENT`). */
export type HookInterface = HookInterface__Output;

/** What the sidecar does when an app errors, times out or has no live instance. */
export type FailurePolicy = FailurePolicy__Output;

/** A point in time as the proto carries it (seconds since the epoch as a decimal string, and nanoseconds). */
export interface Timestamp {
  /** Seconds since 1970-01-01T00:00:00Z, as a decimal string (it is an int64). */
  seconds: string;
  /** Nanoseconds within the second. */
  nanos: number;
}

/** A chat user as the backend knows them (Apps-Engine's `IUser`, the fields roomhooks carries). */
export interface User {
  /** The backend's id of the user. */
  id: string;
  /** The user's login name. */
  username: string;
  /** The user's display name. */
  name: string;
  /** The user's roles (e.g. `admin`, `user`). */
  roles: string[];
  /** Backend- or app-defined fields. */
  customFields: JsonObject;
}

/** A room (Apps-Engine's `IRoom`). In PreRoomCreate the room is not stored yet, so `id` is empty. */
export interface Room {
  /** The backend's id of the room; empty before the room is stored. */
  id: string;
  /** The name shown to users. */
  displayName: string;
  /** The URL-safe name (slug). */
  slugifiedName: string;
  /** The kind of room. */
  type: RoomType;
  /** The user who created the room, when the backend sent one. */
  creator: User | null;
  /** Usernames of the room's members. */
  memberUsernames: string[];
  /** Whether new users join this room by default. */
  isDefault: boolean;
  /** Whether only privileged users may post. */
  isReadOnly: boolean;
  /** Whether system messages (joins, leaves) are shown. */
  displaySystemMessages: boolean;
  /** The room's description. */
  description: string;
  /** Backend- or app-defined fields. Extend apps may only add keys here. */
  customFields: JsonObject;
  /** The id of the parent room (discussions), or empty. */
  parentRoomId: string;
  /** The number of messages in the room, as a decimal string (it is a uint64). */
  messageCount: string;
  /** When the room was created, when known. */
  createdAt: Timestamp | null;
  /** When the room was last updated, when known. */
  updatedAt: Timestamp | null;
}

/** The context of a user joining a room (Apps-Engine's `IRoomUserJoinedContext`). */
export interface RoomUserJoined {
  /** The room being joined. */
  room: Room;
  /** The user who joins. */
  joiningUser: User;
  /** The user who added them, when they did not join by themselves. */
  inviter: User | null;
}

/** The context of a user leaving a room (Apps-Engine's `IRoomUserLeaveContext`). */
export interface RoomUserLeave {
  /** The room being left. */
  room: Room;
  /** The user who leaves. */
  leavingUser: User;
  /** The user who removed them, when they did not leave by themselves. */
  removedBy: User | null;
}

/** A user to send: every field optional (absent = empty). */
export type UserInput = Partial<User>;

/** A room to send: every field optional (absent = empty). */
export type RoomInput = Partial<Omit<Room, 'creator' | 'messageCount'>> & {
  /** The user who created the room. */
  creator?: UserInput | null;
  /** The number of messages in the room. */
  messageCount?: string | number;
};

/** A join context to send. */
export interface RoomUserJoinedInput {
  /** The room being joined (its `id` is required by the sidecar). */
  room?: RoomInput | null;
  /** The user who joins (required by the sidecar). */
  joiningUser?: UserInput | null;
  /** The user who added them. */
  inviter?: UserInput | null;
}

/** A leave context to send. */
export interface RoomUserLeaveInput {
  /** The room being left (its `id` is required by the sidecar). */
  room?: RoomInput | null;
  /** The user who leaves (required by the sidecar). */
  leavingUser?: UserInput | null;
  /** The user who removed them. */
  removedBy?: UserInput | null;
}

// === conversions (internal) ===

/** A `google.protobuf.Value` as JSON. @internal */
export function valueFromWire(value: WireValue | null | undefined): JsonValue {
  if (!value) return null;
  switch (value.kind) {
    case 'numberValue':
      return value.numberValue ?? 0;
    case 'stringValue':
      return value.stringValue ?? '';
    case 'boolValue':
      return value.boolValue ?? false;
    case 'structValue':
      return structFromWire(value.structValue);
    case 'listValue':
      return (value.listValue?.values ?? []).map(valueFromWire);
    default:
      return null;
  }
}

/** A `google.protobuf.Struct` as a JSON object. @internal */
export function structFromWire(struct: WireStruct | null | undefined): JsonObject {
  const out: JsonObject = {};
  if (!struct) return out;
  for (const [key, value] of Object.entries(struct.fields)) out[key] = valueFromWire(value);
  return out;
}

/** JSON as a `google.protobuf.Value`; throws a `TypeError` naming the path for what JSON cannot hold. @internal */
export function valueToWire(value: JsonValue, path: string): WireValueIn {
  if (value === null) return { nullValue: 'NULL_VALUE' };
  switch (typeof value) {
    case 'number':
      if (!Number.isFinite(value)) throw new TypeError(`${path} is ${value}: custom fields hold finite numbers only`);
      return { numberValue: value };
    case 'string':
      return { stringValue: value };
    case 'boolean':
      return { boolValue: value };
    case 'object':
      if (Array.isArray(value)) return { listValue: { values: value.map((v, i) => valueToWire(v, `${path}[${i}]`)) } };
      return { structValue: structToWire(value, path) };
    default:
      throw new TypeError(`${path} is a ${typeof value}: custom fields hold JSON values only`);
  }
}

/** A JSON object as a `google.protobuf.Struct`. @internal */
export function structToWire(object: JsonObject, path: string): WireStructIn {
  const fields: Record<string, WireValueIn> = {};
  for (const [key, value] of Object.entries(object)) {
    if (value === undefined) continue;
    fields[key] = valueToWire(value, `${path}.${key}`);
  }
  return { fields };
}

/** A wire user as a domain user. @internal */
export function userFromWire(user: WireUser): User {
  return {
    id: user.id,
    username: user.username,
    name: user.name,
    roles: [...user.roles],
    customFields: structFromWire(user.customFields),
  };
}

/** An empty user (what an absent required user decodes to). @internal */
export function emptyUser(): User {
  return { id: '', username: '', name: '', roles: [], customFields: {} };
}

/** An empty room. @internal */
export function emptyRoom(): Room {
  return {
    id: '',
    displayName: '',
    slugifiedName: '',
    type: 'ROOM_TYPE_UNSPECIFIED',
    creator: null,
    memberUsernames: [],
    isDefault: false,
    isReadOnly: false,
    displaySystemMessages: false,
    description: '',
    customFields: {},
    parentRoomId: '',
    messageCount: '0',
    createdAt: null,
    updatedAt: null,
  };
}

/** A wire room as a domain room. @internal */
export function roomFromWire(room: WireRoom | null | undefined): Room {
  if (!room) return emptyRoom();
  return {
    id: room.id,
    displayName: room.displayName,
    slugifiedName: room.slugifiedName,
    type: room.type,
    creator: room.creator ? userFromWire(room.creator) : null,
    memberUsernames: [...room.memberUsernames],
    isDefault: room.isDefault,
    isReadOnly: room.isReadOnly,
    displaySystemMessages: room.displaySystemMessages,
    description: room.description,
    customFields: structFromWire(room.customFields),
    parentRoomId: room.parentRoomId,
    messageCount: room.messageCount,
    createdAt: room.createdAt ? { seconds: room.createdAt.seconds, nanos: room.createdAt.nanos } : null,
    updatedAt: room.updatedAt ? { seconds: room.updatedAt.seconds, nanos: room.updatedAt.nanos } : null,
  };
}

/** A wire join context as a domain one. @internal */
export function joinedFromWire(joined: WireJoined | null | undefined): RoomUserJoined {
  return {
    room: roomFromWire(joined?.room),
    joiningUser: joined?.joiningUser ? userFromWire(joined.joiningUser) : emptyUser(),
    inviter: joined?.inviter ? userFromWire(joined.inviter) : null,
  };
}

/** A wire leave context as a domain one. @internal */
export function leaveFromWire(leave: WireLeave | null | undefined): RoomUserLeave {
  return {
    room: roomFromWire(leave?.room),
    leavingUser: leave?.leavingUser ? userFromWire(leave.leavingUser) : emptyUser(),
    removedBy: leave?.removedBy ? userFromWire(leave.removedBy) : null,
  };
}

/** A user to send, in wire form. @internal */
export function userToWire(user: UserInput, path: string): WireUserIn {
  const { customFields, ...rest } = user;
  return { ...rest, customFields: customFields ? structToWire(customFields, `${path}.customFields`) : null };
}

/** A room to send, in wire form. @internal */
export function roomToWire(room: RoomInput, path: string): WireRoomIn {
  const { customFields, creator, ...rest } = room;
  return {
    ...rest,
    creator: creator ? userToWire(creator, `${path}.creator`) : null,
    customFields: customFields ? structToWire(customFields, `${path}.customFields`) : null,
  };
}

/** A join context to send, in wire form. @internal */
export function joinedToWire(joined: RoomUserJoinedInput): WireJoinedIn {
  return {
    room: joined.room ? roomToWire(joined.room, 'context.room') : null,
    joiningUser: joined.joiningUser ? userToWire(joined.joiningUser, 'context.joiningUser') : null,
    inviter: joined.inviter ? userToWire(joined.inviter, 'context.inviter') : null,
  };
}

/** A leave context to send, in wire form. @internal */
export function leaveToWire(leave: RoomUserLeaveInput): WireLeaveIn {
  return {
    room: leave.room ? roomToWire(leave.room, 'context.room') : null,
    leavingUser: leave.leavingUser ? userToWire(leave.leavingUser, 'context.leavingUser') : null,
    removedBy: leave.removedBy ? userToWire(leave.removedBy, 'context.removedBy') : null,
  };
}

// === the compile-time check that these types follow the proto ===

type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
type Check<T extends true> = T;
/** Fails to compile when a proto field is added or removed without this file following. @internal */
export type ProtoFieldsMatch = [
  Check<Same<keyof Room, keyof WireRoom>>,
  Check<Same<keyof User, keyof WireUser>>,
  Check<Same<keyof RoomUserJoined, keyof WireJoined>>,
  Check<Same<keyof RoomUserLeave, keyof WireLeave>>,
];
