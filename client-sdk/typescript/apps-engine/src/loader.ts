/**
 * Loading an Apps-Engine app package as Apps-Engine does: a `.zip` from `rc-apps package` (or the
 * unpacked folder), its `app.json`, the `requiredApiVersion` check against the bundled
 * `@rocket.chat/apps-engine`, and the app's code run with a `require` that maps
 * `@rocket.chat/apps-engine/…` to that package (so `App`, `UserNotAllowedException` and the enums
 * are the real ones).
 *
 * @module
 */

import * as fs from 'node:fs';
import { builtinModules, createRequire } from 'node:module';
import * as os from 'node:os';
import * as path from 'node:path';
import * as vm from 'node:vm';
import AdmZip = require('adm-zip');
import * as semver from 'semver';
import { App } from '@rocket.chat/apps-engine/definition/App';
import type { IAppInfo } from '@rocket.chat/apps-engine/definition/metadata';
import { AppLoadError } from './errors';

/** The version of `@rocket.chat/apps-engine` this runner bundles (apps' `requiredApiVersion` is checked against it). */
export const ENGINE_VERSION: string = (require('@rocket.chat/apps-engine/package.json') as { version: string }).version;

/** An unpacked package: its folder, its `app.json`, and how to clean up. */
export interface AppPackage {
  /** The folder holding `app.json` (a temporary one for a zip). */
  readonly dir: string;
  /** `app.json`. */
  readonly info: IAppInfo;
  /** The compiled class file (`classFile`, `.ts` read as `.js`). */
  readonly classFile: string;
  /** Removes the temporary folder of a zip (nothing for a folder). */
  cleanup(): void;
}

/** The constructor of an Apps-Engine app class. */
export type AppClass = new (...args: ConstructorParameters<typeof App>) => App;

/** Unpacks `source` (a `.zip` or a folder with `app.json`) and checks its `app.json`. */
export function openPackage(source: string): AppPackage {
  if (!fs.existsSync(source)) throw new AppLoadError(`no app package at ${source}: give an rc-apps .zip or a folder with app.json`);
  let dir: string;
  let cleanup = () => {};
  if (fs.statSync(source).isDirectory()) {
    dir = path.resolve(source);
  } else {
    const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'roomhooks-apps-engine-'));
    cleanup = () => fs.rmSync(tmp, { recursive: true, force: true });
    try {
      new AdmZip(source).extractAllTo(tmp, true);
    } catch (err) {
      cleanup();
      throw new AppLoadError(`cannot unzip ${source}: ${err instanceof Error ? err.message : String(err)}`);
    }
    dir = tmp;
    // rc-apps puts app.json at the root; accept one wrapping folder too.
    if (!fs.existsSync(path.join(dir, 'app.json'))) {
      const entries = fs.readdirSync(dir);
      if (entries.length === 1 && fs.existsSync(path.join(dir, entries[0], 'app.json'))) dir = path.join(dir, entries[0]);
    }
  }
  try {
    const info = readAppJson(dir, source);
    const classFile = path.join(dir, info.classFile.replace(/\.ts$/, '.js'));
    if (!fs.existsSync(classFile)) {
      throw new AppLoadError(`${source}: app.json classFile "${info.classFile}" is not in the package (looked for ${path.relative(dir, classFile)}); build it with rc-apps package`);
    }
    return { dir, info, classFile, cleanup };
  } catch (err) {
    cleanup();
    throw err;
  }
}

function readAppJson(dir: string, source: string): IAppInfo {
  const file = path.join(dir, 'app.json');
  if (!fs.existsSync(file)) throw new AppLoadError(`${source} has no app.json at its root: is it an Apps-Engine app package?`);
  let info: Record<string, unknown>;
  try {
    info = JSON.parse(fs.readFileSync(file, 'utf8')) as Record<string, unknown>;
  } catch (err) {
    throw new AppLoadError(`${source}: app.json is not JSON: ${err instanceof Error ? err.message : String(err)}`);
  }
  for (const key of ['id', 'name', 'version', 'classFile', 'requiredApiVersion']) {
    if (typeof info[key] !== 'string' || info[key] === '') throw new AppLoadError(`${source}: app.json has no "${key}" (a string)`);
  }
  if (!Array.isArray(info.implements)) throw new AppLoadError(`${source}: app.json has no "implements" (a list of interface names)`);
  const required = info.requiredApiVersion as string;
  if (semver.validRange(required) === null) {
    throw new AppLoadError(`${source}: app.json requiredApiVersion "${required}" is not a semver range (e.g. "^1.44.0")`);
  }
  if (!semver.satisfies(ENGINE_VERSION, required)) {
    throw new AppLoadError(
      `the app ${String(info.name)} requires Apps-Engine ${required}, but this runner implements @rocket.chat/apps-engine ${ENGINE_VERSION}: ` +
        `rebuild the app against a version in that range or use a runner built on a matching Apps-Engine`,
    );
  }
  return {
    nameSlug: String(info.name).toLowerCase().replace(/[^a-z0-9]+/g, '-'),
    description: '',
    author: { name: '', support: '', homepage: '' },
    iconFile: '',
    ...info,
  } as IAppInfo;
}

/** Whether `id` names `@rocket.chat/apps-engine` or a module in it. */
function isEngine(id: string): boolean {
  return id === '@rocket.chat/apps-engine' || id.startsWith('@rocket.chat/apps-engine/');
}

const BUILTINS = new Set(builtinModules);

/**
 * Runs the package's class file and returns its app class (the first export, as Apps-Engine takes
 * it). The app's `require` resolves `@rocket.chat/apps-engine/…` to the runner's copy, Node's
 * built-ins to themselves, relative paths inside the package (loaded the same way), and other
 * packages from the package's own `node_modules`.
 */
export function loadAppClass(pkg: AppPackage): AppClass {
  const cache = new Map<string, { exports: unknown }>();
  const load = (file: string): unknown => {
    const cached = cache.get(file);
    if (cached) return cached.exports;
    const module = { exports: {} as unknown };
    cache.set(file, module);
    if (file.endsWith('.json')) {
      module.exports = JSON.parse(fs.readFileSync(file, 'utf8'));
      return module.exports;
    }
    const source = fs.readFileSync(file, 'utf8');
    const wrapper = vm.runInThisContext(`(function (exports, require, module, __filename, __dirname) {${source}\n})`, { filename: file }) as (
      exports: unknown,
      require: (id: string) => unknown,
      module: { exports: unknown },
      filename: string,
      dirname: string,
    ) => void;
    wrapper.call(module.exports, module.exports, requireFrom(file), module, file, path.dirname(file));
    return module.exports;
  };
  const requireFrom = (file: string) => {
    const nodeRequire = createRequire(file);
    return (id: string): unknown => {
      if (isEngine(id)) return require(require.resolve(id));
      if (BUILTINS.has(id) || id.startsWith('node:')) return require(id);
      if (id.startsWith('./') || id.startsWith('../') || id === '.' || id === '..') {
        const base = path.resolve(path.dirname(file), id);
        const found = [base, `${base}.js`, `${base}.json`, path.join(base, 'index.js')].find((f) => fs.existsSync(f) && fs.statSync(f).isFile());
        if (!found) throw new Error(`Cannot find module '${id}' from ${path.relative(pkg.dir, file)} in the app package`);
        if (!path.resolve(found).startsWith(pkg.dir + path.sep)) throw new Error(`the app may not require '${id}': it is outside its package`);
        return load(found);
      }
      return nodeRequire(id); // the package's own node_modules (rc-apps bundles them)
    };
  };
  let exported: unknown;
  try {
    exported = load(pkg.classFile);
  } catch (err) {
    throw new AppLoadError(`${pkg.info.name}: running ${path.basename(pkg.classFile)} failed: ${err instanceof Error ? err.message : String(err)}`);
  }
  const candidates = typeof exported === 'function' ? [exported] : Object.values((exported ?? {}) as Record<string, unknown>);
  const cls = candidates.find((c) => typeof c === 'function');
  if (typeof cls !== 'function') throw new AppLoadError(`${pkg.info.name}: ${path.basename(pkg.classFile)} exports no class`);
  if (!(cls.prototype instanceof App)) {
    throw new AppLoadError(
      `${pkg.info.name}: the class ${cls.name} does not extend App from @rocket.chat/apps-engine/definition/App (getName, getID, getVersion, … are missing)`,
    );
  }
  return cls as AppClass;
}
