// A modifier in Apps-Engine style: marks the room moderated through the builder.
import type { IHttp, IPersistence, IRead, IRoomBuilder } from '@rocket.chat/apps-engine/definition/accessors';
import { App } from '@rocket.chat/apps-engine/definition/App';
import type { IPreRoomCreateModify, IRoom } from '@rocket.chat/apps-engine/definition/rooms';

export class ModifierApp extends App implements IPreRoomCreateModify {
  async checkPreRoomCreateModify(room: IRoom): Promise<boolean> {
    return room.customFields?.unmoderated !== true;
  }

  async executePreRoomCreateModify(room: IRoom, builder: IRoomBuilder, _read: IRead, _http: IHttp, _persistence: IPersistence): Promise<IRoom> {
    builder.addCustomField('saw_description', room.description as unknown as object);
    builder.setSlugifiedName(`${room.slugifiedName} AE`);
    builder.setReadOnly(true);
    builder.setDisplayingOfSystemMessages(false);
    builder.addMemberToBeAddedByUsername('moderator');
    return builder.getRoom();
  }
}
