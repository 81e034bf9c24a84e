// Touches an accessor roomhooks does not provide (the room's members from the chat server).
import type { IHttp, IPersistence, IRead } from '@rocket.chat/apps-engine/definition/accessors';
import { App } from '@rocket.chat/apps-engine/definition/App';
import type { IPreRoomCreatePrevent, IRoom } from '@rocket.chat/apps-engine/definition/rooms';

export class MembersApp extends App implements IPreRoomCreatePrevent {
  async executePreRoomCreatePrevent(room: IRoom, read: IRead, _http: IHttp, _persistence: IPersistence): Promise<boolean> {
    const members = await read.getRoomReader().getMembers(room.id);
    return members.length > 100;
  }
}
