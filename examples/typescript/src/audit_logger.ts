// An audit logger: writes one line per post event (room created or deleted, user joined or left)
// to stdout. Events arrive at least once and in order; the event id makes duplicates recognisable.
//
// Run: `node dist/audit_logger.js [ENDPOINT]`. Equivalent to client-sdk/examples/audit_logger.rs,
// written with the functional builder.

import { app } from 'roomhooks-sdk';
import type { PostContext } from 'roomhooks-sdk';

function log(ctx: PostContext, what: string): void {
  const redelivered = ctx.attempt > 1 ? ' (redelivered)' : '';
  console.log(`audit ${ctx.eventId} ${what}${redelivered}`);
}

app({ appId: 'audit-logger', version: '0.1.0' })
  .postRoomCreate((room, ctx) => log(ctx, `room created: ${room.displayName} (${room.id})`))
  .postRoomDeleted((room, ctx) => log(ctx, `room deleted: ${room.id}`))
  .postRoomUserJoined(({ joiningUser, room }, ctx) => log(ctx, `${joiningUser.username} joined ${room.id}`))
  .postRoomUserLeave(({ leavingUser, room }, ctx) => log(ctx, `${leavingUser.username} left ${room.id}`))
  .run(process.argv[2] ?? 'http://127.0.0.1:50051')
  .catch((err: Error) => {
    console.error(err.message);
    process.exit(1);
  });
