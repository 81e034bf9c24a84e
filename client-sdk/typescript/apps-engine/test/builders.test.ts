// IRoomBuilder alone: what its setters do to the room the runner answers with.

import { strict as assert } from 'node:assert';
import { test } from 'node:test';
import { RoomType } from '@rocket.chat/apps-engine/definition/rooms';
import { createRoom, createUser } from 'roomhooks-sdk';
import { AeRoomBuilder, roomFromAe, roomToAe, userToAe } from '../src';

const original = createRoom({ id: '', displayName: 'Launch', slugifiedName: 'launch', type: 'ROOM_TYPE_CHANNEL', memberUsernames: ['alice'], customFields: { a: 1 } });

test('setData, setType, setCreator, setDefault, setCustomFields and setMembersToBeAddedByUsernames all reach the answered room', () => {
  const b = new AeRoomBuilder(roomToAe(original));
  b.setData({ description: 'from setData', displayName: 'Launch!' })
    .setType(RoomType.PRIVATE_GROUP)
    .setCreator(userToAe(createUser({ id: 'u-9', username: 'zoe' })))
    .setDefault(true)
    .setCustomFields({ b: { nested: true } })
    .setMembersToBeAddedByUsernames(['bob', 'bob', 'carol']);
  const room = roomFromAe(b.getRoom(), original);
  assert.equal(room.description, 'from setData');
  assert.equal(room.displayName, 'Launch!');
  assert.equal(room.type, 'ROOM_TYPE_PRIVATE_GROUP');
  assert.equal(room.creator?.username, 'zoe');
  assert.equal(room.isDefault, true);
  assert.deepEqual(room.customFields, { b: { nested: true } });
  assert.deepEqual(room.memberUsernames, ['bob', 'carol']);
});

test('addCustomField replaces an existing key (the builder is not the extender), and getRoom returns a copy', () => {
  const b = new AeRoomBuilder(roomToAe(original));
  b.addCustomField('a', { replaced: true });
  const copy = b.getRoom();
  copy.displayName = 'changed outside';
  assert.deepEqual(b.getCustomFields(), { a: { replaced: true } });
  assert.equal(b.getDisplayName(), 'Launch');
});
