/**
 * What handlers answer with: a veto (`Prevent`), an extender (Apps-Engine's `IRoomExtender`) and
 * a builder (Apps-Engine's `IRoomBuilder`).
 *
 * @module
 */

import type { JsonObject, JsonValue, Room, RoomType, User } from './types';

/** A veto with a message for the end user; return it (or `prevent(message)`) from a Prevent handler. */
export class Prevent {
  /** A veto; the message is shown to the end user (the first veto's message wins). */
  constructor(
    /** The message for the end user. */
    readonly message: string,
  ) {}
}

/** Stops the action with a message for the end user. */
export function prevent(message: string): Prevent {
  return new Prevent(message);
}

/** No objection, with a warning for the end user; return it (or `warn(message)`) from a Prevent handler. */
export class Warn {
  /** An allow with a warning; the backend gets it in the response's `warnings`. */
  constructor(
    /** The warning for the end user ("This room name may be confusing"). */
    readonly message: string,
  ) {}
}

/** Allows the action with a warning the backend shows to the end user. */
export function warn(message: string): Warn {
  return new Warn(message);
}

/**
 * What a veto handler may answer: `false` allows, `true` prevents without a message, a `Prevent`
 * prevents with one, a `Warn` allows with a warning.
 */
export type PreventAnswer = boolean | Prevent | Warn;

/** Deep copy of JSON-shaped data (rooms, users, custom fields). @internal */
export function copy<T>(value: T): T {
  return structuredClone(value);
}

/**
 * Apps-Engine's `IRoomExtender`: additions only. `addCustomField` throws when the key exists in the
 * room or was added already, or contains a `.`; `addMember` appends a member by username.
 */
export class RoomExtender {
  private readonly fields: JsonObject = {};
  private readonly members: string[] = [];

  /** An extender for `room` (handlers get one; tests can make their own). */
  constructor(private readonly room: Room) {}

  /** Adds a custom field; throws when the key is already in the room or was added, or contains a `.`. */
  addCustomField(key: string, value: JsonValue): this {
    if (key.length === 0) throw new Error('addCustomField: the key is empty');
    if (key.includes('.')) throw new Error(`addCustomField: the key "${key}" contains a "."`);
    if (Object.prototype.hasOwnProperty.call(this.room.customFields, key)) {
      throw new Error(`addCustomField: the room already has the custom field "${key}" (Extend may only add keys)`);
    }
    if (Object.prototype.hasOwnProperty.call(this.fields, key)) {
      throw new Error(`addCustomField: the custom field "${key}" was added already`);
    }
    this.fields[key] = copy(value);
    return this;
  }

  /** Adds a member, by username or as a user. */
  addMember(user: string | Pick<User, 'username'>): this {
    const username = typeof user === 'string' ? user : user.username;
    if (username.length === 0) throw new Error('addMember: the username is empty');
    if (!this.members.includes(username)) this.members.push(username);
    return this;
  }

  /** The usernames added so far. */
  getMembersBeingAdded(): string[] {
    return [...this.members];
  }

  /** The custom fields added so far. */
  getCustomFieldsBeingAdded(): JsonObject {
    return copy(this.fields);
  }

  /** A copy of the room as the app got it. */
  getRoom(): Room {
    return copy(this.room);
  }
}

/**
 * Apps-Engine's `IRoomBuilder`: changes to a room being created. A Modify handler may change the
 * builder and return nothing, or return a room.
 */
export class RoomBuilder {
  private readonly room: Room;

  /** A builder starting from (a copy of) `room`. */
  constructor(room: Room) {
    this.room = copy(room);
  }

  /** Sets several fields at once. */
  setData(data: Partial<Room>): this {
    Object.assign(this.room, copy(data));
    return this;
  }

  /** Sets the name shown to users. */
  setDisplayName(name: string): this {
    this.room.displayName = name;
    return this;
  }

  /** The name shown to users. */
  getDisplayName(): string {
    return this.room.displayName;
  }

  /** Sets the URL-safe name. */
  setSlugifiedName(name: string): this {
    this.room.slugifiedName = name;
    return this;
  }

  /** The URL-safe name. */
  getSlugifiedName(): string {
    return this.room.slugifiedName;
  }

  /** Sets the kind of room (it must stay set). */
  setType(type: RoomType): this {
    this.room.type = type;
    return this;
  }

  /** The kind of room. */
  getType(): RoomType {
    return this.room.type;
  }

  /** Sets the creator. */
  setCreator(creator: User): this {
    this.room.creator = copy(creator);
    return this;
  }

  /** The creator. */
  getCreator(): User | null {
    return this.room.creator;
  }

  /** Sets whether new users join by default. */
  setDefault(isDefault: boolean): this {
    this.room.isDefault = isDefault;
    return this;
  }

  /** Whether new users join by default. */
  getIsDefault(): boolean {
    return this.room.isDefault;
  }

  /** Sets whether only privileged users may post. */
  setReadOnly(isReadOnly: boolean): this {
    this.room.isReadOnly = isReadOnly;
    return this;
  }

  /** Whether only privileged users may post. */
  getIsReadOnly(): boolean {
    return this.room.isReadOnly;
  }

  /** Sets whether system messages are shown. */
  setDisplayingOfSystemMessages(display: boolean): this {
    this.room.displaySystemMessages = display;
    return this;
  }

  /** Whether system messages are shown. */
  getDisplayingOfSystemMessages(): boolean {
    return this.room.displaySystemMessages;
  }

  /** Sets the description. */
  setDescription(description: string): this {
    this.room.description = description;
    return this;
  }

  /** Sets (or replaces) a custom field. */
  addCustomField(key: string, value: JsonValue): this {
    this.room.customFields[key] = copy(value);
    return this;
  }

  /** Replaces every custom field. */
  setCustomFields(fields: JsonObject): this {
    this.room.customFields = copy(fields);
    return this;
  }

  /** The custom fields. */
  getCustomFields(): JsonObject {
    return copy(this.room.customFields);
  }

  /** Adds a member by username (duplicates are ignored). */
  addMemberToBeAddedByUsername(username: string): this {
    if (!this.room.memberUsernames.includes(username)) this.room.memberUsernames.push(username);
    return this;
  }

  /** Replaces the members. */
  setMembersToBeAddedByUsernames(usernames: string[]): this {
    this.room.memberUsernames = [...new Set(usernames)];
    return this;
  }

  /** The members. */
  getMembersToBeAddedUsernames(): string[] {
    return [...this.room.memberUsernames];
  }

  /** A copy of the room as changed so far. */
  getRoom(): Room {
    return copy(this.room);
  }
}
