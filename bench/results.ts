/** Everything one run measured: what the report prints and what bench/results/*.json keeps. */
import type { MemoryStoreResult } from './memory-store.js';
import type { MultiInstanceResult } from './multi-instance.js';
import type { SignInTimes } from './sign-in-time.js';
import type { StormResult } from './storm.js';
import type { Summary } from './throughput.js';

export interface Machine {
  cpu: string;
  cores: number;
  node: string;
  platform: string;
}

export interface Measurements {
  startedAt: string;
  machine: Machine;
  settings: {
    connections: number;
    rounds: number;
    secondsPerRound: number;
    warmupSeconds: number;
    signIns: number;
    /** Whether the servers under test ran on their own CPU (taskset). */
    pinned: boolean;
  };
  /** By name: "bare /me", "codeflow /me", "bare /dashboard", "codeflow /dashboard". */
  throughput: Record<string, Summary>;
  signIn: SignInTimes;
  storm: StormResult;
  multiInstance: MultiInstanceResult;
  memoryStore: MemoryStoreResult;
}

export type GoalStatus = 'PASS' | 'FAIL' | 'n/a';

export interface Goal {
  goal: string;
  status: GoalStatus;
  measured: string;
}

export interface Results extends Measurements {
  secondsTaken: number;
  goals: Goal[];
}
