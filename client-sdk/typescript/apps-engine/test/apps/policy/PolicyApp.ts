// Asks an external policy service over HTTP: GET /policy decides the veto, POST /classify adds a
// custom field from the JSON answer.
import type { IConfigurationExtend, IHttp, IPersistence, IRead, IRoomExtender } from '@rocket.chat/apps-engine/definition/accessors';
import { App } from '@rocket.chat/apps-engine/definition/App';
import type { IPreRoomCreateExtend, IPreRoomCreatePrevent, IRoom } from '@rocket.chat/apps-engine/definition/rooms';
import { SettingType } from '@rocket.chat/apps-engine/definition/settings';

export class PolicyApp extends App implements IPreRoomCreatePrevent, IPreRoomCreateExtend {
  protected override async extendConfiguration(configuration: IConfigurationExtend): Promise<void> {
    await configuration.settings.provideSetting({
      id: 'policy_url', type: SettingType.STRING, packageValue: 'http://127.0.0.1:9', required: true, public: false, i18nLabel: 'policy_url',
    });
    configuration.http.provideDefaultHeader('x-app', 'policy');
  }

  private async url(read: IRead): Promise<string> {
    return String(await read.getEnvironmentReader().getSettings().getValueById('policy_url'));
  }

  async executePreRoomCreatePrevent(room: IRoom, read: IRead, http: IHttp, _persistence: IPersistence): Promise<boolean> {
    const res = await http.get(`${await this.url(read)}/policy`, { params: { name: room.displayName ?? '' } });
    return res.data?.allowed === false;
  }

  async executePreRoomCreateExtend(room: IRoom, extend: IRoomExtender, read: IRead, http: IHttp, _persistence: IPersistence): Promise<IRoom> {
    const site = await read.getEnvironmentReader().getServerSettings().getValueById('Site_Url');
    const res = await http.post(`${await this.url(read)}/classify`, { data: { name: room.displayName, site } });
    extend.addCustomField('category', res.data.category);
    extend.addCustomField('classified_by', `${res.statusCode} ${res.data.header}`);
    return extend.getRoom();
  }
}
