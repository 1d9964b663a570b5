import supertest from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  received,
  signInAtMock,
  startMockHarness,
  type MockHarness,
} from '../helpers/mock-harness.js';

/**
 * Hostile input at the two endpoints anyone can reach without a session: thousands of requests
 * built from a corpus of nasty pieces. None may give a 500, crash the process, reach the token
 * endpoint or make the app log a stack trace.
 *
 * Deterministic: every request comes from a seeded PRNG. A failure names the seed and the
 * request; rerun with FUZZ_SEED=<seed> to replay it, or another seed to explore.
 */
const SEED = Number(process.env.FUZZ_SEED ?? 0x5eed_c0de) >>> 0;
const REQUESTS_PER_ENDPOINT = 1500;
/** Stop sending early past this (a slow machine still gets a bounded run). */
const TIME_BUDGET_MS = 20_000;
/** Requests in flight at once. */
const CONCURRENCY = 8;
/**
 * Node answers 431 to a request line plus headers above 16 KB, before the app sees it: stay below,
 * so every request reaches the app. A query gets up to 12 KB, a Cookie header what is left.
 */
const MAX_QUERY = 12_000;
const MAX_REQUEST_HEAD = 15_000;

/** mulberry32: tiny, fast, and the same sequence for the same seed everywhere. */
function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

class Rng {
  private readonly next: () => number;
  constructor(seed: number) {
    this.next = mulberry32(seed);
  }
  int(n: number): number {
    return Math.floor(this.next() * n);
  }
  chance(p: number): boolean {
    return this.next() < p;
  }
  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)]!;
  }
}

type Piece = (r: Rng) => string;

const percentEncoded = (r: Rng, n: number) =>
  Array.from({ length: n }, () => `%${r.int(256).toString(16).padStart(2, '0')}`).join('');
/** Printable ASCII without '#', which would end the URL's query (the client drops a fragment). */
const printable = (r: Rng, n: number) =>
  Array.from({ length: n }, () => String.fromCharCode(0x20 + r.int(95)))
    .join('')
    .replace(/#/g, '%23');

/** Query values, already in the form they take inside a URL. */
const VALUES: Piece[] = [
  (r) => percentEncoded(r, 1 + r.int(64)),
  (r) => percentEncoded(r, r.int(2700)), // up to ~8 KB once encoded
  (r) => 'A'.repeat(1 + r.int(8192)),
  (r) => printable(r, 1 + r.int(200)),
  () => encodeURIComponent('\u202e\u200f\u200e\u2066gpj.exe\u2069'), // RTL and bidi marks
  () => encodeURIComponent('𝕏😀e\u0301\ufeff\uffff\u0000'), // astral, combining, BOM, NUL
  () => '%0d%0aSet-Cookie:%20codeflow.sid=fixed',
  () => '%0D%0A%0D%0A<html>',
  () => '%00',
  () => 'a%00b',
  () => '%',
  () => '%%',
  () => '%zz',
  () => '%E0%A4%A',
  () => '%C0%AF', // overlong '/'
  () => '%ED%A0%80', // lone surrogate
  () => '%FF%FE',
  () => '%25',
  () => 'javascript:alert(1)',
  () => encodeURIComponent('javascript:alert(document.cookie)'),
  () => 'JaVaScRiPt%3Aalert(1)',
  () => 'data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==',
  () => '//evil.example',
  () => '%2F%2Fevil.example',
  () => '/\\evil.example',
  () => '/%5Cevil.example',
  () => '/%09/evil.example',
  () => '/%2e%2e/%2e%2e/etc/passwd',
  () => 'https://evil.example/',
  () => encodeURIComponent('<script>alert(1)</script>'),
  () => '"><img src=x onerror=alert(1)>',
  () => '',
  () => 'undefined',
  () => '[object Object]',
  () => '1e309',
  () => '+++',
];

const CALLBACK_KEYS = ['state', 'code', 'iss', 'error', 'error_description', 'session_state'];
const HOSTILE_KEYS = [
  'state[x]',
  'state[]',
  'returnTo[]',
  'returnTo[x]',
  '__proto__',
  '__proto__[polluted]',
  'constructor',
  'constructor[prototype][polluted]',
  'hasOwnProperty',
  'toString',
  '%73tate', // "state", encoded
  'state%00',
  'STATE',
  '',
  '%',
  '%zz',
];

/** 1 to 3 pieces, at most 8 KB. */
function value(r: Rng): string {
  let v = '';
  for (let i = 1 + r.int(3); i > 0; i--) v += r.pick(VALUES)(r);
  return v.slice(0, 8192);
}

function pair(key: string, r: Rng): string {
  if (r.chance(0.05)) return key; // no '=' at all
  return `${key}=${value(r)}`;
}

/** The query's length once the client has percent-encoded what it must (quotes, spaces...). */
const sentLength = (query: string) => new URL(`http://x/?${query}`).search.length;

/** Pairs joined, skipping any that would take the query past MAX_QUERY. */
function join(r: Rng, pairs: string[]): string {
  const separator = r.chance(0.9) ? '&' : r.pick([';', '&&', '&=&']);
  let query = '';
  for (const p of pairs) {
    const longer = query ? `${query}${separator}${p}` : p;
    if (sentLength(longer) <= MAX_QUERY) query = longer;
  }
  return query;
}

function loginQuery(r: Rng): string {
  const pairs: string[] = [];
  for (let i = r.int(5); i > 0; i--) {
    pairs.push(pair(r.chance(0.6) ? 'returnTo' : r.pick(HOSTILE_KEYS), r));
  }
  return join(r, pairs);
}

function callbackQuery(r: Rng, issuer: string): string {
  const pairs: string[] = [];
  for (let i = r.int(8); i > 0; i--) {
    const key = r.chance(0.7) ? r.pick(CALLBACK_KEYS) : r.pick(HOSTILE_KEYS);
    if (key === 'iss' && r.chance(0.3)) pairs.push(`iss=${encodeURIComponent(issuer)}`);
    else if (key === 'error_description' && r.chance(0.3)) {
      // An HTML page as the description, up to about 8 KB.
      pairs.push(`error_description=${encodeURIComponent('<h1>x</h1>'.repeat(r.int(370)))}`);
    } else pairs.push(pair(key, r));
  }
  return join(r, pairs);
}

/** A real /login's session cookie and the state it holds a transaction for. */
interface PendingSignIn {
  cookie: string;
  state: string;
}

/** A state that is not the one pending, by as little as possible. Never an equivalent encoding. */
function nearMiss(r: Rng, state: string): string {
  const swapCase = (v: string) =>
    [...v].map((c) => (c === c.toLowerCase() ? c.toUpperCase() : c.toLowerCase())).join('');
  const miss = r.pick<Piece>([
    () => state.slice(0, -1),
    () => `${state}A`,
    () => `${state.slice(0, -1)}${state.endsWith('A') ? 'B' : 'A'}`,
    () => swapCase(state),
    () => `%20${state}`,
    () => `${state}%00`,
    () => `${state}%0d%0a`,
    () => `${state}&state=${state}`, // repeated: an array, not a string
  ])(r);
  return miss === state ? `${state}A` : miss;
}

/**
 * The most dangerous callback: a session with a real pending sign-in, the right issuer, a code,
 * and a state that almost matches. Only the state stands between it and the token endpoint.
 */
function almostValidCallback(r: Rng, issuer: string, pending: PendingSignIn): string {
  const pairs = [
    `state=${nearMiss(r, pending.state)}`,
    `code=${value(r)}`,
    `iss=${encodeURIComponent(issuer)}`,
  ];
  for (let i = r.int(3); i > 0; i--) pairs.push(pair(r.pick(HOSTILE_KEYS), r));
  return join(r, pairs);
}

/** Header values a client can send (Node refuses CR, LF and NUL before they leave). */
function headers(r: Rng, realCookies: string[]): Record<string, string> {
  const h: Record<string, string> = {};
  if (r.chance(0.2)) {
    h.Host = r.pick(['evil.example', 'a'.repeat(300), '127.0.0.1:99999', '[::1', printable(r, 20)]);
  }
  if (r.chance(0.2)) {
    h['X-Forwarded-For'] = r.pick(['1.2.3.4, 5.6.7.8', 'unknown', ', , ,', printable(r, 100)]);
  }
  if (r.chance(0.15)) h['X-Forwarded-Proto'] = r.pick(['https', 'javascript', 'http, https']);
  if (r.chance(0.15)) h['X-Forwarded-Host'] = r.pick(['evil.example', printable(r, 50)]);
  if (r.chance(0.1)) h.Forwarded = 'for=1.2.3.4;proto=https;host=evil.example';
  if (r.chance(0.5)) {
    h.Accept = r.pick([
      'application/json',
      'text/html',
      '*/*',
      'application/json;q=0, text/html;q=0',
      printable(r, 40),
    ]);
  }
  if (r.chance(0.5)) {
    h.Cookie = r.pick<Piece>([
      () => 'codeflow.sid=s%3Agarbage.sig',
      () => `codeflow.sid=s%3A${printable(r, 40).replace(/[;\s]/g, '')}.${printable(r, 20)}`,
      () => 'codeflow.sid=',
      () => 'codeflow.sid=%',
      () => 'codeflow.sid=%E0%A4%A',
      () => 'codeflow.sid=a; codeflow.sid=b',
      () => '__proto__=x; constructor=y; codeflow.sid=s%3A',
      () => printable(r, 1 + r.int(7000)), // one huge, malformed header
      () => Array.from({ length: 1 + r.int(600) }, (_, i) => `c${i}=${'v'.repeat(5)}`).join('; '),
      // A real session that holds pending sign-ins: hostile states are checked against them.
      () => r.pick(realCookies),
    ])(r);
  }
  return h;
}

interface Sent {
  index: number;
  endpoint: '/login' | '/callback';
  path: string;
  headers: Record<string, string>;
}

function build(r: Rng, index: number, issuer: string, pending: PendingSignIn[]): Sent {
  const endpoint = index % 2 === 0 ? '/login' : '/callback';
  const target = endpoint === '/callback' && r.chance(0.15) ? r.pick(pending) : undefined;
  const query =
    endpoint === '/login'
      ? loginQuery(r)
      : target
        ? almostValidCallback(r, issuer, target)
        : callbackQuery(r, issuer);
  const path = r.chance(0.05) ? `${endpoint}?` : query ? `${endpoint}?${query}` : endpoint;
  const h = headers(
    r,
    pending.map((p) => p.cookie),
  );
  if (target) h.Cookie = target.cookie;
  const headSize =
    sentLength(query) +
    Object.entries(h).reduce((n, [name, v]) => n + name.length + v.length + 4, 0) +
    200; // request line and the client's own headers
  if (headSize > MAX_REQUEST_HEAD) delete h.Cookie;
  return { index, endpoint, path, headers: h };
}

function describeRequest(s: Sent): string {
  const cut = (v: string) => (v.length > 200 ? `${v.slice(0, 200)}... (${v.length} chars)` : v);
  return `#${s.index} GET ${cut(s.path)} ${JSON.stringify(Object.fromEntries(Object.entries(s.headers).map(([k, v]) => [k, cut(v)])))}`;
}

let h: MockHarness;
beforeAll(async () => {
  // Rate limiting would answer 429 early and hide whatever lies behind it.
  h = await startMockHarness({ RATE_LIMIT_PER_MINUTE: '1000000' });
});
afterAll(async () => {
  await h?.close();
});

describe('hostile input', () => {
  it(`never gets a 500, a crash, a token request or a stack trace from /login or /callback (seed ${SEED})`, async () => {
    // A few real sessions with pending sign-ins, so some hostile callbacks meet real transactions.
    const pending: PendingSignIn[] = [];
    for (let i = 0; i < 3; i++) {
      const login = await supertest(h.server).get('/login').expect(302);
      pending.push({
        cookie: String(login.headers['set-cookie']).split(';')[0]!,
        state: new URL(String(login.headers.location)).searchParams.get('state')!,
      });
    }
    const tokenRequestsBefore = received(h, '/token').length;

    const r = new Rng(SEED);
    const total = 2 * REQUESTS_PER_ENDPOINT;
    const requests = Array.from({ length: total }, (_, i) => build(r, i, h.mock.issuer, pending));
    const authorizeEndpoint = `${h.mock.issuer}/authorize`;

    const problems: string[] = [];
    const statuses = new Map<string, number>();
    let next = 0;
    const started = Date.now();
    const check = (s: Sent, res: supertest.Response): string | undefined => {
      const { status } = res;
      if (status >= 500) {
        const unavailable =
          status === 503 &&
          (res.body?.error === 'provider_unavailable' ||
            res.text.includes('The sign-in provider is unreachable'));
        return unavailable ? undefined : `answered ${status}: ${res.text.slice(0, 300)}`;
      }
      if (s.endpoint === '/callback') {
        // No request carries a valid transaction: every answer is a refusal.
        return status >= 400 ? undefined : `answered ${status} (expected 4xx)`;
      }
      if (![302, 400, 429].includes(status)) return `answered ${status} (expected 302/400/429)`;
      if (status === 302) {
        // Whatever the input, /login sends the browser to the provider and nowhere else.
        const location = new URL(String(res.headers.location));
        if (`${location.origin}${location.pathname}` !== authorizeEndpoint) {
          return `redirected to ${location.href}`;
        }
        if (location.searchParams.get('redirect_uri') !== 'http://127.0.0.1:3999/callback') {
          return `redirect_uri ${location.searchParams.get('redirect_uri')}`;
        }
      }
      return undefined;
    };
    const worker = async () => {
      // Bounded by the request count and by the time budget.
      while (next < total && Date.now() - started < TIME_BUDGET_MS) {
        const s = requests[next++]!;
        let problem: string | undefined;
        try {
          const res = await supertest(h.server).get(s.path).set(s.headers);
          const key = `${s.endpoint} ${res.status}`;
          statuses.set(key, (statuses.get(key) ?? 0) + 1);
          problem = check(s, res);
        } catch (err) {
          problem = `no answer: ${String(err)}`;
        }
        if (problem) problems.push(`${describeRequest(s)}\n    ${problem}`);
      }
    };
    await Promise.all(Array.from({ length: CONCURRENCY }, worker));
    const sent = next;

    const summary = `seed ${SEED}: ${sent}/${total} requests in ${Date.now() - started} ms; ${JSON.stringify(Object.fromEntries(statuses))}`;
    console.log(summary);
    // Soft: one run reports every broken property, not just the first.
    expect.soft(problems.slice(0, 10), `${summary}\n${problems.length} problems`).toEqual([]);
    // No hostile callback may reach the token endpoint: no code is ever sent for exchange.
    expect.soft(received(h, '/token').length - tokenRequestsBefore, 'token requests').toBe(0);
    await supertest(h.server).get('/healthz').expect(200, { status: 'ok' });
    const traces = h.logs.lines.filter((l) => /(\n|\\n)\s+at |"stack"/.test(l));
    expect.soft(traces.slice(0, 3), 'log lines with a stack trace').toEqual([]);
    const logged = h.logs.parsed();
    const errors = logged.filter((l) => Number(l.level) >= 50);
    expect.soft(errors.slice(0, 3), 'error-level log lines').toEqual([]);

    // Not vacuous: a good share was sent, and the refusals came from every depth of the callback,
    // including hostile states checked against real pending sign-ins.
    expect(sent, summary).toBeGreaterThanOrEqual(600);
    expect(statuses.get('/login 302'), summary).toBeGreaterThan(0);
    const kinds = new Set(logged.map((l) => l.kind));
    expect([...kinds]).toEqual(
      expect.arrayContaining(['bad_request', 'transaction_not_found', 'state_mismatch']),
    );
  }, 60_000);
});

describe('many people behind one address (a corporate NAT)', () => {
  let nat: MockHarness;
  beforeAll(async () => {
    nat = await startMockHarness(); // the default RATE_LIMIT_PER_MINUTE
  });
  afterAll(async () => {
    await nat?.close();
  });

  it('50 concurrent sign-ins from one address all succeed under the default rate limit', async () => {
    const results = await Promise.all(
      Array.from({ length: 50 }, () => signInAtMock(nat, nat.app())),
    );
    expect(results.map((res) => `${res.status} ${res.headers.location}`)).toEqual(
      Array.from({ length: 50 }, () => '302 /dashboard'),
    );
    expect(received(nat, '/token')).toHaveLength(50);
  });
});
