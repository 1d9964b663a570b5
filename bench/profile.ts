/**
 * `npm run bench:profile [path ...]`: where codeflow's CPU goes under load, before anyone optimises.
 * Starts the bench provider and codeflow with `--cpu-prof`, signs in, loads each path (default /me
 * and /dashboard) with autocannon, stops codeflow so V8 writes the profile, then prints the
 * functions with the most self time. The .cpuprofile stays in bench/results/ for Chrome DevTools.
 */
import { mkdirSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import autocannon from 'autocannon';
import { cleanUpNow, freePort, stopAll } from './processes.js';
import { startCodeflow, startProvider } from './services.js';
import { signInThroughApp } from './sign-in.js';

const SECONDS = 8;
const TOP = 25;

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
}
interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
}

const dir = fileURLToPath(new URL(`./results/profile-${Date.now()}`, import.meta.url));
mkdirSync(dir, { recursive: true });
process.on('exit', cleanUpNow);

const paths = process.argv.slice(2).length > 0 ? process.argv.slice(2) : ['/me', '/dashboard'];
const port = await freePort();
const provider = await startProvider(`http://127.0.0.1:${port}`, 3600);
const app = await startCodeflow({
  provider,
  port,
  // `OIDC_DPOP=on npm run bench:profile /dashboard`: where a proof per API call goes.
  ...(process.env.OIDC_DPOP && { env: { OIDC_DPOP: process.env.OIDC_DPOP } }),
  nodeArgs: ['--cpu-prof', `--cpu-prof-dir=${dir}`],
});
try {
  const cookie = await signInThroughApp(app.url);
  for (const path of paths) {
    const result = await autocannon({
      url: `${app.url}${path}`,
      connections: 10,
      duration: SECONDS,
      headers: { cookie },
    });
    console.log(`${path}: ${result.requests.average} req/s, ${result.non2xx} non-2xx`);
  }
} finally {
  await stopAll();
}

// The main thread's profile is the largest; the others are the module loader's worker.
const file = readdirSync(dir)
  .filter((name) => name.endsWith('.cpuprofile'))
  .sort((a, b) => statSync(`${dir}/${b}`).size - statSync(`${dir}/${a}`).size)[0];
if (!file) throw new Error(`no profile written in ${dir}`);
const profile = JSON.parse(readFileSync(`${dir}/${file}`, 'utf8')) as CpuProfile;
const byId = new Map(profile.nodes.map((node) => [node.id, node]));
const selfSamples = new Map<string, number>();
for (const id of profile.samples) {
  const frame = byId.get(id)!.callFrame;
  const where = frame.url.replace(/^.*node_modules\//, '').replace(/^.*\/(src|bench)\//, '$1/');
  const key = `${frame.functionName || '(anonymous)'}  ${where}:${frame.lineNumber + 1}`;
  selfSamples.set(key, (selfSamples.get(key) ?? 0) + 1);
}
const total = profile.samples.length;
const byPackage = new Map<string, number>();
for (const id of profile.samples) {
  const { url, functionName } = byId.get(id)!.callFrame;
  const pkg =
    /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url)?.[1] ??
    (url.includes('/src/') ? 'codeflow src' : url.startsWith('node:') ? 'node' : functionName);
  byPackage.set(pkg, (byPackage.get(pkg) ?? 0) + 1);
}
console.log('\nself time by package');
for (const [pkg, count] of [...byPackage].sort((a, b) => b[1] - a[1]).slice(0, 15)) {
  console.log(`${((count / total) * 100).toFixed(1).padStart(5)}%  ${pkg}`);
}
console.log(`\nself time, top ${TOP} of ${total} samples (${dir}/${file})`);
for (const [key, count] of [...selfSamples].sort((a, b) => b[1] - a[1]).slice(0, TOP)) {
  console.log(`${((count / total) * 100).toFixed(1).padStart(5)}%  ${key}`);
}
process.exit();
