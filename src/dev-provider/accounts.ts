import { createHash, timingSafeEqual } from 'node:crypto';

/** A demo person of the embedded provider. Development only: the passwords are on its login page. */
export interface DemoAccount {
  id: string;
  password: string;
  name: string;
  email: string;
  /**
   * The demo's second factor, asked for by a step-up: a fixed code shown on the sign-in page, as
   * the password is. A real provider sends one, or reads it from an authenticator app.
   */
  oneTimeCode: string;
  /** What the demo API says about them, so the dashboard has something to show. */
  data: { plan: string; projects: string[] };
}

export const DEMO_ACCOUNTS: readonly DemoAccount[] = [
  {
    id: 'alice',
    password: 'alice-password',
    name: 'Alice Liddell',
    email: 'alice@example.com',
    oneTimeCode: '271828',
    data: { plan: 'team', projects: ['looking-glass', 'rabbit-hole'] },
  },
  {
    id: 'bob',
    password: 'bob-password',
    name: 'Bob Builder',
    email: 'bob@example.com',
    oneTimeCode: '314159',
    data: { plan: 'free', projects: ['can-we-fix-it'] },
  },
];

export function findAccount(id: string): DemoAccount | undefined {
  return DEMO_ACCOUNTS.find((a) => a.id === id);
}

const digest = (s: string) => createHash('sha256').update(s).digest();

/** The account for these credentials, compared in constant time. */
export function checkPassword(id: string, password: string): DemoAccount | undefined {
  const account = findAccount(id);
  const ok = timingSafeEqual(digest(account?.password ?? ''), digest(password));
  return account && ok ? account : undefined;
}

/** Whether `code` is this account's one-time code, compared in constant time. */
export function checkOneTimeCode(account: DemoAccount, code: string): boolean {
  return timingSafeEqual(digest(account.oneTimeCode), digest(code));
}
