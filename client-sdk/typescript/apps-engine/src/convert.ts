/**
 * Rooms and users between roomhooks' shapes (the SDK's `Room`, `User`) and Apps-Engine's (`IRoom`,
 * `IUser`): type `c` / `p` / `d` / `l`, `usernames`, dates as `Date`, `parentRoom`, … Converting a
 * room to `IRoom` and back gives the same room for every field the proto has (a timestamp or a
 * message count the app did not change keeps its exact wire value).
 *
 * @module
 */

import type { IRoom } from '@rocket.chat/apps-engine/definition/rooms';
import { RoomType as AeRoomType } from '@rocket.chat/apps-engine/definition/rooms';
import type { IRoomUserJoinedContext, IRoomUserLeaveContext } from '@rocket.chat/apps-engine/definition/rooms';
import type { IUser } from '@rocket.chat/apps-engine/definition/users';
import { UserStatusConnection, UserType } from '@rocket.chat/apps-engine/definition/users';
import type { JsonObject, Room, RoomType, RoomUserJoined, RoomUserLeave, Timestamp, User } from 'roomhooks-sdk';

const TO_AE: Record<RoomType, AeRoomType | undefined> = {
  ROOM_TYPE_UNSPECIFIED: undefined,
  ROOM_TYPE_CHANNEL: AeRoomType.CHANNEL,
  ROOM_TYPE_PRIVATE_GROUP: AeRoomType.PRIVATE_GROUP,
  ROOM_TYPE_DIRECT_MESSAGE: AeRoomType.DIRECT_MESSAGE,
  ROOM_TYPE_LIVECHAT: AeRoomType.LIVE_CHAT,
};

/** Apps-Engine's room type (`c`, `p`, `d`, `l`) for a roomhooks one. */
export function roomTypeToAe(type: RoomType): AeRoomType | undefined {
  return TO_AE[type];
}

/** roomhooks' room type for an Apps-Engine one; anything else is `ROOM_TYPE_UNSPECIFIED` (the sidecar rejects it). */
export function roomTypeFromAe(type: string | undefined): RoomType {
  switch (type) {
    case AeRoomType.CHANNEL:
      return 'ROOM_TYPE_CHANNEL';
    case AeRoomType.PRIVATE_GROUP:
      return 'ROOM_TYPE_PRIVATE_GROUP';
    case AeRoomType.DIRECT_MESSAGE:
      return 'ROOM_TYPE_DIRECT_MESSAGE';
    case AeRoomType.LIVE_CHAT:
      return 'ROOM_TYPE_LIVECHAT';
    default:
      return 'ROOM_TYPE_UNSPECIFIED';
  }
}

function toDate(ts: Timestamp | null): Date | undefined {
  if (!ts) return undefined;
  return new Date(Number(ts.seconds) * 1000 + Math.floor(ts.nanos / 1e6));
}

function fromDate(date: unknown, original: Timestamp | null): Timestamp | null {
  if (!(date instanceof Date) || Number.isNaN(date.getTime())) return null;
  const ms = date.getTime();
  if (original && toDate(original)?.getTime() === ms) return { ...original };
  const seconds = Math.floor(ms / 1000);
  return { seconds: String(seconds), nanos: (ms - seconds * 1000) * 1e6 };
}

/** JSON-only copy of app data (drops functions and `undefined`, dates become strings). */
export function toJson(value: unknown): JsonObject {
  if (value === undefined || value === null || typeof value !== 'object') return {};
  return JSON.parse(JSON.stringify(value)) as JsonObject;
}

/**
 * An Apps-Engine user for a roomhooks one. roomhooks carries `id`, `username`, `name`, `roles` and
 * `customFields`; the rest are fixed: `emails: []`, `type: 'user'`, `isEnabled: true`,
 * `status: 'offline'`, `statusConnection: 'undefined'`, `utcOffset: 0`, dates at the epoch.
 */
export function userToAe(user: User): IUser {
  const epoch = new Date(0);
  return {
    id: user.id,
    username: user.username,
    name: user.name,
    roles: [...user.roles],
    customFields: structuredClone(user.customFields),
    emails: [],
    type: UserType.USER,
    isEnabled: true,
    status: 'offline',
    statusConnection: UserStatusConnection.UNDEFINED,
    utcOffset: 0,
    createdAt: epoch,
    updatedAt: epoch,
    lastLoginAt: epoch,
  };
}

/** A roomhooks user for an Apps-Engine one (the fields roomhooks carries). */
export function userFromAe(user: Partial<IUser>): User {
  return {
    id: user.id ?? '',
    username: user.username ?? '',
    name: user.name ?? '',
    roles: Array.isArray(user.roles) ? user.roles.map(String) : [],
    customFields: toJson(user.customFields),
  };
}

/** An Apps-Engine room for a roomhooks one. */
export function roomToAe(room: Room): IRoom {
  const out: IRoom = {
    id: room.id,
    displayName: room.displayName,
    slugifiedName: room.slugifiedName,
    type: roomTypeToAe(room.type) as AeRoomType,
    // IRoom requires a creator; roomhooks' PreRoomCreate may carry none (then it is undefined).
    creator: (room.creator ? userToAe(room.creator) : undefined) as IUser,
    usernames: [...room.memberUsernames],
    isDefault: room.isDefault,
    isReadOnly: room.isReadOnly,
    displaySystemMessages: room.displaySystemMessages,
    messageCount: Number(room.messageCount),
    description: room.description,
    customFields: structuredClone(room.customFields),
  };
  const createdAt = toDate(room.createdAt);
  const updatedAt = toDate(room.updatedAt);
  if (createdAt) out.createdAt = createdAt;
  if (updatedAt) {
    out.updatedAt = updatedAt;
    out.lastModifiedAt = new Date(updatedAt.getTime());
  }
  if (room.parentRoomId !== '') out.parentRoom = { id: room.parentRoomId } as IRoom;
  return out;
}

/**
 * A roomhooks room for an Apps-Engine one; `original` (the room the app was given) keeps the exact
 * wire values of timestamps and the message count the app did not change.
 */
export function roomFromAe(room: Partial<IRoom>, original: Room): Room {
  const count = typeof room.messageCount === 'number' && Number.isFinite(room.messageCount) ? room.messageCount : 0;
  return {
    id: room.id ?? '',
    displayName: room.displayName ?? '',
    slugifiedName: room.slugifiedName ?? '',
    type: roomTypeFromAe(room.type),
    creator: room.creator ? userFromAe(room.creator) : null,
    memberUsernames: Array.isArray(room.usernames) ? [...new Set(room.usernames.map(String))] : [],
    isDefault: room.isDefault === true,
    isReadOnly: room.isReadOnly === true,
    displaySystemMessages: room.displaySystemMessages === true,
    description: room.description ?? '',
    customFields: toJson(room.customFields),
    parentRoomId: room.parentRoom?.id ?? '',
    messageCount: Number(original.messageCount) === count ? original.messageCount : String(Math.max(0, Math.trunc(count))),
    createdAt: fromDate(room.createdAt, original.createdAt),
    updatedAt: fromDate(room.updatedAt ?? room.lastModifiedAt, original.updatedAt),
  };
}

/** Apps-Engine's join context for a roomhooks one. */
export function joinedToAe(joined: RoomUserJoined): IRoomUserJoinedContext {
  const out: IRoomUserJoinedContext = { room: roomToAe(joined.room), joiningUser: userToAe(joined.joiningUser) };
  if (joined.inviter) out.inviter = userToAe(joined.inviter);
  return out;
}

/** Apps-Engine's leave context for a roomhooks one. */
export function leaveToAe(leave: RoomUserLeave): IRoomUserLeaveContext {
  const out: IRoomUserLeaveContext = { room: roomToAe(leave.room), leavingUser: userToAe(leave.leavingUser) };
  if (leave.removedBy) out.removedBy = userToAe(leave.removedBy);
  return out;
}
