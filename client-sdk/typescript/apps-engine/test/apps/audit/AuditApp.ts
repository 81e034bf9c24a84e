// An audit app in Apps-Engine style: protects rooms from deletion and reports room events to an
// audit service over HTTP from its post handlers.
import type { IConfigurationExtend, IHttp, IModify, IPersistence, IRead } from '@rocket.chat/apps-engine/definition/accessors';
import { App } from '@rocket.chat/apps-engine/definition/App';
import type { IPostRoomCreate, IPostRoomDeleted, IPostRoomUserLeave, IPreRoomDeletePrevent, IRoom, IRoomUserLeaveContext } from '@rocket.chat/apps-engine/definition/rooms';
import { SettingType } from '@rocket.chat/apps-engine/definition/settings';

export class AuditApp extends App implements IPreRoomDeletePrevent, IPostRoomCreate, IPostRoomDeleted, IPostRoomUserLeave {
  protected override async extendConfiguration(configuration: IConfigurationExtend): Promise<void> {
    await configuration.settings.provideSetting({
      id: 'audit_url', type: SettingType.STRING, packageValue: '', required: true, public: false, i18nLabel: 'audit_url',
    });
  }

  private async report(read: IRead, http: IHttp, data: object): Promise<void> {
    const url = String(await read.getEnvironmentReader().getSettings().getValueById('audit_url'));
    const res = await http.post(url, { data });
    if (res.statusCode !== 200) throw new Error(`the audit service answered ${res.statusCode}`);
  }

  async checkPreRoomDeletePrevent(room: IRoom): Promise<boolean> {
    return room.customFields?.protected !== undefined;
  }

  async executePreRoomDeletePrevent(room: IRoom): Promise<boolean> {
    return room.customFields?.protected === true;
  }

  async checkPostRoomCreate(room: IRoom): Promise<boolean> {
    return room.slugifiedName !== 'quiet';
  }

  async executePostRoomCreate(room: IRoom, read: IRead, http: IHttp, _persistence: IPersistence, _modify: IModify): Promise<void> {
    await this.report(read, http, { event: 'created', room: room.slugifiedName, type: room.type, creator: room.creator?.username });
  }

  async executePostRoomDeleted(room: IRoom, read: IRead, http: IHttp): Promise<void> {
    await this.report(read, http, { event: 'deleted', room: room.slugifiedName });
  }

  async executePostRoomUserLeave(context: IRoomUserLeaveContext, read: IRead, http: IHttp): Promise<void> {
    await this.report(read, http, { event: 'left', room: context.room.id, user: context.leavingUser.username, removedBy: context.removedBy?.username });
  }
}
