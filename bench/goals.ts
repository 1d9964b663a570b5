/** The goals, each checked against one run's measurements. */
import type { TokenLengths } from './provider-stats.js';
import type { Goal, GoalStatus, Measurements } from './results.js';
import type { StormResult } from './storm.js';
import type { Summary } from './throughput.js';

export const ANONYMOUS_LOGIN_MAX_BYTES = 600;
export const ANONYMOUS_LOGIN_MAX_TTL_S = 600;

/**
 * What a signed-in session may cost: its tokens, a quarter more (sealing, encoding), 400 bytes, and
 * since the sessions page (issue 8) 300 bytes for its index entry (device, acr/amr, handle).
 */
export const INDEX_ENTRY_MAX_BYTES = 300;
/** Since the "How you signed in" panel (issue 10): the sign-in's four recorded steps. */
export const FLOW_RECORD_MAX_BYTES = 2000;
export const sessionBudget = (t: TokenLengths) =>
  Math.round(
    (t.accessToken + t.refreshToken + t.idToken) * 1.25 +
      400 +
      INDEX_ENTRY_MAX_BYTES +
      FLOW_RECORD_MAX_BYTES,
  );

const status = (ok: boolean | undefined): GoalStatus =>
  ok === undefined ? 'n/a' : ok ? 'PASS' : 'FAIL';
const ratio = (x: number) => `${x.toFixed(2)}×`;

function pair(m: Measurements, path: string): { codeflow: Summary; bare: Summary } {
  const codeflow = m.throughput[`codeflow ${path}`];
  const bare = m.throughput[`bare ${path}`];
  if (!codeflow || !bare) throw new Error(`no throughput figures for ${path}`);
  return { codeflow, bare };
}

function stormGoal(goal: string, storm: StormResult | undefined, why?: string): Goal {
  if (!storm) return { goal, status: 'n/a', measured: why ?? 'not measured' };
  const ok = storm.refreshGrants === 1 && storm.ok === storm.requests;
  const measured = `${storm.refreshGrants} grant(s), ${storm.ok}/${storm.requests} answered 200`;
  return { goal, status: status(ok), measured };
}

export function evaluateGoals(m: Measurements): Goal[] {
  const me = pair(m, '/me');
  const dashboard = pair(m, '/dashboard');
  const meRps = me.codeflow.reqPerSec / me.bare.reqPerSec;
  const meCpu = me.codeflow.serverCpuUsPerRequest / me.bare.serverCpuUsPerRequest;
  const dashboardRps = dashboard.codeflow.reqPerSec / dashboard.bare.reqPerSec;
  const { signIn, multiInstance: redis, memoryStore: memory } = m;
  const signInLimit = signIn.providerOwnMedianMs * 1.2 + 5;
  const skipped = redis.skipped && `skipped: ${redis.skipped}`;

  const goals: Goal[] = [
    { goal: '/me req/s ≥ 0.9× bare', status: status(meRps >= 0.9), measured: ratio(meRps) },
    { goal: '/me CPU/request ≤ 1.2× bare', status: status(meCpu <= 1.2), measured: ratio(meCpu) },
    {
      goal: '/dashboard req/s ≥ 0.9× bare',
      status: status(dashboardRps >= 0.9),
      measured: ratio(dashboardRps),
    },
    {
      goal: 'sign-in ≤ 1.2× provider-own + 5 ms',
      status: status(signIn.codeflowMedianMs <= signInLimit),
      measured: `${signIn.codeflowMedianMs.toFixed(1)} ms (limit ${signInLimit.toFixed(1)} ms)`,
    },
    stormGoal('refresh storm, one process: 1 grant, 50/50', m.storm),
    stormGoal('refresh storm, two instances on Redis: 1 grant, 50/50', redis.storm, skipped),
  ];

  const budgetGoal = (where: string, missing: string, bytes?: number, t?: TokenLengths): Goal => {
    const goal = `signed-in session (${where}) ≤ tokens×1.25+400 B+${INDEX_ENTRY_MAX_BYTES} B index+${FLOW_RECORD_MAX_BYTES} B flow record`;
    if (bytes === undefined || !t) return { goal, status: 'n/a', measured: missing };
    const budget = sessionBudget(t);
    return { goal, status: status(bytes <= budget), measured: `${bytes} B (budget ${budget} B)` };
  };
  const anonymousGoal = (where: string, missing: string, bytes?: number): Goal => ({
    goal: `anonymous /login (${where}) ≤ ${ANONYMOUS_LOGIN_MAX_BYTES} B`,
    status: status(bytes === undefined ? undefined : bytes <= ANONYMOUS_LOGIN_MAX_BYTES),
    measured: bytes === undefined ? missing : `${bytes} B`,
  });
  const ttl = redis.anonymousLogin?.maxTtlMs;
  const noRedis = skipped || 'not measured';
  const noMemory = 'not measured';
  goals.push(
    budgetGoal('Redis', noRedis, redis.signedIn?.bytes, redis.signedIn?.tokenLengths),
    anonymousGoal('Redis', noRedis, redis.anonymousLogin?.bytes),
    {
      goal: `anonymous /login TTL (Redis) ≤ ${ANONYMOUS_LOGIN_MAX_TTL_S} s`,
      status: status(
        ttl === undefined ? undefined : ttl !== null && ttl <= ANONYMOUS_LOGIN_MAX_TTL_S * 1000,
      ),
      measured:
        ttl === undefined
          ? noRedis
          : ttl === null
            ? 'never expires'
            : `${Math.round(ttl / 1000)} s`,
    },
    budgetGoal('in-process', noMemory, memory.signedInBytes, memory.tokenLengths),
    anonymousGoal('in-process', noMemory, memory.anonymousLoginBytes),
  );
  return goals;
}
