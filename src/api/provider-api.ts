import * as client from 'openid-client';

/** What the dashboard shows of the API's answer. */
export interface ApiResult {
  ok: boolean;
  status: number;
  /** Parsed JSON when the API sent JSON, else the text (truncated). */
  body: unknown;
}

const MAX_TEXT = 2000;

/**
 * Calls the protected API with the access token in the Authorization header (never the URL),
 * through openid-client so the header is built by the library and redirects are not followed.
 */
export async function callApi(
  oidc: client.Configuration,
  accessToken: string,
  apiUrl: URL,
): Promise<ApiResult> {
  let response: Response;
  try {
    response = await client.fetchProtectedResource(oidc, accessToken, apiUrl, 'GET');
  } catch (err) {
    // A Bearer challenge (401/403 with WWW-Authenticate) arrives as an error holding the response.
    if (err instanceof client.WWWAuthenticateChallengeError) response = err.response;
    else throw err;
  }
  const type = response.headers.get('content-type') ?? '';
  const body: unknown = type.includes('json')
    ? await response.json().catch(() => null)
    : (await response.text()).slice(0, MAX_TEXT);
  return { ok: response.ok, status: response.status, body };
}
