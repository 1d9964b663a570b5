import { afterEach, describe, expect, it, vi } from 'vitest';
import { describeDevice } from '../../src/session/device.js';
import { memoryBackend, type MemoryBackend } from '../../src/session/memory-backend.js';
import type { SessionEntry } from '../../src/session/session-index.js';

const ISS = 'https://provider.example';
const HOUR_MS = 3600_000;

function entry(overrides: Partial<SessionEntry> = {}): SessionEntry {
  return {
    handle: `handle-${Math.random().toString(36).slice(2)}`,
    iss: ISS,
    sub: 'alice',
    signedInAt: 1_700_000_000,
    device: { browser: 'Firefox 128', os: 'Windows 10' },
    ...overrides,
  };
}

describe('the in-process session index', () => {
  const backends: MemoryBackend[] = [];
  const fresh = () => {
    const backend = memoryBackend();
    backends.push(backend);
    return backend;
  };
  afterEach(async () => {
    vi.useRealTimers();
    await Promise.all(backends.splice(0).map((b) => b.close()));
  });

  // Proves: a person's list holds exactly their sessions, newest sign-in first, with id and last seen.
  it("lists a person's sessions newest first, and no one else's", async () => {
    const { index } = fresh();
    await index.add('s-old', entry({ signedInAt: 100 }), HOUR_MS, HOUR_MS);
    await index.add('s-new', entry({ signedInAt: 300 }), HOUR_MS, HOUR_MS);
    await index.add('s-mid', entry({ signedInAt: 200 }), HOUR_MS, HOUR_MS);
    await index.add('s-bob', entry({ sub: 'bob' }), HOUR_MS, HOUR_MS);
    await index.add('s-other-iss', entry({ iss: 'https://other.example' }), HOUR_MS, HOUR_MS);

    const alice = await index.list({ iss: ISS, sub: 'alice' });
    expect(alice.map((s) => s.sid)).toEqual(['s-new', 's-mid', 's-old']);
    expect(alice[0]).toMatchObject({ sid: 's-new', signedInAt: 300, lastSeenAt: 300 });
    expect((await index.list({ iss: ISS, sub: 'bob' })).map((s) => s.sid)).toEqual(['s-bob']);
    expect(await index.list({ iss: ISS, sub: 'carol' })).toEqual([]);
  });

  // Proves: back-channel logout finds exactly the sessions of one provider session (sid), per issuer.
  it('finds the sessions signed in through one provider session', async () => {
    const { index } = fresh();
    await index.add('s1', entry({ providerSid: 'p-1', signedInAt: 1 }), HOUR_MS, HOUR_MS);
    await index.add('s2', entry({ providerSid: 'p-1', signedInAt: 2 }), HOUR_MS, HOUR_MS);
    await index.add('s3', entry({ providerSid: 'p-2' }), HOUR_MS, HOUR_MS);
    await index.add('s4', entry(), HOUR_MS, HOUR_MS);

    expect((await index.byProviderSession(ISS, 'p-1')).map((s) => s.sid)).toEqual(['s2', 's1']);
    expect((await index.byProviderSession(ISS, 'p-2')).map((s) => s.sid)).toEqual(['s3']);
    expect(await index.byProviderSession('https://other.example', 'p-1')).toEqual([]);
    expect(await index.byProviderSession(ISS, 'p-unknown')).toEqual([]);
  });

  // Proves: ending a session takes it out of the person's list and the provider session's.
  it('forgets an ended session in both lists', async () => {
    const backend = fresh();
    const ended = entry({ providerSid: 'p-1' });
    await backend.index.add('s1', ended, HOUR_MS, HOUR_MS);
    await backend.index.add('s2', entry({ providerSid: 'p-1' }), HOUR_MS, HOUR_MS);
    await backend.end('s1', ended);

    expect((await backend.index.list({ iss: ISS, sub: 'alice' })).map((s) => s.sid)).toEqual([
      's2',
    ]);
    expect((await backend.index.byProviderSession(ISS, 'p-1')).map((s) => s.sid)).toEqual(['s2']);
  });

  // Proves: a touch notes when the session was last used and keeps its entry past the old expiry.
  it('moves "last seen" and the expiry with each touch', async () => {
    vi.useFakeTimers({ toFake: ['Date'] });
    const backend = fresh();
    await backend.setSession('s1', '{}', 2000);
    await backend.index.add('s1', entry({ signedInAt: 1000 }), 2000, HOUR_MS);
    vi.advanceTimersByTime(1500);
    await backend.touchSession('s1', 2000, 1042);
    vi.advanceTimersByTime(1500); // past the first expiry, within the touched one

    const [s1] = await backend.index.list({ iss: ISS, sub: 'alice' });
    expect(s1).toMatchObject({ sid: 's1', signedInAt: 1000, lastSeenAt: 1042 });
    vi.advanceTimersByTime(600);
    expect(await backend.index.list({ iss: ISS, sub: 'alice' })).toEqual([]);
    expect(await backend.getSession('s1')).toBeUndefined();
  });

  // Proves: a session that ended before its entry arrived (a sign-in racing a sign-out) is not indexed.
  it('does not index a session id that has already ended', async () => {
    const backend = fresh();
    await backend.end('s1');
    await backend.index.add('s1', entry({ providerSid: 'p-1' }), HOUR_MS, HOUR_MS);

    expect(await backend.index.list({ iss: ISS, sub: 'alice' })).toEqual([]);
    expect(await backend.index.byProviderSession(ISS, 'p-1')).toEqual([]);
    expect(backend.sessionsActive?.()).toBe(0);
  });

  // Proves: the count the metrics read follows sign-ins and sign-outs.
  it('counts the sessions indexed', async () => {
    const backend = fresh();
    expect(backend.sessionsActive?.()).toBe(0);
    await backend.index.add('s1', entry(), HOUR_MS, HOUR_MS);
    await backend.index.add('s2', entry(), HOUR_MS, HOUR_MS);
    await backend.index.add('s3', entry({ sub: 'bob' }), HOUR_MS, HOUR_MS);
    expect(backend.sessionsActive?.()).toBe(3);
    await backend.end('s1');
    expect(backend.sessionsActive?.()).toBe(2);
  });

  // Proves: what a caller does with a listed entry does not change the stored one.
  it('hands out copies of its entries', async () => {
    const { index } = fresh();
    await index.add('s1', entry(), HOUR_MS, HOUR_MS);
    const [listed] = await index.list({ iss: ISS, sub: 'alice' });
    listed!.device.browser = 'changed';
    listed!.lastSeenAt = 0;
    expect((await index.list({ iss: ISS, sub: 'alice' }))[0]).toMatchObject({
      device: { browser: 'Firefox 128' },
      lastSeenAt: 1_700_000_000,
    });
  });
});

describe('describeDevice', () => {
  const garbage = 'x'.repeat(10_240);
  const longGarbage = `Mozilla/5.0 (${'A'.repeat(10_000)}) Firefox/${'9'.repeat(200)}`;

  // Proves: real User-Agent strings become short, readable names (what bowser makes of them).
  it.each([
    [
      'Chrome on Windows',
      'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36',
      { browser: 'Chrome 126', os: 'Windows 10' },
    ],
    [
      'Safari on iPhone',
      'Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1',
      { browser: 'Safari 17', os: 'iOS 17.5' },
    ],
    [
      'Firefox on Linux',
      'Mozilla/5.0 (X11; Linux x86_64; rv:127.0) Gecko/20100101 Firefox/127.0',
      { browser: 'Firefox 127', os: 'Linux' },
    ],
    [
      'Edge on Windows',
      'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36 Edg/126.0.2592.87',
      { browser: 'Microsoft Edge 126', os: 'Windows 10' },
    ],
    [
      'Chrome on Android',
      'Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.6478.122 Mobile Safari/537.36',
      { browser: 'Chrome 126', os: 'Android 14' },
    ],
    ['no User-Agent', undefined, { browser: 'Unknown browser', os: 'Unknown system' }],
    ['an empty User-Agent', '', { browser: 'Unknown browser', os: 'Unknown system' }],
    ['a blank User-Agent', '   ', { browser: 'Unknown browser', os: 'Unknown system' }],
    ['10 kB of garbage', garbage, { browser: 'Unknown browser', os: 'Unknown system' }],
  ])('names %s', (_name, userAgent, expected) => {
    expect(describeDevice(userAgent)).toEqual(expected);
  });

  // Proves: whatever arrives, parsing never throws and each name fits the page (at most 40 characters).
  it.each([
    ['10 kB of garbage', garbage],
    ['a 10 kB Mozilla-like header', longGarbage],
    ['a long product name', `Mozilla/5.0 (Windows NT 10.0) ${'Z'.repeat(300)}/1.0`],
    ['a 100-digit browser version', `Mozilla/5.0 (X11; Linux x86_64) Firefox/${'9'.repeat(100)}`],
    [
      'a 100-digit system version',
      `Mozilla/5.0 (Linux; Android ${'1'.repeat(100)}; Pixel 8) Chrome/126.0 Mobile Safari/537.36`,
    ],
    ['control characters', 'Mozilla/5.0 (\u0000\u001b[31m; Windows NT 10.0) Firefox/\u0007128.0'],
    ['unbalanced brackets', '((((((((((((((((((((((((((((((((((((((((Chrome/1'],
  ])('keeps %s to two short names', (_name, userAgent) => {
    const device = describeDevice(userAgent);
    expect(device.browser.length).toBeGreaterThan(0);
    expect(device.browser.length).toBeLessThanOrEqual(40);
    expect(device.os.length).toBeGreaterThan(0);
    expect(device.os.length).toBeLessThanOrEqual(40);
  });
});
