import type { IncomingMessage, ServerResponse } from 'node:http';
import type { RequestHandler } from 'express';
import helmet from 'helmet';

type HeaderValue = string | number | readonly string[];

/**
 * helmet's headers, worked out once. With a fixed configuration they do not depend on the request,
 * so each response gets the same list in one step instead of through a dozen middleware. helmet
 * stays the source of every value; this only replays what it set.
 * @throws {Error} at start, if the middleware does not finish synchronously (it then depends on the request).
 */
export function precomputedHeaders(helmetMiddleware: RequestHandler): RequestHandler {
  const { headers, removed } = headersOf(helmetMiddleware);
  const list = [...headers];
  return (_req, response, next) => {
    for (const [name, value] of list) response.setHeader(name, value);
    for (const name of removed) response.removeHeader(name);
    next();
  };
}

type Directives = NonNullable<
  Exclude<Parameters<typeof helmet.contentSecurityPolicy>[0], undefined>['directives']
>;

/** The Content-Security-Policy header value helmet makes for these directives (and only these). */
export function contentSecurityPolicy(directives: Directives): string {
  const { headers } = headersOf(
    helmet.contentSecurityPolicy({ useDefaults: false, directives }) as RequestHandler,
  );
  return String(headers.get('Content-Security-Policy'));
}

/** Runs a header-setting middleware against a stand-in response and returns what it did. */
function headersOf(middleware: RequestHandler) {
  const headers = new Map<string, HeaderValue>();
  const removed = new Set<string>();
  const res = {
    setHeader: (name: string, value: HeaderValue) => headers.set(name, value),
    removeHeader: (name: string) => removed.add(name),
  };
  let done = false;
  middleware(
    {} as IncomingMessage as never,
    res as unknown as ServerResponse as never,
    () => (done = true),
  );
  if (!done)
    throw new Error('helmet did not finish synchronously: its headers depend on the request');
  return { headers, removed };
}
