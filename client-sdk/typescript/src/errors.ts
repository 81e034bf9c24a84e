/**
 * The exceptions handlers throw and the errors the SDK reports.
 *
 * @module
 */

/** Apps-Engine's base exception: every exception an app throws on purpose extends it. */
export class AppsEngineException extends Error {
  /** The exception's name, as Apps-Engine names it. */
  override name = 'AppsEngineException';
}

/**
 * Apps-Engine's `UserNotAllowedException`: thrown from `executePreRoomUserJoined` or
 * `executePreRoomUserLeave` (or any veto hook), it prevents the action with this message for the
 * end user.
 */
export class UserNotAllowedException extends AppsEngineException {
  /** The exception's name, as Apps-Engine names it. */
  override name = 'UserNotAllowedException';
}

/** Why the SDK could not run an app or make a backend call. */
export class SdkError extends Error {
  /** The error's name. */
  override name = 'SdkError';
}

/** The endpoint given to `run` / `Connection` / `RoomHooksClient` is not one the SDK can dial. */
export class InvalidEndpointError extends SdkError {
  /** The error's name. */
  override name = 'InvalidEndpointError';
}

/**
 * The sidecar refused the app for good (INVALID_ARGUMENT, PERMISSION_DENIED, UNAUTHENTICATED or
 * UNIMPLEMENTED): retrying cannot help, fix the registration (or the token) and restart.
 */
export class RefusedError extends SdkError {
  /** The error's name. */
  override name = 'RefusedError';
  /** The gRPC status code name the sidecar answered, e.g. `INVALID_ARGUMENT`. */
  readonly code: string;
  /** The sidecar's message, which names the field or the difference. */
  readonly details: string;

  /** A refusal with the sidecar's status code name and message. */
  constructor(code: string, details: string) {
    super(`the sidecar refused the app: ${details} (${code}); fix the registration and restart`);
    this.code = code;
    this.details = details;
  }
}
