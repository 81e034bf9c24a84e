// The package as a consumer gets it, and the pieces that need no sidecar: CommonJS and ESM
// imports, the backoff's bounds, the extender's and builder's rules, and the backend client's
// errors.

import { test } from 'node:test';
import { strict as assert } from 'node:assert';
import { execFileSync } from 'node:child_process';
import * as path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import * as ts from 'typescript';
import { Backoff, RoomBuilder, RoomExtender, RoomHooksClient, UserNotAllowedException, app, createHookContext, createRoom, createUser, prevent } from '../dist';
import type { Room } from '../dist';
import { channel, quiet, started, stored, withSidecar } from './harness';

const PKG = path.resolve(__dirname, '..');

function room(extra: Partial<Room> = {}): Room {
  return {
    id: '',
    displayName: 'r',
    slugifiedName: '',
    type: 'ROOM_TYPE_CHANNEL',
    creator: null,
    memberUsernames: [],
    isDefault: false,
    isReadOnly: false,
    displaySystemMessages: false,
    description: '',
    customFields: {},
    parentRoomId: '',
    messageCount: '0',
    createdAt: null,
    updatedAt: null,
    ...extra,
  };
}

test('the package loads from CommonJS (require) and from ESM (import) with named exports', () => {
  const cjs = execFileSync(process.execPath, ['-e', "const s = require('roomhooks-sdk'); console.log(typeof s.RoomHooksApp, typeof s.app)"], {
    cwd: PKG,
    encoding: 'utf8',
  });
  assert.equal(cjs.trim(), 'function function');
  const esm = execFileSync(
    process.execPath,
    ['--input-type=module', '-e', "import { RoomHooksApp, UserNotAllowedException, RoomHooksClient } from 'roomhooks-sdk'; console.log(typeof RoomHooksApp, typeof UserNotAllowedException, typeof RoomHooksClient)"],
    { cwd: PKG, encoding: 'utf8' },
  );
  assert.equal(esm.trim(), 'function function function');
});

test('backoff delays stay between min/2 and a doubling ceiling capped at max, and reset', () => {
  const highest = new Backoff(100, 1000, () => 0.999999);
  const seen = Array.from({ length: 6 }, () => Math.round(highest.nextDelay()));
  assert.deepEqual(seen, [100, 200, 400, 800, 1000, 1000]);
  const lowest = new Backoff(100, 1000, () => 0);
  assert.equal(lowest.nextDelay(), 50);
  highest.reset();
  assert.equal(Math.round(highest.nextDelay()), 100);
  const random = new Backoff(100, 1000);
  for (let i = 0; i < 50; i++) {
    const d = random.nextDelay();
    assert.ok(d >= 50 && d <= 1000, String(d));
  }
});

test("the extender follows IRoomExtender: existing keys and keys with '.' throw, members are deduplicated, getRoom is a copy", () => {
  const extender = new RoomExtender(room({ customFields: { owner: 'alice' } }));
  assert.throws(() => extender.addCustomField('owner', 'bob'), /already has the custom field "owner"/);
  assert.throws(() => extender.addCustomField('a.b', 1), /contains a "\."/);
  extender.addCustomField('topic', 'x');
  assert.throws(() => extender.addCustomField('topic', 'y'), /was added already/);
  extender.addMember('bot').addMember({ username: 'bot' }).addMember('other');
  assert.deepEqual(extender.getMembersBeingAdded(), ['bot', 'other']);
  assert.deepEqual(extender.getCustomFieldsBeingAdded(), { topic: 'x' });
  extender.getRoom().customFields.owner = 'mallory';
  assert.equal(extender.getRoom().customFields.owner, 'alice');
});

test('the builder follows IRoomBuilder: setters change its room, not the original', () => {
  const original = room();
  const builder = new RoomBuilder(original)
    .setDisplayName('New')
    .setSlugifiedName('new')
    .setReadOnly(true)
    .setDefault(true)
    .setDisplayingOfSystemMessages(true)
    .addCustomField('k', 1)
    .addMemberToBeAddedByUsername('bob')
    .addMemberToBeAddedByUsername('bob');
  assert.equal(builder.getDisplayName(), 'New');
  assert.equal(builder.getIsReadOnly(), true);
  assert.deepEqual(builder.getMembersToBeAddedUsernames(), ['bob']);
  assert.deepEqual(builder.getCustomFields(), { k: 1 });
  builder.setData({ description: 'd' }).setCustomFields({});
  assert.deepEqual(builder.getRoom().customFields, {});
  assert.equal(builder.getRoom().description, 'd');
  assert.equal(original.displayName, 'r');
});

test('the backend client surfaces the sidecar INVALID_ARGUMENT naming the field, and a deadline', async () => {
  await withSidecar(async (sidecar, track) => {
    const backend = track(sidecar.backend());
    await assert.rejects(backend.preRoomCreate({ room: { displayName: 'no type' } }), (err: grpc.ServiceError) => {
      assert.equal(err.code, grpc.status.INVALID_ARGUMENT);
      assert.match(err.details, /room\.type/);
      return true;
    });
    await assert.rejects(backend.preRoomUserJoin({ context: { room: stored('general') } }), /joining_user is required/);
    assert.throws(() => new RoomHooksClient('ftp://127.0.0.1:1'), /the scheme ftp:\/\/, which is not supported/);
    track(
      await started(
        app(quiet({ appId: 'slow', timeoutMs: 5000 })).preRoomCreatePrevent(async () => {
          await new Promise((r) => setTimeout(r, 2000));
          return false;
        }),
        sidecar.endpoint,
      ),
    );
    // The sidecar caps the app's timeout by the backend's deadline and answers before it.
    const capped = await backend.preRoomCreate({ room: channel('x') }, { deadlineMs: 300 });
    assert.equal(capped.outcomes[0].status, 'OUTCOME_STATUS_TIMEOUT');
  });
});

test('handlers can be unit-tested without a sidecar with createRoom / createUser / createHookContext', async () => {
  const filter = app('unit')
    .preRoomCreatePrevent((room) => (room.displayName.includes('spam') ? prevent('No spam.') : false))
    .preRoomUserJoined((context) => {
      if (context.joiningUser.username === 'troll') throw new UserNotAllowedException('Banned.');
    });
  const ctx = createHookContext({ dryRun: true });
  assert.deepEqual(await filter.executePreRoomCreatePrevent?.(createRoom({ displayName: 'spam' }), ctx), prevent('No spam.'));
  assert.equal(await filter.executePreRoomCreatePrevent?.(createRoom({ displayName: 'fine' }), ctx), false);
  await assert.rejects(
    async () => filter.executePreRoomUserJoined?.({ room: createRoom(), joiningUser: createUser({ username: 'troll' }), inviter: null }, ctx),
    UserNotAllowedException,
  );
});

test('every public item (exports and their members) has a doc comment, and no public type is any', () => {
  const program = ts.createProgram([path.join(PKG, 'dist', 'index.d.ts')], { strict: true });
  const checker = program.getTypeChecker();
  const index = program.getSourceFile(path.join(PKG, 'dist', 'index.d.ts'));
  assert.ok(index);
  const moduleSymbol = checker.getSymbolAtLocation(index);
  assert.ok(moduleSymbol);
  const missing: string[] = [];
  const anys: string[] = [];
  const documented = (symbol: ts.Symbol) => symbol.getDocumentationComment(checker).length > 0;
  for (const exported of checker.getExportsOfModule(moduleSymbol)) {
    const symbol = exported.flags & ts.SymbolFlags.Alias ? checker.getAliasedSymbol(exported) : exported;
    if (!documented(symbol)) missing.push(exported.name);
    const decl = symbol.declarations?.[0];
    if (!decl) continue;
    if (symbol.flags & (ts.SymbolFlags.Class | ts.SymbolFlags.Interface)) {
      const type = checker.getDeclaredTypeOfSymbol(symbol);
      for (const member of checker.getPropertiesOfType(type)) {
        const memberDecl = member.declarations?.[0];
        if (!memberDecl || memberDecl.getSourceFile().fileName.includes('node_modules')) continue; // inherited from Error etc.
        const modifiers = ts.getCombinedModifierFlags(memberDecl as ts.Declaration);
        if (modifiers & (ts.ModifierFlags.Private | ts.ModifierFlags.Protected)) continue;
        if (!documented(member)) missing.push(`${exported.name}.${member.name}`);
        const text = checker.typeToString(checker.getTypeOfSymbolAtLocation(member, memberDecl));
        if (/\bany\b/.test(text)) anys.push(`${exported.name}.${member.name}: ${text}`);
      }
    }
  }
  assert.deepEqual(missing, [], `undocumented: ${missing.join(', ')}`);
  assert.deepEqual(anys, []);
});
