// A word filter in Apps-Engine style: rooms whose name holds a blocked word are prevented (not
// direct messages: its check skips them); "troll" may not join, "hostage" may not leave.
import type { IConfigurationExtend, IConfigurationModify, IEnvironmentRead, IHttp, IPersistence, IRead } from '@rocket.chat/apps-engine/definition/accessors';
import { App } from '@rocket.chat/apps-engine/definition/App';
import { UserNotAllowedException } from '@rocket.chat/apps-engine/definition/exceptions';
import type { IPreRoomCreatePrevent, IPreRoomUserJoined, IPreRoomUserLeave, IRoom, IRoomUserJoinedContext, IRoomUserLeaveContext } from '@rocket.chat/apps-engine/definition/rooms';
import { RoomType } from '@rocket.chat/apps-engine/definition/rooms';
import { SettingType } from '@rocket.chat/apps-engine/definition/settings';

export class WordFilterApp extends App implements IPreRoomCreatePrevent, IPreRoomUserJoined, IPreRoomUserLeave {
  protected override async extendConfiguration(configuration: IConfigurationExtend): Promise<void> {
    await configuration.settings.provideSetting({
      id: 'blocked_words', type: SettingType.STRING, packageValue: 'spam', required: false, public: false, i18nLabel: 'blocked_words',
    });
    await configuration.settings.provideSetting({
      id: 'enabled', type: SettingType.BOOLEAN, packageValue: true, required: false, public: false, i18nLabel: 'enabled',
    });
    await configuration.slashCommands.provideSlashCommand({
      command: 'filter', i18nParamsExample: '', i18nDescription: '', providesPreview: false,
      executor: async () => undefined,
    });
  }

  override async onEnable(environment: IEnvironmentRead, _configurationModify: IConfigurationModify): Promise<boolean> {
    return (await environment.getSettings().getValueById('enabled')) !== false;
  }

  async checkPreRoomCreatePrevent(room: IRoom): Promise<boolean> {
    return room.type !== RoomType.DIRECT_MESSAGE;
  }

  async executePreRoomCreatePrevent(room: IRoom, read: IRead, _http: IHttp, _persistence: IPersistence): Promise<boolean> {
    const words = String(await read.getEnvironmentReader().getSettings().getValueById('blocked_words')).split(',');
    const name = (room.displayName ?? '').toLowerCase();
    const blocked = words.some((w) => w.trim() !== '' && name.includes(w.trim()));
    if (blocked) this.getLogger().info(`prevented the room "${room.displayName}"`);
    return blocked;
  }

  async executePreRoomUserJoined(context: IRoomUserJoinedContext): Promise<void> {
    if (context.joiningUser.username === 'troll') throw new UserNotAllowedException('You are banned.');
    if (context.joiningUser.username === 'crash') throw new Error('the filter broke');
  }

  async executePreRoomUserLeave(context: IRoomUserLeaveContext): Promise<void> {
    if (context.leavingUser.username === 'hostage') throw new UserNotAllowedException(`${context.leavingUser.username} must stay in ${context.room.slugifiedName}.`);
  }
}
