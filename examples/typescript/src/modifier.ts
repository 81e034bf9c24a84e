// A modifier: normalises the slug of every new room (lower case, ASCII letters and digits, single
// dashes), derived from the display name when the backend sent none.
//
// Run: `node dist/modifier.js [ENDPOINT]`. Equivalent to client-sdk/examples/modifier.rs (it
// registers as the same app, `slug-normaliser`: run one or the other).

import { RoomHooksApp } from 'roomhooks-sdk';
import type { HookContext, IPreRoomCreateModify, Room, RoomBuilder } from 'roomhooks-sdk';

/** `"  Café Launch!! 2026 "` becomes `"caf-launch-2026"`. */
export function slugify(raw: string): string {
  let slug = '';
  for (const c of raw) {
    if (/^[A-Za-z0-9]$/.test(c)) slug += c.toLowerCase();
    else if (slug !== '' && !slug.endsWith('-')) slug += '-';
  }
  return slug.replace(/-+$/, '');
}

class SlugNormaliser extends RoomHooksApp implements IPreRoomCreateModify {
  async executePreRoomCreateModify(room: Room, builder: RoomBuilder, _ctx: HookContext): Promise<void> {
    builder.setSlugifiedName(slugify(room.slugifiedName === '' ? room.displayName : room.slugifiedName));
  }
}

if (require.main === module) {
  new SlugNormaliser({ appId: 'slug-normaliser', version: '0.1.0', priority: 30 })
    .run(process.argv[2] ?? 'http://127.0.0.1:50051')
    .catch((err: Error) => {
      console.error(err.message);
      process.exit(1);
    });
}
