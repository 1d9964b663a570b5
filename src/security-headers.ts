import type { IncomingMessage, ServerResponse } from 'node:http';
import type { RequestHandler } from 'express';

/**
 * helmet's headers, worked out once. With a fixed configuration they do not depend on the request,
 * so each response gets the same list in one step instead of through a dozen middleware. helmet
 * stays the source of every value; this only replays what it set.
 * @throws {Error} at start, if the middleware does not finish synchronously (it then depends on the request).
 */
export function precomputedHeaders(helmetMiddleware: RequestHandler): RequestHandler {
  const headers = new Map<string, string | number | readonly string[]>();
  const removed = new Set<string>();
  const res = {
    setHeader: (name: string, value: string | number | readonly string[]) =>
      headers.set(name, value),
    removeHeader: (name: string) => removed.add(name),
  };
  let done = false;
  helmetMiddleware(
    {} as IncomingMessage as never,
    res as unknown as ServerResponse as never,
    () => (done = true),
  );
  if (!done)
    throw new Error('helmet did not finish synchronously: its headers depend on the request');
  const list = [...headers];
  return (_req, response, next) => {
    for (const [name, value] of list) response.setHeader(name, value);
    for (const name of removed) response.removeHeader(name);
    next();
  };
}
