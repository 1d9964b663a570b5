/** The run as a table on stdout, and as JSON in bench/results/<timestamp>.json. */
import { mkdir, writeFile } from 'node:fs/promises';
import prettier from 'prettier';
import type { StoredKeys } from './redis.js';
import type { Results } from './results.js';
import type { Summary } from './throughput.js';

/** Columns padded to their widest cell. */
function table(rows: string[][]): string {
  const widths: number[] = [];
  for (const row of rows)
    row.forEach((cell, i) => (widths[i] = Math.max(widths[i] ?? 0, cell.length)));
  return rows
    .map((row) =>
      row
        .map((c, i) => c.padEnd(widths[i]!))
        .join('  ')
        .trimEnd(),
    )
    .join('\n');
}

const x = (a: number, b: number) => `${(a / b).toFixed(2)}×`;
const rps = (s: Summary) => `${s.reqPerSec.toFixed(0)} req/s`;
const cpu = (us: number | undefined) => (us === undefined ? '-' : `${us.toFixed(0)} µs`);
const latency = (s: Summary) => `${s.p50Ms.toFixed(1)} / ${s.p99Ms.toFixed(1)} ms`;

function throughputRows(r: Results, path: string): string[][] {
  const c = r.throughput[`codeflow ${path}`]!;
  const b = r.throughput[`bare ${path}`]!;
  const rows = [
    [`GET ${path}`, 'req/s', x(c.reqPerSec, b.reqPerSec), rps(c), rps(b)],
    [
      '',
      'server CPU/request',
      x(c.serverCpuUsPerRequest, b.serverCpuUsPerRequest),
      cpu(c.serverCpuUsPerRequest),
      cpu(b.serverCpuUsPerRequest),
    ],
    ['', 'latency p50 / p99', '', latency(c), latency(b)],
    ['', 'non-2xx answers', '', String(c.non2xx), String(b.non2xx)],
  ];
  if (c.upstreamCpuUsPerRequest !== undefined) {
    rows.push([
      '',
      'provider CPU/request',
      '',
      cpu(c.upstreamCpuUsPerRequest),
      cpu(b.upstreamCpuUsPerRequest),
    ]);
  }
  return rows;
}

const expiry = (ms: number | null) =>
  ms === null ? 'never expires' : `TTL ${Math.round(ms / 1000)} s`;
const keys = (k: StoredKeys | undefined) => {
  if (k === undefined) return 'not measured';
  const each = k.keys.map((key) => `${key.kind} ${key.bytes} B, ${expiry(key.ttlMs)}`);
  return `${k.bytes} B (MEMORY USAGE ${k.memoryUsage} B): ${each.join('; ')}`;
};

export function printReport(r: Results, file: string): void {
  const { settings: s, signIn, storm, multiInstance: redis, memoryStore: memory, machine: m } = r;
  console.log(`\ncodeflow against a bare Express + express-session app, measured in the same run`);
  console.log(
    `${s.rounds} interleaved rounds × ${s.secondsPerRound} s, ${s.connections} connections; CPU is user+system from /proc; ` +
      `${s.pinned ? 'servers pinned to one CPU, load to the other' : 'not pinned'}\n`,
  );
  console.log(
    table([
      ['', '', 'codeflow/bare', 'codeflow', 'bare'],
      ...throughputRows(r, '/me'),
      ...throughputRows(r, '/dashboard'),
      [
        `sign-in (median of ${signIn.count})`,
        '',
        x(signIn.codeflowMedianMs, signIn.providerOwnMedianMs),
        `${signIn.codeflowMedianMs.toFixed(1)} ms`,
        `${signIn.providerOwnMedianMs.toFixed(1)} ms (provider's own)`,
      ],
    ]),
  );
  console.log(
    `\nrefresh storm, one process: ${storm.refreshGrants} grant(s), answers ${JSON.stringify(storm.statuses)}`,
  );
  if (redis.skipped) console.log(`Redis rows skipped: ${redis.skipped}`);
  else {
    console.log(
      `refresh storm, two instances on Redis: ${redis.storm?.refreshGrants} grant(s), answers ${JSON.stringify(redis.storm?.statuses)}`,
    );
    console.log(`Redis, signed-in session: ${keys(redis.signedIn)}`);
    if (redis.signedIn?.others.keys.length) {
      console.log(
        `Redis, left by the anonymous session it replaced: ${keys(redis.signedIn.others)}`,
      );
    }
    console.log(`Redis, anonymous /login: ${keys(redis.anonymousLogin)}`);
  }
  console.log(
    `in-process store: signed-in session ${memory.signedInBytes} B, anonymous /login ${memory.anonymousLoginBytes} B`,
  );
  console.log('\nGoals');
  console.log(table(r.goals.map((g) => [`  ${g.status}`, g.goal, g.measured])));
  console.log(
    `\nmachine: ${m.cpu}, ${m.cores} cores, node ${m.node}, ${m.platform}; took ${r.secondsTaken.toFixed(0)} s`,
  );
  console.log(`results: ${file}`);
}

/** Writes the JSON, formatted as the repository's Prettier settings want it. */
export async function writeResults(r: Results): Promise<string> {
  await mkdir('bench/results', { recursive: true });
  const file = `bench/results/${r.startedAt.replace(/[:.]/g, '-')}.json`;
  const options = (await prettier.resolveConfig(file)) ?? {};
  await writeFile(file, await prettier.format(JSON.stringify(r), { ...options, filepath: file }));
  return file;
}
