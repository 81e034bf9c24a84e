// Counts joins per room in persistence (a post handler) and refuses joins once a room has
// max_joins of them (a Pre handler reading the count back).
import type { IConfigurationExtend, IHttp, IModify, IPersistence, IRead } from '@rocket.chat/apps-engine/definition/accessors';
import { App } from '@rocket.chat/apps-engine/definition/App';
import { UserNotAllowedException } from '@rocket.chat/apps-engine/definition/exceptions';
import { RocketChatAssociationModel, RocketChatAssociationRecord } from '@rocket.chat/apps-engine/definition/metadata';
import type { IPostRoomUserJoined, IPreRoomUserJoined, IRoomUserJoinedContext } from '@rocket.chat/apps-engine/definition/rooms';
import { SettingType } from '@rocket.chat/apps-engine/definition/settings';

export class JoinCounterApp extends App implements IPreRoomUserJoined, IPostRoomUserJoined {
  protected override async extendConfiguration(configuration: IConfigurationExtend): Promise<void> {
    await configuration.settings.provideSetting({
      id: 'max_joins', type: SettingType.NUMBER, packageValue: 3, required: false, public: false, i18nLabel: 'max_joins',
    });
  }

  private associations(roomId: string): RocketChatAssociationRecord[] {
    return [
      new RocketChatAssociationRecord(RocketChatAssociationModel.ROOM, roomId),
      new RocketChatAssociationRecord(RocketChatAssociationModel.MISC, 'join-count'),
    ];
  }

  private async count(read: IRead, roomId: string): Promise<number> {
    const [record] = (await read.getPersistenceReader().readByAssociations(this.associations(roomId))) as Array<{ count?: number }>;
    return record?.count ?? 0;
  }

  async executePreRoomUserJoined(context: IRoomUserJoinedContext, read: IRead): Promise<void> {
    const max = Number(await read.getEnvironmentReader().getSettings().getValueById('max_joins'));
    const joins = await this.count(read, context.room.id);
    if (joins >= max) throw new UserNotAllowedException(`${context.room.id} is full: ${joins} joins`);
  }

  async executePostRoomUserJoined(context: IRoomUserJoinedContext, read: IRead, _http: IHttp, persistence: IPersistence, _modify?: IModify): Promise<void> {
    const joins = await this.count(read, context.room.id);
    await persistence.updateByAssociations(this.associations(context.room.id), { count: joins + 1 }, true);
    this.getLogger().info(`${context.joiningUser.username} joined ${context.room.id}: ${joins + 1} joins`);
  }
}
