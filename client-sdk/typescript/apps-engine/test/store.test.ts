// Apps-Engine's persistence on SQLite, alone: records with associations, upserts, removal, and
// durability across reopening the store.

import { strict as assert } from 'node:assert';
import { test } from 'node:test';
import { RocketChatAssociationModel, RocketChatAssociationRecord } from '@rocket.chat/apps-engine/definition/metadata';
import { AppStore } from '../src';
import { tempDir } from './support';

const room = (id: string) => new RocketChatAssociationRecord(RocketChatAssociationModel.ROOM, id);
const misc = (id: string) => new RocketChatAssociationRecord(RocketChatAssociationModel.MISC, id);

test('readByAssociations finds the records carrying every association given, oldest first', async () => {
  const store = new AppStore(tempDir('store'), 'app');
  const p = store.persistence();
  await p.createWithAssociations({ n: 1 }, [room('r-1'), misc('a')]);
  await p.createWithAssociations({ n: 2 }, [room('r-1'), misc('b')]);
  await p.createWithAssociation({ n: 3 }, room('r-1'));
  const read = store.reader();
  assert.deepEqual(await read.readByAssociation(room('r-1')), [{ n: 1 }, { n: 2 }, { n: 3 }]);
  assert.deepEqual(await read.readByAssociations([room('r-1'), misc('b')]), [{ n: 2 }]);
  assert.deepEqual(await read.readByAssociations([room('r-2')]), []);
  store.close();
});

test('updateByAssociations with upsert creates the record once, then updates it', async () => {
  const store = new AppStore(tempDir('store'), 'app');
  const p = store.persistence();
  const id1 = await p.updateByAssociations([room('r-1'), misc('count')], { count: 1 }, true);
  const id2 = await p.updateByAssociations([room('r-1'), misc('count')], { count: 2 }, true);
  assert.equal(id1, id2);
  assert.deepEqual(await store.reader().readByAssociations([room('r-1'), misc('count')]), [{ count: 2 }]);
  await assert.rejects(p.updateByAssociation(room('nowhere'), { x: 1 }), /no record has these associations/);
  store.close();
});

test('updateByAssociations updates only a record with exactly those associations, not one carrying more, as Rocket.Chat does', async () => {
  const store = new AppStore(tempDir('store'), 'app');
  const p = store.persistence();
  await p.createWithAssociations({ n: 'wider' }, [room('r-1'), misc('count'), misc('extra')]);
  const exact = await p.createWithAssociations({ n: 'exact' }, [misc('count'), room('r-1')]);
  assert.equal(await p.updateByAssociations([room('r-1'), misc('count')], { n: 'updated' }), exact, 'the exact set matches in any order');
  assert.deepEqual(await store.reader().readByAssociations([room('r-1'), misc('count')]), [{ n: 'wider' }, { n: 'updated' }]);
  store.close();
});

test('updateByAssociations with two records of the same associations updates the oldest only', async () => {
  const store = new AppStore(tempDir('store'), 'app');
  const p = store.persistence();
  const oldest = await p.createWithAssociation({ n: 1 }, misc('twin'));
  await p.createWithAssociation({ n: 2 }, misc('twin'));
  assert.equal(await p.updateByAssociation(misc('twin'), { n: 'updated' }), oldest);
  assert.deepEqual(await store.reader().readByAssociation(misc('twin')), [{ n: 'updated' }, { n: 2 }]);
  store.close();
});

test('update changes a record by id, refuses a missing id, and creates it with upsert', async () => {
  const store = new AppStore(tempDir('store'), 'app');
  const p = store.persistence();
  const id = await p.create({ v: 'a' });
  await p.update(id, { v: 'b' });
  assert.deepEqual(await store.reader().read(id), { v: 'b' });
  await assert.rejects(p.update('missing', { v: 1 }), /no record with id "missing"/);
  assert.equal(await p.update('fixed-id', { v: 1 }, true), 'fixed-id');
  assert.deepEqual(await store.reader().read('fixed-id'), { v: 1 });
  store.close();
});

test('remove and removeByAssociations return what they removed, and it is gone', async () => {
  const store = new AppStore(tempDir('store'), 'app');
  const p = store.persistence();
  const id = await p.create({ v: 'b' });
  assert.deepEqual(await p.remove(id), { v: 'b' });
  assert.equal(await store.reader().read(id), undefined);
  await p.createWithAssociation({ gone: true }, misc('x'));
  assert.deepEqual(await p.removeByAssociations([misc('x')]), [{ gone: true }]);
  assert.deepEqual(await store.reader().readByAssociation(misc('x')), []);
  store.close();
});

test('records survive closing and reopening the store in the same data dir', async () => {
  const dir = tempDir('store');
  const first = new AppStore(dir, 'app');
  await first.persistence().createWithAssociation({ kept: true }, misc('k'));
  first.close();
  const second = new AppStore(dir, 'app');
  assert.deepEqual(await second.reader().readByAssociation(misc('k')), [{ kept: true }]);
  second.close();
});
