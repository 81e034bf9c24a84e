// Rooms and users between roomhooks' shapes and Apps-Engine's IRoom / IUser.

import { strict as assert } from 'node:assert';
import { test } from 'node:test';
import { RoomType } from '@rocket.chat/apps-engine/definition/rooms';
import { createRoom } from 'roomhooks-sdk';
import { roomFromAe, roomToAe } from '../src';

const full = createRoom({
  id: 'r-7',
  displayName: 'Launch Party',
  slugifiedName: 'launch-party',
  type: 'ROOM_TYPE_PRIVATE_GROUP',
  creator: { id: 'u-1', username: 'alice', name: 'Alice', roles: ['admin'], customFields: { team: 'core' } },
  memberUsernames: ['alice', 'bob'],
  isDefault: true,
  isReadOnly: true,
  displaySystemMessages: true,
  description: 'the launch',
  customFields: { nested: { list: [1, 'two', null, true] } },
  parentRoomId: 'r-1',
  messageCount: '9007199254740993',
  createdAt: { seconds: '1700000000', nanos: 123456789 },
  updatedAt: { seconds: '1700000100', nanos: 1 },
});

test('a room becomes an IRoom with type p, usernames, creator, parentRoom and dates as Date', () => {
  const r = roomToAe(full);
  assert.equal(r.type, RoomType.PRIVATE_GROUP);
  assert.deepEqual(r.usernames, ['alice', 'bob']);
  assert.equal(r.creator.username, 'alice');
  assert.equal(r.parentRoom?.id, 'r-1');
  assert.ok(r.createdAt instanceof Date);
  assert.equal(r.createdAt.getTime(), 1700000000123);
});

test('a room converted to IRoom and back is the same room, to the nanosecond and the uint64 message count', () => {
  assert.deepEqual(roomFromAe(roomToAe(full), full), full);
});

test('each Apps-Engine room type maps to its roomhooks type', () => {
  for (const [type, expected] of [
    [RoomType.CHANNEL, 'ROOM_TYPE_CHANNEL'],
    [RoomType.PRIVATE_GROUP, 'ROOM_TYPE_PRIVATE_GROUP'],
    [RoomType.DIRECT_MESSAGE, 'ROOM_TYPE_DIRECT_MESSAGE'],
    [RoomType.LIVE_CHAT, 'ROOM_TYPE_LIVECHAT'],
  ] as const) {
    assert.equal(roomFromAe({ ...roomToAe(full), type }, full).type, expected);
  }
});
