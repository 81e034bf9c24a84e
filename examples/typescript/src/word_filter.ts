// A word filter: prevents rooms whose name contains a banned word, and joins of banned users.
//
// Run: `node dist/word_filter.js [ENDPOINT]` (default http://127.0.0.1:50051). Banned words and
// users come from BANNED_WORDS and BANNED_USERS (comma-separated), defaulting to "spam,scam" and
// "troll". Equivalent to client-sdk/examples/word_filter.rs.

import { RoomHooksApp, UserNotAllowedException, prevent } from 'roomhooks-sdk';
import type { HookContext, IPreRoomCreatePrevent, IPreRoomUserJoined, PreventAnswer, Room, RoomUserJoined } from 'roomhooks-sdk';

function list(variable: string, fallback: string): string[] {
  return (process.env[variable] ?? fallback)
    .split(',')
    .map((w) => w.trim().toLowerCase())
    .filter((w) => w !== '');
}

class WordFilter extends RoomHooksApp implements IPreRoomCreatePrevent, IPreRoomUserJoined {
  private readonly words = list('BANNED_WORDS', 'spam,scam');
  private readonly users = list('BANNED_USERS', 'troll');

  async executePreRoomCreatePrevent(room: Room, _ctx: HookContext): Promise<PreventAnswer> {
    const name = room.displayName.toLowerCase();
    const word = this.words.find((w) => name.includes(w));
    return word === undefined ? false : prevent(`Room names may not contain "${word}".`);
  }

  async executePreRoomUserJoined(context: RoomUserJoined, _ctx: HookContext): Promise<void> {
    const username = context.joiningUser.username.toLowerCase();
    if (this.users.includes(username)) throw new UserNotAllowedException(`${username} is banned from this server.`);
  }
}

const endpoint = process.argv[2] ?? 'http://127.0.0.1:50051';
// Moderation must not be skipped: when this app is down, rooms are not created.
new WordFilter({ appId: 'word-filter', version: '0.1.0', priority: 10, failurePolicy: 'fail' })
  .run(endpoint)
  .catch((err: Error) => {
    console.error(err.message);
    process.exit(1);
  });
