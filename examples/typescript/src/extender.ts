// An extender: adds a `created_via` custom field and a welcome bot to every new room.
//
// Run: `node dist/extender.js [ENDPOINT]`. Equivalent to client-sdk/examples/extender.rs.

import { RoomHooksApp } from 'roomhooks-sdk';
import type { HookContext, IPreRoomCreateExtend, Room, RoomExtender } from 'roomhooks-sdk';

class Extender extends RoomHooksApp implements IPreRoomCreateExtend {
  async executePreRoomCreateExtend(_room: Room, extend: RoomExtender, _ctx: HookContext): Promise<void> {
    extend.addCustomField('created_via', 'roomhooks');
    extend.addMember('welcome-bot');
  }
}

new Extender({ appId: 'extender', version: '0.1.0', priority: 20 })
  .run(process.argv[2] ?? 'http://127.0.0.1:50051')
  .catch((err: Error) => {
    console.error(err.message);
    process.exit(1);
  });
