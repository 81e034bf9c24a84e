/**
 * Apps-Engine's `IRoomExtender` and `IRoomBuilder`, over `IRoom`. The extender's additions go
 * through the SDK's extender (so they become a `RoomExtension`, keys checked as in Apps-Engine);
 * the builder's room becomes the `RoomModification`.
 *
 * @module
 */

import type { IRoomBuilder, IRoomExtender } from '@rocket.chat/apps-engine/definition/accessors';
import { RocketChatAssociationModel } from '@rocket.chat/apps-engine/definition/metadata';
import type { IRoom, RoomType } from '@rocket.chat/apps-engine/definition/rooms';
import type { IUser } from '@rocket.chat/apps-engine/definition/users';
import type { JsonValue, RoomExtender } from 'roomhooks-sdk';

/** A copy of a room (dates stay dates). */
function copyRoom(room: IRoom): IRoom {
  return structuredClone(room);
}

/** JSON form of a custom field's value. */
function jsonValue(value: unknown): JsonValue {
  return value === undefined ? null : (JSON.parse(JSON.stringify(value)) as JsonValue);
}

/** `IRoomExtender` for one Extend call: `addCustomField` throws on a key the room has or one with a `.`. */
export class AeRoomExtender implements IRoomExtender {
  /** What the extender extends. */
  kind: RocketChatAssociationModel.ROOM = RocketChatAssociationModel.ROOM;
  private readonly members: IUser[] = [];

  /** An extender of `room`, adding through the SDK's `extend`. */
  constructor(
    private readonly room: IRoom,
    private readonly extend: RoomExtender,
  ) {}

  /** Adds a custom field; throws when the room has the key, it was added already, or it contains a `.`. */
  addCustomField(key: string, value: unknown): IRoomExtender {
    this.extend.addCustomField(key, jsonValue(value));
    return this;
  }

  /** Adds a member (kept: roomhooks appends it to the room's members). */
  addMember(user: IUser): IRoomExtender {
    if (!user || typeof user.username !== 'string' || user.username === '') throw new Error('addMember: the user needs a username');
    this.extend.addMember(user.username);
    if (!this.members.some((m) => m.username === user.username)) this.members.push(user);
    return this;
  }

  /** The users added so far. */
  getMembersBeingAdded(): IUser[] {
    return [...this.members];
  }

  /** The usernames added so far. */
  getUsernamesOfMembersBeingAdded(): string[] {
    return this.members.map((m) => m.username);
  }

  /** A copy of the room as the app got it. */
  getRoom(): IRoom {
    return copyRoom(this.room);
  }
}

/** `IRoomBuilder` for one Modify call; its room (`getRoom()`) is the answer. */
export class AeRoomBuilder implements IRoomBuilder {
  /** What the builder builds. */
  kind: RocketChatAssociationModel.ROOM | RocketChatAssociationModel.DISCUSSION = RocketChatAssociationModel.ROOM;
  private readonly room: IRoom;

  /** A builder starting from a copy of `room`. */
  constructor(room: IRoom) {
    this.room = copyRoom(room);
  }

  /** Sets several fields at once. */
  setData(data: Partial<IRoom>): IRoomBuilder {
    // An `id` given here is kept too: the sidecar refuses a changed id and the chain goes on.
    Object.assign(this.room, structuredClone(data));
    return this;
  }

  /** Sets the name shown to users. */
  setDisplayName(name: string): IRoomBuilder {
    this.room.displayName = name;
    return this;
  }

  /** The name shown to users. */
  getDisplayName(): string {
    return this.room.displayName ?? '';
  }

  /** Sets the URL-safe name. */
  setSlugifiedName(name: string): IRoomBuilder {
    this.room.slugifiedName = name;
    return this;
  }

  /** The URL-safe name. */
  getSlugifiedName(): string {
    return this.room.slugifiedName;
  }

  /** Sets the room type (`c`, `p`, `d`, `l`). */
  setType(type: RoomType): IRoomBuilder {
    this.room.type = type;
    return this;
  }

  /** The room type. */
  getType(): RoomType {
    return this.room.type;
  }

  /** Sets the creator. */
  setCreator(creator: IUser): IRoomBuilder {
    this.room.creator = structuredClone(creator);
    return this;
  }

  /** The creator. */
  getCreator(): IUser {
    return this.room.creator;
  }

  /** Adds a member by username (deprecated in Apps-Engine; same as `addMemberToBeAddedByUsername`). */
  addUsername(username: string): IRoomBuilder {
    return this.addMemberToBeAddedByUsername(username);
  }

  /** Replaces the members (deprecated in Apps-Engine; same as `setMembersToBeAddedByUsernames`). */
  setUsernames(usernames: string[]): IRoomBuilder {
    return this.setMembersToBeAddedByUsernames(usernames);
  }

  /** The members' usernames. */
  getUsernames(): string[] {
    return [...(this.room.usernames ?? [])];
  }

  /** Adds a member by username. */
  addMemberToBeAddedByUsername(username: string): IRoomBuilder {
    this.room.usernames = this.room.usernames ?? [];
    if (!this.room.usernames.includes(username)) this.room.usernames.push(username);
    return this;
  }

  /** Replaces the members. */
  setMembersToBeAddedByUsernames(usernames: string[]): IRoomBuilder {
    this.room.usernames = [...new Set(usernames)];
    return this;
  }

  /** The members' usernames. */
  getMembersToBeAddedUsernames(): string[] {
    return this.getUsernames();
  }

  /** Sets whether new users join by default. */
  setDefault(isDefault: boolean): IRoomBuilder {
    this.room.isDefault = isDefault;
    return this;
  }

  /** Whether new users join by default. */
  getIsDefault(): boolean {
    return this.room.isDefault === true;
  }

  /** Sets whether only privileged users may post. */
  setReadOnly(isReadOnly: boolean): IRoomBuilder {
    this.room.isReadOnly = isReadOnly;
    return this;
  }

  /** Whether only privileged users may post. */
  getIsReadOnly(): boolean {
    return this.room.isReadOnly === true;
  }

  /** Sets whether system messages are shown. */
  setDisplayingOfSystemMessages(displaySystemMessages: boolean): IRoomBuilder {
    this.room.displaySystemMessages = displaySystemMessages;
    return this;
  }

  /** Whether system messages are shown. */
  getDisplayingOfSystemMessages(): boolean {
    return this.room.displaySystemMessages === true;
  }

  /** Sets (or replaces) a custom field. */
  addCustomField(key: string, value: object): IRoomBuilder {
    this.room.customFields = { ...(this.room.customFields ?? {}), [key]: structuredClone(value) };
    return this;
  }

  /** Replaces every custom field. */
  setCustomFields(fields: { [key: string]: object }): IRoomBuilder {
    this.room.customFields = structuredClone(fields);
    return this;
  }

  /** The custom fields. */
  getCustomFields(): { [key: string]: object } {
    return structuredClone(this.room.customFields ?? {}) as { [key: string]: object };
  }

  /** The members' user ids (roomhooks carries usernames only: empty unless the app set them). */
  getUserIds(): string[] {
    return [...(this.room.userIds ?? [])];
  }

  /** A copy of the room as changed so far. */
  getRoom(): IRoom {
    return copyRoom(this.room);
  }
}
