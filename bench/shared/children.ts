// Parent side: forks benchmark servers, talks to them over IPC and never leaves one behind.
import { fork, spawnSync, type ChildProcess } from 'node:child_process';
import { availableParallelism } from 'node:os';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ChildMessage, ParentMessage } from './server-harness.js';

/** A benchmark server running in its own process. */
export interface ServerChild {
  readonly name: string;
  readonly url: string;
  readonly pid: number;
  /** Calls a handler the child registered (e.g. `counters.read`). */
  call<T = unknown>(name: string, payload?: unknown): Promise<T>;
  /** Asks the child to close its app and exit; kills it if it does not within 5 s. */
  stop(): Promise<void>;
}

const READY_TIMEOUT_MS = 60_000;
/** Under valgrind a Nest app starts 20–50× slower: on a loaded 2-core machine that is minutes. */
const LAUNCHED_READY_TIMEOUT_MS = 600_000;
const CALL_TIMEOUT_MS = 10_000;
const STOP_TIMEOUT_MS = 5_000;

const running = new Set<ChildProcess>();
const interruptCleanups = new Set<() => unknown>();
let cleanupInstalled = false;
const INTERRUPT_CLEANUP_TIMEOUT_MS = 10_000;

/**
 * Registers work to do if the run is interrupted (SIGINT/SIGTERM) before its own `finally` runs:
 * stopping a throwaway database, removing temp files. Returns a function that unregisters it.
 */
export function onInterrupt(cleanup: () => unknown): () => void {
  installCleanup();
  interruptCleanups.add(cleanup);
  return () => interruptCleanups.delete(cleanup);
}

/** Kills every child still running when the parent exits or is interrupted. */
function installCleanup(): void {
  if (cleanupInstalled) return;
  cleanupInstalled = true;
  process.on('exit', () => {
    for (const child of running) child.kill('SIGKILL');
  });
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => {
      console.error(`\n${signal}: stopping ${running.size} benchmark server(s).`);
      for (const child of running) child.kill('SIGTERM');
      const cleanups = [...interruptCleanups].map((cleanup) => Promise.resolve().then(cleanup).catch(() => undefined));
      const timeout = new Promise((resolve) => setTimeout(resolve, INTERRUPT_CLEANUP_TIMEOUT_MS).unref());
      void Promise.race([Promise.all(cleanups), timeout]).then(() => process.exit(130));
    });
  }
}

/** CPUs the servers and the load generator are pinned to; `undefined` when pinning is off or impossible. */
export interface CpuPinning {
  readonly servers: string;
  readonly loadGenerator: string;
}

let pinning: CpuPinning | undefined | null = null;

/**
 * Pins this process (autocannon runs in it) to the last CPU and the servers to the others, with
 * `taskset`, so the load generator and the server under test never compete for one core: on a
 * 2-core machine that is what makes runs comparable. Off with `BENCH_PIN=0`, or without `taskset`
 * or a second CPU. Decided once.
 */
export function cpuPinning(): CpuPinning | undefined {
  if (pinning !== null) return pinning;
  pinning = undefined;
  const cpus = availableParallelism();
  if (process.env.BENCH_PIN === '0' || cpus < 2) return pinning;
  const candidate = { servers: cpus === 2 ? '0' : `0-${cpus - 2}`, loadGenerator: String(cpus - 1) };
  if (taskset(candidate.loadGenerator, process.pid)) pinning = candidate;
  return pinning;
}

function taskset(cpuList: string, pid: number): boolean {
  const result = spawnSync('taskset', ['-a', '-p', '-c', cpuList, String(pid)], { stdio: 'ignore' });
  return result.status === 0;
}

/** A program that runs the server's `node` (a profiler such as valgrind): `execPath execArgv… node script`. */
export interface ServerLauncher {
  readonly execPath: string;
  readonly execArgv: readonly string[];
}

/**
 * Flags every server's `node` gets. V8's memory reducer runs major collections in a process about
 * 10 s after its load stops: measured, an idle Express server spent ~200 ms of CPU that way, on
 * the core shared by all servers, inside whichever server's window came next.
 */
export const SERVER_NODE_FLAGS: readonly string[] = ['--no-memory-reducer'];

/**
 * Forks `script` (a compiled server file next to the runner) with `env`, and resolves once it
 * listens; through `launcher` when given. `nodeFlags` go to the server's `node` (`--expose-gc`),
 * after {@link SERVER_NODE_FLAGS}.
 */
export function startServer(
  script: URL,
  name: string,
  env: Record<string, string>,
  launcher?: ServerLauncher,
  nodeFlags: readonly string[] = [],
): Promise<ServerChild> {
  installCleanup();
  const pins = cpuPinning();
  const child = fork(fileURLToPath(script), [], {
    env: { ...process.env, ...env, NODE_ENV: 'production' },
    ...(launcher
      ? { execPath: launcher.execPath, execArgv: [...launcher.execArgv, process.execPath, ...SERVER_NODE_FLAGS, ...nodeFlags] }
      : { execArgv: [...SERVER_NODE_FLAGS, ...nodeFlags] }),
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  running.add(child);
  if (pins && child.pid !== undefined) taskset(pins.servers, child.pid);
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  void exited.then(() => running.delete(child));

  let nextId = 1;
  const pending = new Map<number, { resolve: (value: unknown) => void; reject: (error: Error) => void; timer: NodeJS.Timeout }>();
  child.on('message', (message: ChildMessage) => {
    if (message.type !== 'reply') return;
    const call = pending.get(message.id);
    if (!call) return;
    pending.delete(message.id);
    clearTimeout(call.timer);
    if (message.error !== undefined) call.reject(new Error(`${name}: ${message.error}`));
    else call.resolve(message.result);
  });
  const send = (message: ParentMessage) => child.send(message);

  const server: Omit<ServerChild, 'url'> = {
    name,
    pid: child.pid ?? -1,
    call<T>(handler: string, payload?: unknown): Promise<T> {
      return new Promise<T>((resolve, reject) => {
        const id = nextId++;
        const timer = setTimeout(() => {
          pending.delete(id);
          reject(new Error(`${name}: IPC call "${handler}" got no answer within ${CALL_TIMEOUT_MS} ms.`));
        }, CALL_TIMEOUT_MS);
        pending.set(id, { resolve: resolve as (value: unknown) => void, reject, timer });
        send({ type: 'call', id, name: handler, payload });
      });
    },
    async stop(): Promise<void> {
      if (child.exitCode !== null || child.signalCode !== null) return;
      if (child.connected) send({ type: 'stop' });
      const timer = setTimeout(() => child.kill('SIGKILL'), STOP_TIMEOUT_MS);
      await exited;
      clearTimeout(timer);
    },
  };

  return new Promise<ServerChild>((resolve, reject) => {
    const fail = (error: Error) => {
      clearTimeout(timer);
      child.kill('SIGKILL');
      reject(error);
    };
    const readyTimeout = launcher ? LAUNCHED_READY_TIMEOUT_MS : READY_TIMEOUT_MS;
    const timer = setTimeout(() => fail(new Error(`${name} did not start within ${readyTimeout} ms.`)), readyTimeout);
    child.on('message', (message: ChildMessage) => {
      if (message.type === 'ready') {
        clearTimeout(timer);
        resolve({ ...server, url: message.url });
      } else if (message.type === 'failed') {
        fail(new Error(`${name} failed to start:\n${message.error}`));
      }
    });
    child.once('exit', (code, signal) => fail(new Error(`${name} exited before it was ready (code ${code}, signal ${signal}).`)));
  });
}

/** Stops every child in `servers` (in parallel), then kills any child still starting. */
export async function stopAll(servers: Iterable<ServerChild>): Promise<void> {
  await Promise.all([...servers].map((server) => server.stop()));
  for (const child of running) child.kill('SIGKILL');
}

/**
 * Wraps `run` in a CPU profile of `server` written to `<dir>/<server name>.cpuprofile` when `dir`
 * is given (one measured window only, no start-up).
 */
export async function profiled<T>(server: ServerChild, dir: string | undefined, run: () => Promise<T>): Promise<T> {
  if (!dir) return run();
  mkdirSync(dir, { recursive: true });
  await server.call('profile.start');
  try {
    return await run();
  } finally {
    await server.call('profile.stop', join(dir, `${server.name}.cpuprofile`));
  }
}

/**
 * valgrind's arguments for counting a Node process's instructions with callgrind, counting off
 * until the process turns it on (`callgrind_control --instr=on`), dumps written to `outputFile`
 * (`%p` is the pid).
 */
export function callgrindArgs(outputFile: string): string[] {
  return [
    '--quiet',
    '--tool=callgrind',
    // JIT code rewrites itself: valgrind must re-check every non-file mapping for changes
    '--smc-check=all-non-file',
    '--instr-atstart=no',
    `--callgrind-out-file=${outputFile}`,
  ];
}
