/**
 * The `roomhooks.v1` package loaded at run time from the package's `proto/` (copied from the
 * repository's `proto/` by `npm run build`), typed by the code `proto-loader-gen-types` generated
 * from the same files with the same options.
 *
 * @module
 * @internal
 */

import * as fs from 'node:fs';
import * as path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import type { ProtoGrpcType as AppRuntimeProto } from './generated/app_runtime';
import type { ProtoGrpcType as HooksProto } from './generated/hooks';
import type { ProtoGrpcType as AdminProto } from './generated/admin';
import type { AppMessage } from './generated/roomhooks/v1/AppMessage';
import type { RuntimeMessage__Output } from './generated/roomhooks/v1/RuntimeMessage';

/** The options the generated types were made with (scripts/generate.js passes the same). */
export const LOADER_OPTIONS: protoLoader.Options = {
  keepCase: false,
  longs: String,
  enums: String,
  defaults: true,
  oneofs: true,
};

/** The v1 package: message types and service client constructors. */
export type V1 = AppRuntimeProto['roomhooks']['v1'] & HooksProto['roomhooks']['v1'] & AdminProto['roomhooks']['v1'];

/** How the app stream's messages are encoded: protobufjs, through proto-loader (what grpc-js would use). */
export interface AppStreamCodec {
  /** The method's path, `/roomhooks.v1.AppRuntime/Connect`. */
  path: string;
  /** Encodes an app's message. */
  serialize(message: AppMessage): Buffer;
  /** Decodes a sidecar's message (throws on bytes that are not one). */
  deserialize(bytes: Buffer): RuntimeMessage__Output;
}

let loaded: { pkg: V1; codec: AppStreamCodec } | undefined;

/** Where the protos are: the package's own copy, else the repository's (running from a source checkout). */
function protoRoot(): string {
  const candidates = [path.resolve(__dirname, '..', 'proto'), path.resolve(__dirname, '..', '..', '..', 'proto')];
  for (const dir of candidates) {
    if (fs.existsSync(path.join(dir, 'roomhooks', 'v1', 'app_runtime.proto'))) return dir;
  }
  throw new Error(`roomhooks-sdk: the protos are missing (looked in ${candidates.join(', ')}); run \`npm run build\``);
}

function load(): { pkg: V1; codec: AppStreamCodec } {
  if (!loaded) {
    const root = protoRoot();
    const files = ['admin.proto', 'app_runtime.proto', 'hooks.proto', 'room.proto'].map((f) => `roomhooks/v1/${f}`);
    const definition = protoLoader.loadSync(files, { ...LOADER_OPTIONS, includeDirs: [root] });
    const pkg = grpc.loadPackageDefinition(definition) as unknown as { roomhooks: { v1: V1 } };
    const connect = (definition['roomhooks.v1.AppRuntime'] as protoLoader.ServiceDefinition).Connect;
    const codec: AppStreamCodec = {
      path: connect.path,
      serialize: (message) => connect.requestSerialize(message),
      deserialize: (bytes) => connect.responseDeserialize(bytes) as RuntimeMessage__Output,
    };
    loaded = { pkg: pkg.roomhooks.v1, codec };
  }
  return loaded;
}

/** The loaded package (loaded once, on first use). */
export function v1(): V1 {
  return load().pkg;
}

/** The app stream's codec (loaded with the package). */
export function appStreamCodec(): AppStreamCodec {
  return load().codec;
}
