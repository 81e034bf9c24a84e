#!/usr/bin/env node
// A chat backend in Node.js calling the roomhooks sidecar, with the four example apps connected.
//
// It loads ../../../proto at run time with @grpc/proto-loader (protobufjs ships the Google
// well-known types), plays four scenarios and checks every answer: it prints what it got, and
// exits 1 listing every difference from what the example apps should answer.
//
// Usage: node backend.js [ADDR]   (ADDR defaults to $ROOMHOOKS_ADDR, then 127.0.0.1:50051)
'use strict';

const path = require('node:path');
const fs = require('node:fs');
const crypto = require('node:crypto');
const { isDeepStrictEqual } = require('node:util');
const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');

const PROTO_ROOT = path.resolve(__dirname, '..', '..', '..', 'proto');
const DEADLINE_MS = 5000;
const EXPECTED_APPS = ['word-filter', 'extender', 'slug-normaliser', 'audit-logger'];

function loadPackage() {
  const dir = path.join(PROTO_ROOT, 'roomhooks', 'v1');
  const files = fs.readdirSync(dir).filter((f) => f.endsWith('.proto')).sort()
    .map((f) => `roomhooks/v1/${f}`);
  const definition = protoLoader.loadSync(files, {
    includeDirs: [PROTO_ROOT],
    longs: String, // uint64 (duration_us, counters) as decimal strings
    enums: String, // enum values by name, e.g. OUTCOME_STATUS_ALLOWED
    defaults: true, // print false / 0 / empty fields too
    oneofs: true,
  });
  return grpc.loadPackageDefinition(definition).roomhooks.v1;
}

// Promisifies one unary call, with a deadline.
function call(client, method, request) {
  return new Promise((resolve, reject) => {
    const deadline = new Date(Date.now() + DEADLINE_MS);
    client[method](request, { deadline }, (err, response) => (err ? reject(err) : resolve(response)));
  });
}

const differences = [];
function expect(what, got, want) {
  if (!isDeepStrictEqual(got, want)) {
    differences.push(`${what}: got ${JSON.stringify(got)}, want ${JSON.stringify(want)}`);
  }
}

function show(title, response) {
  let verdict = 'accepted'; // a post event has no verdict
  if (response.allowed === true) verdict = 'allowed';
  if (response.allowed === false) verdict = `PREVENTED: ${response.preventions.length ? response.preventions[0].message : '(no message)'}`;
  console.log(`${title}: ${verdict}`);
  for (const o of response.outcomes) {
    const hook = o.hook.replace(/^HOOK_INTERFACE_/, '');
    const status = o.status.replace(/^OUTCOME_STATUS_/, '');
    console.log(`    ${o.appId.padEnd(16)} ${hook.padEnd(24)} ${status.padEnd(10)} ${o.durationUs.padStart(7)} us  ${o.detail}`);
  }
}

const statuses = (response) => response.outcomes.map((o) => [o.appId, o.status]);
const user = (username) => ({ id: `u-${username}`, username, name: username });

async function checkApps(admin) {
  const { apps } = await call(admin, 'ListApps', {});
  const connected = apps.filter((a) => a.instances.length > 0).map((a) => a.appId).sort();
  const missing = EXPECTED_APPS.filter((name) => !connected.includes(name));
  if (missing.length > 0) {
    throw new Error(`example apps not connected: ${missing.join(', ')} (connected: ${connected.join(', ') || 'none'})`);
  }
  console.log(`${connected.length} apps connected: ${connected.join(', ')}`);
}

async function runScenarios(hooks) {
  const owner = user('owner');

  // (a) A room every app lets through: extended, then re-slugged.
  const party = {
    displayName: 'Launch Party', slugifiedName: 'Launch Party!', type: 'ROOM_TYPE_CHANNEL',
    creator: owner, memberUsernames: ['owner'],
  };
  const created = await call(hooks, 'PreRoomCreate', { room: party, requestId: 'js-create-1' });
  show('PreRoomCreate "Launch Party"', created);
  const room = created.room;
  const fields = Object.fromEntries(
    Object.entries(room.customFields ? room.customFields.fields : {}).map(([k, v]) => [k, v[v.kind]]),
  );
  console.log(`    final room: ${JSON.stringify({
    displayName: room.displayName, slugifiedName: room.slugifiedName, type: room.type,
    memberUsernames: room.memberUsernames, customFields: fields,
  })}`);
  expect('create: allowed', created.allowed, true);
  expect('create: custom field created_via', fields.created_via, 'roomhooks');
  expect('create: slug', room.slugifiedName, 'launch-party');
  expect('create: members', room.memberUsernames, ['owner', 'welcome-bot']);
  expect('create: outcomes', statuses(created), [
    ['word-filter', 'OUTCOME_STATUS_ALLOWED'],
    ['extender', 'OUTCOME_STATUS_CHANGED'],
    ['slug-normaliser', 'OUTCOME_STATUS_CHANGED'],
  ]);

  // (b) A room the word filter vetoes.
  const spam = { displayName: 'spam corner', type: 'ROOM_TYPE_CHANNEL', creator: owner };
  const vetoed = await call(hooks, 'PreRoomCreate', { room: spam, requestId: 'js-create-2' });
  show('PreRoomCreate "spam corner"', vetoed);
  expect('spam: allowed', vetoed.allowed, false);
  expect('spam: first prevention', vetoed.preventions.slice(0, 1).map((p) => [p.appId, p.message]),
    [['word-filter', 'Room names may not contain "spam".']]);

  // (c) Joins: alice is welcome, troll is banned.
  const stored = {
    id: 'r-launch-party', displayName: 'Launch Party', slugifiedName: 'launch-party',
    type: 'ROOM_TYPE_CHANNEL', creator: owner, memberUsernames: ['owner', 'welcome-bot'],
  };
  for (const [name, allowed, message] of [['alice', true, null], ['troll', false, 'troll is banned from this server.']]) {
    const joined = await call(hooks, 'PreRoomUserJoin', {
      context: { room: stored, joiningUser: user(name) }, requestId: `js-join-${name}`,
    });
    show(`PreRoomUserJoin "${name}"`, joined);
    expect(`join ${name}: allowed`, joined.allowed, allowed);
    expect(`join ${name}: message`, joined.preventions.length ? joined.preventions[0].message : null, message);
    expect(`join ${name}: outcomes`, statuses(joined),
      [['word-filter', allowed ? 'OUTCOME_STATUS_ALLOWED' : 'OUTCOME_STATUS_PREVENTED']]);
  }

  // (d) A post event, waiting until the audit logger acknowledged it.
  const eventId = `js-${crypto.randomUUID()}`;
  const posted = await call(hooks, 'PostRoomCreate', { room: stored, eventId, waitForDelivery: true });
  show(`PostRoomCreate ${posted.eventId} (subscribed apps: ${posted.subscribedApps})`, posted);
  expect('post: event id', posted.eventId, eventId);
  expect('post: subscribed apps', posted.subscribedApps, 1);
  expect('post: outcomes', statuses(posted), [['audit-logger', 'OUTCOME_STATUS_DELIVERED']]);

  // (e) Several post events in one PostEvents call; one result per event, in order.
  const batchIds = [1, 2, 3].map(() => `js-${crypto.randomUUID()}`);
  const batch = await call(hooks, 'PostEvents', {
    events: batchIds.map((id) => ({ roomCreate: { room: stored, eventId: id, waitForDelivery: true } })),
  });
  for (const result of batch.results) show(`PostEvents item ${result.eventId}`, result);
  expect('batch: event ids', batch.results.map((r) => r.eventId), batchIds);
  expect('batch: outcomes', batch.results.map((r) => statuses(r)),
    batchIds.map(() => [['audit-logger', 'OUTCOME_STATUS_DELIVERED']]));
}

async function main() {
  const addr = (process.argv[2] || process.env.ROOMHOOKS_ADDR || '127.0.0.1:50051').replace(/^http:\/\//, '');
  const v1 = loadPackage();
  const credentials = grpc.credentials.createInsecure();
  const hooks = new v1.RoomHooks(addr, credentials);
  const admin = new v1.Admin(addr, credentials);
  try {
    await checkApps(admin);
    await runScenarios(hooks);
  } catch (err) {
    differences.push(err.code !== undefined ? `a call failed: ${grpc.status[err.code]}: ${err.details}` : err.message);
  } finally {
    hooks.close();
    admin.close();
  }
  if (differences.length > 0) {
    console.error('\nnode backend: FAILED, the sidecar\'s answers differ from the expected ones:');
    for (const d of differences) console.error(`  - ${d}`);
    return 1;
  }
  console.log(`\nnode backend: all checks passed (${addr})`);
  return 0;
}

main().then((code) => { process.exitCode = code; });
