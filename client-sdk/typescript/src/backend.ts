/**
 * A typed client for chat backends written for Node.js: the nine `RoomHooks` calls, with rooms
 * and users in the SDK's domain types (custom fields as plain JSON).
 *
 * @module
 */

import * as grpc from '@grpc/grpc-js';
import { channelOptions, credentialsFor, parseEndpoint } from './connection';
import type { TlsOptions } from './connection';
import type { AppOutcome__Output } from './generated/roomhooks/v1/AppOutcome';
import type { PostEventResponse__Output } from './generated/roomhooks/v1/PostEventResponse';
import type { PreRoomCreateResponse__Output } from './generated/roomhooks/v1/PreRoomCreateResponse';
import type { Warning__Output } from './generated/roomhooks/v1/Warning';
import type { PostEventsResponse__Output } from './generated/roomhooks/v1/PostEventsResponse';
import type { PreventResponse__Output } from './generated/roomhooks/v1/PreventResponse';
import type { Prevention__Output } from './generated/roomhooks/v1/Prevention';
import type { RoomHooksClient as RawClient } from './generated/roomhooks/v1/RoomHooks';
import type { Room, RoomInput, RoomUserJoinedInput, RoomUserLeaveInput } from './types';
import { joinedToWire, leaveToWire, roomFromWire, roomToWire } from './types';
import { v1 } from './wire';

/** What one app did in one call (the proto's `AppOutcome`). */
export type AppOutcome = AppOutcome__Output;
/** One app's veto (the proto's `Prevention`). */
export type Prevention = Prevention__Output;
/** A warning an app gave with its answer, to show the user (the proto's `Warning`). */
export type Warning = Warning__Output;
/** The verdict of a veto hook (the proto's `PreventResponse`). */
export type PreventResponse = PreventResponse__Output;
/** The answer to a Post call (the proto's `PostEventResponse`). */
export type PostEventResponse = PostEventResponse__Output;

/** The verdict of a room creation, with the room to store. */
export interface PreRoomCreateResponse {
  /** False when any app prevented the creation (or a fail-closed app was unavailable). */
  allowed: boolean;
  /** Every veto, in app order; show the first one's message to the user. */
  preventions: Prevention[];
  /** The room to store: the request's room with Extend's additions and Modify's changes. */
  room: Room;
  /** What each app called did, in call order (Prevent apps, then Extend, then Modify; shadow apps last). */
  outcomes: AppOutcome[];
  /** Warnings from veto apps (`warn(message)`), in app order, to show the user; they do not change `allowed`. */
  warnings: Warning[];
}

/** Asks whether a room may be created, and how apps extend and modify it. */
export interface PreRoomCreateRequest {
  /** The room to create; `type` must be set, `id` is normally empty. */
  room: RoomInput;
  /** Passed to apps: they must not cause side effects. */
  dryRun?: boolean;
  /** The backend's id for this request, passed to apps and logged. */
  requestId?: string;
}

/** Asks whether a room may be deleted. */
export interface PreRoomDeleteRequest {
  /** The room to delete; `id` is required. */
  room: RoomInput;
  /** Passed to apps: they must not cause side effects. */
  dryRun?: boolean;
  /** The backend's id for this request. */
  requestId?: string;
}

/** Asks whether a user may join a room. */
export interface PreRoomUserJoinRequest {
  /** The room (with `id`), the joining user (required) and the inviter (optional). */
  context: RoomUserJoinedInput;
  /** Passed to apps: they must not cause side effects. */
  dryRun?: boolean;
  /** The backend's id for this request. */
  requestId?: string;
}

/** Asks whether a user may leave a room. */
export interface PreRoomUserLeaveRequest {
  /** The room (with `id`), the leaving user (required) and who removed them (optional). */
  context: RoomUserLeaveInput;
  /** Passed to apps: they must not cause side effects. */
  dryRun?: boolean;
  /** The backend's id for this request. */
  requestId?: string;
}

/** What every Post request has. */
interface PostOptions {
  /** The backend's id for the event, used for de-duplication; absent = the sidecar assigns one. */
  eventId?: string;
  /** Wait until every subscribed app acknowledged the event (or timed out) before answering. */
  waitForDelivery?: boolean;
}

/** Notifies that a room was created (the room must have its `id`). */
export interface PostRoomCreateRequest extends PostOptions {
  /** The stored room. */
  room: RoomInput;
}

/** Notifies that a room was deleted. */
export interface PostRoomDeletedRequest extends PostOptions {
  /** The deleted room. */
  room: RoomInput;
}

/** Notifies that a user joined a room. */
export interface PostRoomUserJoinedRequest extends PostOptions {
  /** The room (with `id`), the user who joined (required) and the inviter (optional). */
  context: RoomUserJoinedInput;
}

/** Notifies that a user left a room. */
export interface PostRoomUserLeaveRequest extends PostOptions {
  /** The room (with `id`), the user who left (required) and who removed them (optional). */
  context: RoomUserLeaveInput;
}

/** One event of a `postEvents` batch: exactly one of the four. */
export type PostEventsItem =
  | { roomCreate: PostRoomCreateRequest }
  | { roomDeleted: PostRoomDeletedRequest }
  | { userJoined: PostRoomUserJoinedRequest }
  | { userLeave: PostRoomUserLeaveRequest };

/** Options of a backend client. */
export interface RoomHooksClientOptions {
  /** The backend token, sent as `authorization: Bearer <token>` on every call. */
  token?: string;
  /** A gRPC deadline for every call, in ms (the sidecar answers before it passes); absent = none. */
  deadlineMs?: number;
  /** TLS settings, for an `https://` endpoint. */
  tls?: TlsOptions;
}

/** Per-call options. */
export interface CallOptions {
  /** A deadline for this call, in ms (overrides the client's). */
  deadlineMs?: number;
  /** Aborting it cancels the call (the sidecar then cancels its app calls). */
  signal?: AbortSignal;
  /** A W3C trace context to send as the `traceparent` header; apps see it as `ctx.traceparent`. */
  traceparent?: string;
}

/** A gRPC error from the sidecar: `code` is the status code (e.g. `grpc.status.INVALID_ARGUMENT`), `details` its message. */
export type RoomHooksError = grpc.ServiceError;

/** Calls the sidecar on behalf of a chat backend; one HTTP/2 connection, opened on the first call. */
export class RoomHooksClient {
  private readonly raw: RawClient;
  private readonly metadata: grpc.Metadata;
  private readonly deadlineMs: number | undefined;

  /** A client for the sidecar at `endpoint` (e.g. `http://127.0.0.1:50051`; without a scheme `http://` is assumed). */
  constructor(endpoint: string, options: RoomHooksClientOptions = {}) {
    const target = parseEndpoint(endpoint, options.tls !== undefined);
    const Client = v1().RoomHooks;
    // Unary calls keep grpc-js's transparent retries (channelOptions turns them off for app streams).
    this.raw = new Client(target.address, credentialsFor(target, options.tls), { ...channelOptions(options.tls), 'grpc.enable_retries': 1 });
    this.metadata = new grpc.Metadata();
    if (options.token !== undefined) this.metadata.set('authorization', `Bearer ${options.token}`);
    this.deadlineMs = options.deadlineMs;
  }

  private unary<Res>(
    invoke: (md: grpc.Metadata, opts: grpc.CallOptions, cb: grpc.requestCallback<Res>) => grpc.ClientUnaryCall,
    options: CallOptions | undefined,
  ): Promise<Res> {
    return new Promise<Res>((resolve, reject) => {
      const deadlineMs = options?.deadlineMs ?? this.deadlineMs;
      const callOptions: grpc.CallOptions = deadlineMs === undefined ? {} : { deadline: new Date(Date.now() + deadlineMs) };
      const signal = options?.signal;
      const metadata = this.metadata.clone();
      if (options?.traceparent) metadata.set('traceparent', options.traceparent);
      const call = invoke(metadata, callOptions, (err, response) => {
        signal?.removeEventListener('abort', onAbort);
        if (err) reject(err);
        else if (response === undefined) reject(new Error('the sidecar sent no response'));
        else resolve(response);
      });
      const onAbort = () => call.cancel();
      if (signal?.aborted) call.cancel();
      else signal?.addEventListener('abort', onAbort, { once: true });
    });
  }

  /** Runs Prevent, then Extend, then Modify for a room about to be created. */
  async preRoomCreate(request: PreRoomCreateRequest, options?: CallOptions): Promise<PreRoomCreateResponse> {
    const response = await this.unary<PreRoomCreateResponse__Output>((md, o, cb) => this.raw.PreRoomCreate({ room: roomToWire(request.room, 'room'), dryRun: request.dryRun ?? false, requestId: request.requestId ?? '' }, md, o, cb), options);
    return { allowed: response.allowed, preventions: response.preventions, room: roomFromWire(response.room), outcomes: response.outcomes, warnings: response.warnings };
  }

  /** Asks whether a room may be deleted. */
  preRoomDelete(request: PreRoomDeleteRequest, options?: CallOptions): Promise<PreventResponse> {
    return this.unary<PreventResponse__Output>((md, o, cb) => this.raw.PreRoomDelete({ room: roomToWire(request.room, 'room'), dryRun: request.dryRun ?? false, requestId: request.requestId ?? '' }, md, o, cb), options);
  }

  /** Asks whether a user may join a room. */
  preRoomUserJoin(request: PreRoomUserJoinRequest, options?: CallOptions): Promise<PreventResponse> {
    return this.unary<PreventResponse__Output>((md, o, cb) => this.raw.PreRoomUserJoin({ context: joinedToWire(request.context), dryRun: request.dryRun ?? false, requestId: request.requestId ?? '' }, md, o, cb), options);
  }

  /** Asks whether a user may leave a room. */
  preRoomUserLeave(request: PreRoomUserLeaveRequest, options?: CallOptions): Promise<PreventResponse> {
    return this.unary<PreventResponse__Output>((md, o, cb) => this.raw.PreRoomUserLeave({ context: leaveToWire(request.context), dryRun: request.dryRun ?? false, requestId: request.requestId ?? '' }, md, o, cb), options);
  }

  /** Notifies that a room was created. */
  postRoomCreate(request: PostRoomCreateRequest, options?: CallOptions): Promise<PostEventResponse> {
    return this.unary<PostEventResponse__Output>((md, o, cb) => this.raw.PostRoomCreate(roomEvent(request), md, o, cb), options);
  }

  /** Notifies that a room was deleted. */
  postRoomDeleted(request: PostRoomDeletedRequest, options?: CallOptions): Promise<PostEventResponse> {
    return this.unary<PostEventResponse__Output>((md, o, cb) => this.raw.PostRoomDeleted(roomEvent(request), md, o, cb), options);
  }

  /** Notifies that a user joined a room. */
  postRoomUserJoined(request: PostRoomUserJoinedRequest, options?: CallOptions): Promise<PostEventResponse> {
    return this.unary<PostEventResponse__Output>((md, o, cb) => this.raw.PostRoomUserJoined(joinedEvent(request), md, o, cb), options);
  }

  /** Notifies that a user left a room. */
  postRoomUserLeave(request: PostRoomUserLeaveRequest, options?: CallOptions): Promise<PostEventResponse> {
    return this.unary<PostEventResponse__Output>((md, o, cb) => this.raw.PostRoomUserLeave(leaveEvent(request), md, o, cb), options);
  }

  /** Sends many post events in one call (the fast path for high event rates): one result per event, in order; one invalid event refuses the batch. */
  async postEvents(events: PostEventsItem[], options?: CallOptions): Promise<PostEventResponse[]> {
    const items = events.map((item) => {
      if ('roomCreate' in item) return { roomCreate: roomEvent(item.roomCreate) };
      if ('roomDeleted' in item) return { roomDeleted: roomEvent(item.roomDeleted) };
      if ('userJoined' in item) return { userJoined: joinedEvent(item.userJoined) };
      return { userLeave: leaveEvent(item.userLeave) };
    });
    const response = await this.unary<PostEventsResponse__Output>((md, o, cb) => this.raw.PostEvents({ events: items }, md, o, cb), options);
    return response.results;
  }

  /** Closes the connection. */
  close(): void {
    this.raw.close();
  }
}

function roomEvent(request: PostRoomCreateRequest | PostRoomDeletedRequest) {
  return { room: roomToWire(request.room, 'room'), eventId: request.eventId ?? '', waitForDelivery: request.waitForDelivery ?? false };
}

function joinedEvent(request: PostRoomUserJoinedRequest) {
  return { context: joinedToWire(request.context), eventId: request.eventId ?? '', waitForDelivery: request.waitForDelivery ?? false };
}

function leaveEvent(request: PostRoomUserLeaveRequest) {
  return { context: leaveToWire(request.context), eventId: request.eventId ?? '', waitForDelivery: request.waitForDelivery ?? false };
}

/** The message to show the end user when an action was prevented: the first veto's, or `undefined` when allowed. */
export function userMessage(response: { allowed: boolean; preventions: Prevention[] }): string | undefined {
  return response.allowed ? undefined : (response.preventions[0]?.message ?? '');
}
