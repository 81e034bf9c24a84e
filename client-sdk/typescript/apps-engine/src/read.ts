/**
 * Apps-Engine's `IRead` for one call: the environment reader, the persistence reader, and room /
 * user readers that know the room and users the event carries. Everything else fails with
 * `NotAvailableInRoomHooks`.
 *
 * @module
 */

import type { IEnvironmentRead, IPersistenceRead, IRead, IRoomRead, IUserRead } from '@rocket.chat/apps-engine/definition/accessors';
import type { IRoom } from '@rocket.chat/apps-engine/definition/rooms';
import type { IUser } from '@rocket.chat/apps-engine/definition/users';
import type { Unavailable } from './unavailable';

/** What a call's event carries: its room and users. */
export interface EventScope {
  /** The room of the event. */
  room?: IRoom;
  /** The users of the event (creator, joining / leaving user, inviter, remover). */
  users: IUser[];
}

const NO_SERVER = 'roomhooks sends apps only the room and users of the event, not the chat server\'s data';

/** An `IRead` for a call whose event is `scope`. */
export function createRead(env: IEnvironmentRead, persistence: IPersistenceRead, scope: EventScope, unavailable: Unavailable): IRead {
  const room = scope.room;
  const users = scope.users.filter((u) => u && u.id !== undefined);
  const roomReader = unavailable.proxy<IRoomRead>('read.getRoomReader()', NO_SERVER, {
    getById: async (id: string) =>
      room && room.id === id && id !== ''
        ? structuredClone(room)
        : unavailable.fail('read.getRoomReader().getById()', `only the event's room (${room?.id || 'none: it is not stored yet'}) is known; ${NO_SERVER}`),
    getByName: async (name: string) =>
      room && room.slugifiedName === name
        ? structuredClone(room)
        : unavailable.fail('read.getRoomReader().getByName()', `only the event's room (${room?.slugifiedName ?? 'none'}) is known; ${NO_SERVER}`),
    getCreatorUserById: async (id: string) =>
      room && room.id === id && room.creator
        ? structuredClone(room.creator)
        : unavailable.fail('read.getRoomReader().getCreatorUserById()', `only the event's room and its creator are known; ${NO_SERVER}`),
    getMembers: async () =>
      unavailable.fail('read.getRoomReader().getMembers()', `${NO_SERVER}; the members' usernames are in room.usernames`),
  });
  const userReader = unavailable.proxy<IUserRead>('read.getUserReader()', NO_SERVER, {
    getById: async (id: string) => {
      const user = users.find((u) => u.id === id && id !== '');
      return user ? structuredClone(user) : unavailable.fail('read.getUserReader().getById()', `only the event's users are known; ${NO_SERVER}`);
    },
    getByUsername: async (username: string) => {
      const user = users.find((u) => u.username === username && username !== '');
      return user ? structuredClone(user) : unavailable.fail('read.getUserReader().getByUsername()', `only the event's users are known; ${NO_SERVER}`);
    },
    getAppUser: async () => unavailable.fail('read.getUserReader().getAppUser()', 'roomhooks apps have no bot user in the chat server'),
  });
  return unavailable.proxy<IRead>('read', NO_SERVER, {
    getEnvironmentReader: () => env,
    getPersistenceReader: () => persistence,
    getRoomReader: () => roomReader,
    getUserReader: () => userReader,
    getMessageReader: () => unavailable.proxy('read.getMessageReader()', NO_SERVER),
    getThreadReader: () => unavailable.proxy('read.getThreadReader()', NO_SERVER),
    getNotifier: () => unavailable.proxy('read.getNotifier()', 'roomhooks apps cannot post to the chat server from room hooks'),
    getLivechatReader: () => unavailable.proxy('read.getLivechatReader()', NO_SERVER),
    getUploadReader: () => unavailable.proxy('read.getUploadReader()', NO_SERVER),
    getCloudWorkspaceReader: () => unavailable.proxy('read.getCloudWorkspaceReader()', NO_SERVER),
    getVideoConferenceReader: () => unavailable.proxy('read.getVideoConferenceReader()', NO_SERVER),
    getOAuthAppsReader: () => unavailable.proxy('read.getOAuthAppsReader()', NO_SERVER),
    getRoleReader: () => unavailable.proxy('read.getRoleReader()', NO_SERVER),
    getContactReader: () => unavailable.proxy('read.getContactReader()', NO_SERVER),
    getExperimentalReader: () => unavailable.proxy('read.getExperimentalReader()', NO_SERVER),
  });
}
