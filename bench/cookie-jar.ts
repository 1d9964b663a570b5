/**
 * A browser's cookies, as little as the bench needs: per origin, name=value, Max-Age=0 or an
 * Expires in the past removes. Paths and domains are ignored (every cookie here has Path=/).
 */
export class CookieJar {
  private readonly byOrigin = new Map<string, Map<string, string>>();

  /** The Cookie header to send to `url`'s origin, or undefined when there is none. */
  header(url: URL | string): string | undefined {
    const cookies = this.byOrigin.get(new URL(url).origin);
    if (!cookies || cookies.size === 0) return undefined;
    return [...cookies].map(([name, value]) => `${name}=${value}`).join('; ');
  }

  /** Keeps what `response` (an answer from `url`) set. */
  store(url: URL | string, response: Response): void {
    const origin = new URL(url).origin;
    const cookies = this.byOrigin.get(origin) ?? new Map<string, string>();
    this.byOrigin.set(origin, cookies);
    for (const line of response.headers.getSetCookie()) {
      const [pair = '', ...attributes] = line.split(';').map((s) => s.trim());
      const eq = pair.indexOf('=');
      if (eq <= 0) continue;
      const name = pair.slice(0, eq);
      if (attributes.some(isRemoval)) cookies.delete(name);
      else cookies.set(name, pair.slice(eq + 1));
    }
  }

  /** GET or form POST, without following redirects (the bench follows them itself). */
  async request(url: URL | string, form?: Record<string, string>): Promise<Response> {
    const cookie = this.header(url);
    const headers: Record<string, string> = cookie ? { cookie } : {};
    if (form) headers['content-type'] = 'application/x-www-form-urlencoded';
    const response = await fetch(url, {
      method: form ? 'POST' : 'GET',
      headers,
      body: form ? new URLSearchParams(form).toString() : undefined,
      redirect: 'manual',
      signal: AbortSignal.timeout(10_000),
    });
    this.store(url, response);
    return response;
  }
}

function isRemoval(attribute: string): boolean {
  const [key = '', value = ''] = attribute.split('=');
  if (key.toLowerCase() === 'max-age') return Number(value) <= 0;
  if (key.toLowerCase() === 'expires') return Date.parse(value) <= Date.now();
  return false;
}
