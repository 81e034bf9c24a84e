/**
 * Apps-Engine's persistence (`IPersistence`, `IPersistenceRead`): records of JSON data with
 * associations, durable in one SQLite file per app under `--data-dir` (better-sqlite3), so they
 * survive a runner restart.
 *
 * @module
 */

import { randomUUID } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import Database = require('better-sqlite3');
import type { IPersistence, IPersistenceRead } from '@rocket.chat/apps-engine/definition/accessors';
import type { RocketChatAssociationRecord } from '@rocket.chat/apps-engine/definition/metadata';

/** An association as stored: the model (`room`, `user`, `misc`, …) and the id. */
interface Assoc {
  model: string;
  id: string;
}

function assocOf(record: RocketChatAssociationRecord): Assoc {
  if (!record || typeof record.getModel !== 'function' || typeof record.getID !== 'function') {
    throw new TypeError('an association must be a RocketChatAssociationRecord (new RocketChatAssociationRecord(model, id))');
  }
  return { model: String(record.getModel()), id: String(record.getID()) };
}

function unique(assocs: Assoc[]): Assoc[] {
  const seen = new Map<string, Assoc>();
  for (const a of assocs) seen.set(`${a.model}\u0000${a.id}`, a);
  return [...seen.values()];
}

function dataOf(data: object): string {
  if (data === null || typeof data !== 'object') throw new TypeError('persistence data must be an object');
  return JSON.stringify(data);
}

/** One app's durable store: `<dataDir>/<appId>.sqlite`. */
export class AppStore {
  private readonly db: Database.Database;

  /** Opens (or creates) the store of `appId` in `dataDir`. */
  constructor(dataDir: string, appId: string) {
    fs.mkdirSync(dataDir, { recursive: true });
    this.db = new Database(path.join(dataDir, `${appId}.sqlite`));
    this.db.pragma('journal_mode = WAL');
    this.db.pragma('foreign_keys = ON');
    this.db.exec(`
      CREATE TABLE IF NOT EXISTS records (id TEXT PRIMARY KEY, data TEXT NOT NULL);
      CREATE TABLE IF NOT EXISTS associations (
        record_id TEXT NOT NULL REFERENCES records(id) ON DELETE CASCADE,
        model TEXT NOT NULL,
        assoc_id TEXT NOT NULL,
        PRIMARY KEY (record_id, model, assoc_id)
      );
      CREATE INDEX IF NOT EXISTS associations_by_key ON associations (model, assoc_id);
    `);
  }

  /** Closes the file. */
  close(): void {
    if (this.db.open) this.db.close();
  }

  private insert(data: object, assocs: Assoc[]): string {
    const id = randomUUID();
    const body = dataOf(data);
    this.db.transaction(() => {
      this.db.prepare('INSERT INTO records (id, data) VALUES (?, ?)').run(id, body);
      const add = this.db.prepare('INSERT INTO associations (record_id, model, assoc_id) VALUES (?, ?, ?)');
      for (const a of unique(assocs)) add.run(id, a.model, a.id);
    })();
    return id;
  }

  /**
   * The ids and data of the records carrying every association in `assocs`, oldest first; with
   * `exactly`, only those carrying no other association.
   */
  private matching(assocs: Assoc[], exactly = false): { id: string; data: string }[] {
    const keys = unique(assocs);
    if (keys.length === 0) return [];
    const where = keys.map(() => '(a.model = ? AND a.assoc_id = ?)').join(' OR ');
    const only = exactly ? 'AND (SELECT COUNT(*) FROM associations a WHERE a.record_id = r.id) = ?' : '';
    const sql = `SELECT r.id AS id, r.data AS data FROM records r
      WHERE (SELECT COUNT(*) FROM associations a WHERE a.record_id = r.id AND (${where})) = ? ${only}
      ORDER BY r.rowid`;
    const counts = exactly ? [keys.length, keys.length] : [keys.length];
    return this.db.prepare(sql).all(...keys.flatMap((k) => [k.model, k.id]), ...counts) as { id: string; data: string }[];
  }

  private remove(ids: string[]): void {
    const del = this.db.prepare('DELETE FROM records WHERE id = ?');
    this.db.transaction(() => ids.forEach((id) => del.run(id)))();
  }

  /** Apps-Engine's `IPersistence` for this store. */
  persistence(): IPersistence {
    return {
      create: async (data) => this.insert(data, []),
      createWithAssociation: async (data, association) => this.insert(data, [assocOf(association)]),
      createWithAssociations: async (data, associations) => this.insert(data, associations.map(assocOf)),
      update: async (id, data, upsert = false) => {
        const body = dataOf(data);
        const changed = this.db.prepare('UPDATE records SET data = ? WHERE id = ?').run(body, id).changes;
        if (changed === 0) {
          if (!upsert) throw new Error(`persistence.update: no record with id "${id}" (pass upsert = true to create it)`);
          this.db.prepare('INSERT INTO records (id, data) VALUES (?, ?)').run(id, body);
        }
        return id;
      },
      updateByAssociation: async (association, data, upsert = false) => this.updateBy([assocOf(association)], data, upsert),
      updateByAssociations: async (associations, data, upsert = false) => this.updateBy(associations.map(assocOf), data, upsert),
      remove: async (id) => {
        const row = this.db.prepare('SELECT data FROM records WHERE id = ?').get(id) as { data: string } | undefined;
        if (!row) return undefined as unknown as object;
        this.remove([id]);
        return JSON.parse(row.data) as object;
      },
      removeByAssociation: async (association) => this.removeBy([assocOf(association)]),
      removeByAssociations: async (associations) => this.removeBy(associations.map(assocOf)),
    };
  }

  private updateBy(assocs: Assoc[], data: object, upsert: boolean): string {
    const body = dataOf(data);
    // As Rocket.Chat's AppPersistenceBridge (`updateOne({ appId, associations }, …)`): one
    // record, whose associations are exactly these (Mongo's array equality; here in any order),
    // the oldest when several are.
    const found = this.matching(assocs, true)[0];
    if (found) {
      this.db.prepare('UPDATE records SET data = ? WHERE id = ?').run(body, found.id);
      return found.id;
    }
    if (!upsert) throw new Error('persistence.updateByAssociations: no record has these associations (pass upsert = true to create it)');
    return this.insert(data, assocs);
  }

  private removeBy(assocs: Assoc[]): object[] {
    const found = this.matching(assocs);
    this.remove(found.map((r) => r.id));
    return found.map((r) => JSON.parse(r.data) as object);
  }

  /** Apps-Engine's `IPersistenceRead` for this store. */
  reader(): IPersistenceRead {
    return {
      read: async (id) => {
        const row = this.db.prepare('SELECT data FROM records WHERE id = ?').get(id) as { data: string } | undefined;
        return (row ? JSON.parse(row.data) : undefined) as object;
      },
      readByAssociation: async (association) => this.matching([assocOf(association)]).map((r) => JSON.parse(r.data) as object),
      readByAssociations: async (associations) => this.matching(associations.map(assocOf)).map((r) => JSON.parse(r.data) as object),
    };
  }
}
