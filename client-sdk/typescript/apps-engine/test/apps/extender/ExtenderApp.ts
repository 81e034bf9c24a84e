// An extender in Apps-Engine style: adds a custom field and a member; shows that addCustomField
// throws for a key the room already has and for a key with a dot.
import type { IHttp, IPersistence, IRead, IRoomExtender } from '@rocket.chat/apps-engine/definition/accessors';
import { App } from '@rocket.chat/apps-engine/definition/App';
import type { IPreRoomCreateExtend, IRoom } from '@rocket.chat/apps-engine/definition/rooms';
import type { IUser } from '@rocket.chat/apps-engine/definition/users';
import { UserStatusConnection, UserType } from '@rocket.chat/apps-engine/definition/users';

const WELCOME_BOT: IUser = {
  id: 'u-welcome-bot', username: 'welcome-bot', name: 'Welcome Bot', emails: [], type: UserType.BOT, isEnabled: true,
  roles: ['bot'], status: 'online', statusConnection: UserStatusConnection.ONLINE, utcOffset: 0,
  createdAt: new Date(0), updatedAt: new Date(0), lastLoginAt: new Date(0),
};

export class ExtenderApp extends App implements IPreRoomCreateExtend {
  async executePreRoomCreateExtend(_room: IRoom, extend: IRoomExtender, _read: IRead, _http: IHttp, _persistence: IPersistence): Promise<IRoom> {
    extend.addCustomField('created_via', 'apps-engine');
    try {
      extend.addCustomField('team', 'extender');
    } catch {
      extend.addCustomField('team_kept', true);
    }
    try {
      extend.addCustomField('a.b', 1);
    } catch {
      extend.addCustomField('dotted_key_refused', true);
    }
    extend.addMember(WELCOME_BOT);
    extend.addCustomField('members_being_added', extend.getUsernamesOfMembersBeingAdded().join(','));
    return extend.getRoom();
  }
}
