/**
 * Apps-Engine's `IHttp` on Node's `fetch`: `get`, `post`, `put`, `del`, `patch` with Apps-Engine's
 * request options (`content`, `data` as JSON, `query`, `params`, `headers`, `auth`, `timeout`) and
 * response shape (`url`, `method`, `statusCode`, `headers`, `content`, `data` parsed from JSON).
 * A request made in a Pre hook is aborted when the roomhooks call is (CancelCall or its deadline).
 *
 * @module
 */

import type { IHttp, IHttpRequest, IHttpResponse } from '@rocket.chat/apps-engine/definition/accessors';
import { RequestMethod } from '@rocket.chat/apps-engine/definition/accessors';

/** Headers and query parameters an app declared in `extendConfiguration` (`configuration.http`). */
export interface HttpDefaults {
  /** Sent with every request unless the request sets them. */
  headers: Map<string, string>;
  /** Added to every request's query unless the request sets them. */
  params: Map<string, string>;
}

/** The timeout of a request that sets none and has no roomhooks deadline (a post handler, `initialize`), in ms. */
export const DEFAULT_HTTP_TIMEOUT_MS = 10_000;

/** An `IHttp` whose requests end when `signal` fires (the call's cancellation), or after their `timeout`. */
export function createHttp(defaults: HttpDefaults, signal?: AbortSignal): IHttp {
  const request = (method: RequestMethod) => (url: string, options?: IHttpRequest) => send(method, url, options ?? {}, defaults, signal);
  return {
    get: request(RequestMethod.GET),
    post: request(RequestMethod.POST),
    put: request(RequestMethod.PUT),
    del: request(RequestMethod.DELETE),
    patch: request(RequestMethod.PATCH),
  };
}

async function send(method: RequestMethod, url: string, options: IHttpRequest, defaults: HttpDefaults, signal?: AbortSignal): Promise<IHttpResponse> {
  const target = new URL(url);
  if (options.query) {
    const extra = new URLSearchParams(options.query);
    extra.forEach((v, k) => target.searchParams.append(k, v));
  }
  for (const [k, v] of defaults.params) if (!options.params || !(k in options.params)) target.searchParams.set(k, v);
  for (const [k, v] of Object.entries(options.params ?? {})) target.searchParams.set(k, String(v));
  const headers: Record<string, string> = {};
  for (const [k, v] of defaults.headers) headers[k.toLowerCase()] = v;
  for (const [k, v] of Object.entries(options.headers ?? {})) headers[k.toLowerCase()] = String(v);
  let body: string | undefined;
  if (options.content !== undefined) {
    body = options.content;
  } else if (options.data !== undefined) {
    body = JSON.stringify(options.data);
    headers['content-type'] ??= 'application/json';
  }
  if (options.auth) headers['authorization'] = `Basic ${Buffer.from(options.auth).toString('base64')}`;
  const timeout = AbortSignal.timeout(options.timeout ?? DEFAULT_HTTP_TIMEOUT_MS);
  const res = await fetch(target, {
    method: method.toUpperCase(),
    headers,
    body: method === RequestMethod.GET || method === RequestMethod.HEAD ? undefined : body,
    signal: signal ? AbortSignal.any([signal, timeout]) : timeout,
  });
  const content = await res.text();
  const outHeaders: Record<string, string> = {};
  res.headers.forEach((v, k) => (outHeaders[k] = v));
  const response: IHttpResponse = { url: target.toString(), method, statusCode: res.status, headers: outHeaders, content };
  if (content !== '') {
    try {
      response.data = JSON.parse(content);
    } catch {
      // Not JSON: `data` stays undefined, as in Apps-Engine.
    }
  }
  return response;
}
