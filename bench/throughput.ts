/**
 * Throughput with autocannon, in interleaved rounds (bare, codeflow, bare, codeflow, ...) so that
 * whatever drifts on the machine meanwhile (turbo, other load, GC state) hits both alike. The CPU
 * time a server spent per request comes from /proc, around each round.
 */
import autocannon from 'autocannon';
import { cpuMillis, type Child } from './processes.js';

export const CONNECTIONS = 10;

export interface Target {
  /** e.g. "bare /me". */
  name: string;
  url: string;
  cookie: string;
  server: Child;
  /** Another process whose CPU is reported alongside (the provider, for /dashboard). */
  upstream?: Child;
}

export interface Round {
  requests: number;
  /** Always 0 in a finished run: any non-2xx answer stops the bench. */
  non2xx: number;
  seconds: number;
  p50Ms: number;
  p99Ms: number;
  serverCpuMs: number;
  upstreamCpuMs: number | undefined;
}

export interface Summary {
  name: string;
  rounds: Round[];
  reqPerSec: number;
  non2xx: number;
  /** Medians over the rounds. */
  p50Ms: number;
  p99Ms: number;
  serverCpuUsPerRequest: number;
  upstreamCpuUsPerRequest: number | undefined;
}

/** One autocannon run against `target`; throws on any non-2xx answer or connection error. */
async function measure(target: Target, seconds: number): Promise<Round> {
  const serverBefore = cpuMillis(target.server.pid);
  const upstreamBefore = target.upstream && cpuMillis(target.upstream.pid);
  const result = await autocannon({
    url: target.url,
    connections: CONNECTIONS,
    duration: seconds,
    headers: { cookie: target.cookie },
  });
  const serverCpuMs = cpuMillis(target.server.pid) - serverBefore;
  const upstreamCpuMs =
    target.upstream && upstreamBefore !== undefined
      ? cpuMillis(target.upstream.pid) - upstreamBefore
      : undefined;
  if (result.non2xx > 0 || result.errors > 0 || result.requests.total === 0) {
    throw new Error(
      `${target.name}: ${result.non2xx} non-2xx answers and ${result.errors} connection errors ` +
        `in ${result.requests.total} requests; every answer must be a 2xx`,
    );
  }
  return {
    requests: result.requests.total,
    non2xx: result.non2xx,
    seconds: result.duration,
    p50Ms: result.latency.p50,
    p99Ms: result.latency.p99,
    serverCpuMs,
    upstreamCpuMs,
  };
}

const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);

export function median(xs: number[]): number {
  const sorted = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

function summarise(name: string, rounds: Round[]): Summary {
  const requests = sum(rounds.map((r) => r.requests));
  const upstream = rounds.map((r) => r.upstreamCpuMs);
  return {
    name,
    rounds,
    reqPerSec: requests / sum(rounds.map((r) => r.seconds)),
    non2xx: sum(rounds.map((r) => r.non2xx)),
    p50Ms: median(rounds.map((r) => r.p50Ms)),
    p99Ms: median(rounds.map((r) => r.p99Ms)),
    serverCpuUsPerRequest: (sum(rounds.map((r) => r.serverCpuMs)) * 1000) / requests,
    upstreamCpuUsPerRequest: upstream.every((u) => u !== undefined)
      ? (sum(upstream) * 1000) / requests
      : undefined,
  };
}

/** A short warm-up of each target, then `rounds` rounds of every target in turn. */
export async function interleavedRounds(
  targets: Target[],
  options: { rounds: number; secondsPerRound: number; warmupSeconds: number },
  progress: (line: string) => void,
): Promise<Summary[]> {
  for (const target of targets) await measure(target, options.warmupSeconds);
  const rounds = targets.map(() => [] as Round[]);
  for (let r = 0; r < options.rounds; r++) {
    for (const [i, target] of targets.entries()) {
      const round = await measure(target, options.secondsPerRound);
      rounds[i]!.push(round);
      progress(
        `round ${r + 1}/${options.rounds} ${target.name.padEnd(20)} ` +
          `${(round.requests / round.seconds).toFixed(0)} req/s`,
      );
    }
  }
  return targets.map((t, i) => summarise(t.name, rounds[i]!));
}
