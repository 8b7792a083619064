// Throwaway PostgreSQL for tests: initdb + pg_ctl in a temp dir on a free loopback port.
// Used by scripts/test.mjs and by tests that need to stop and restart a server of their own.
import { execFile, execFileSync, spawnSync } from 'node:child_process';
import { appendFileSync, chownSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** Directory holding initdb/pg_ctl, or undefined when PostgreSQL is not installed. */
export function findPostgresBin() {
  const candidates = [];
  if (process.env.PG_BIN) candidates.push(process.env.PG_BIN);
  const root = '/usr/lib/postgresql';
  if (existsSync(root)) {
    for (const version of readdirSync(root).sort((a, b) => Number(b) - Number(a))) candidates.push(join(root, version, 'bin'));
  }
  for (const dir of (process.env.PATH ?? '').split(':')) candidates.push(dir);
  return candidates.find((dir) => dir && existsSync(join(dir, 'initdb')) && existsSync(join(dir, 'pg_ctl')));
}

/** A free TCP port on 127.0.0.1. */
export function freePort() {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

function postgresUser() {
  if (process.getuid?.() !== 0) return undefined;
  const id = spawnSync('id', ['-u', 'postgres'], { encoding: 'utf8' });
  const gid = spawnSync('id', ['-g', 'postgres'], { encoding: 'utf8' });
  if (id.status !== 0) throw new Error('Running as root but there is no "postgres" user: initdb refuses root. Install PostgreSQL with `apt-get install -y --no-upgrade postgresql`, which creates it.');
  return { uid: Number(id.stdout.trim()), gid: Number(gid.stdout.trim()) };
}

/**
 * Pids of the processes whose parent is `parent` (from /proc: PostgreSQL's backends, checkpointer,
 * WAL writer, … are all children of the postmaster).
 */
export function childPids(parent) {
  const children = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    let stat;
    try {
      stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
    } catch {
      continue; // exited meanwhile
    }
    // "pid (comm) state ppid ...": comm may hold spaces and parentheses, so read after the last ')'
    const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
    if (ppid === parent) children.push(Number(entry));
  }
  return children;
}

/**
 * Stops (SIGSTOP) the processes `list()` returns until no new one appears, the first of them first
 * (a postmaster stopped first forks no new backend); returns the pids stopped, for {@link thawPids}.
 * Only pids the caller's own server owns are ever listed.
 */
export function freezePids(list) {
  const stopped = [];
  for (let round = 0; round < 5; round++) {
    const fresh = list().filter((pid) => !stopped.includes(pid));
    if (fresh.length === 0) break;
    for (const pid of fresh) {
      try {
        process.kill(pid, 'SIGSTOP');
        stopped.push(pid);
      } catch {
        // exited meanwhile
      }
    }
  }
  return stopped;
}

/** Resumes (SIGCONT) the pids {@link freezePids} stopped. */
export function thawPids(pids) {
  for (const pid of pids) {
    try {
      process.kill(pid, 'SIGCONT');
    } catch {
      // exited meanwhile
    }
  }
}

/**
 * Starts a fresh server. Returns { url, socketUrl, port, dir, durable, stop(), start(), halt(), crash(), restart(), pids(), freeze(), thaw() }.
 * `halt()` stops the server but keeps its data (to simulate an outage); `start()` brings it back.
 * `crash()` stops it with `-m immediate` (no checkpoint: the next start replays the WAL, like after
 * a crash) and `restart()` starts it again; both return promises and leave the event loop free,
 * so clients in the same process keep running meanwhile. `durable: true` keeps PostgreSQL's own defaults (fsync, synchronous_commit,
 * full_page_writes on), so a commit it acknowledged survives `crash()`; the default trades that
 * for speed (tests never crash the server).
 * `freeze()` stops every process of this server with SIGSTOP (the postmaster from its own
 * postmaster.pid, then its children: the server hangs with its connections open, as on a stalled
 * disk or a paused VM) and `thaw()` resumes them with SIGCONT.
 * `netns` runs the server inside that network namespace (root only), listening on `listenAddress`
 * there; `url` then goes through the namespace's address, and `socketUrl` (the Unix socket in `dir`,
 * which no network fault touches) is how to reach it from outside.
 */
export async function startPostgres({ bin = findPostgresBin(), port, durable = false, netns, listenAddress = '127.0.0.1' } = {}) {
  if (!bin) throw new Error('PostgreSQL binaries (initdb, pg_ctl) were not found. Install them with `apt-get install -y --no-upgrade postgresql` or set DATABASE_URL.');
  port ??= await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'nest-resilience-pg-'));
  const user = postgresUser();
  if (user) chownSync(dir, user.uid, user.gid);
  // In a namespace `ip netns exec` needs root, and initdb/postgres refuse it: setpriv drops to the
  // postgres user after entering the namespace.
  const command = (file, args) =>
    netns
      ? ['ip', ['netns', 'exec', netns, 'setpriv', `--reuid=${user.uid}`, `--regid=${user.gid}`, '--clear-groups', join(bin, file), ...args]]
      : [join(bin, file), args];
  if (netns && !user) throw new Error('startPostgres({ netns }) needs root (ip netns exec).');
  const processOptions = { ...(user && !netns ? { uid: user.uid, gid: user.gid } : {}), cwd: dir };
  const run = (file, args) => execFileSync(...command(file, args), { stdio: ['ignore', 'pipe', 'pipe'], ...processOptions });
  const runAsync = (file, args) =>
    new Promise((resolve, reject) => execFile(...command(file, args), processOptions, (error) => (error ? reject(error) : resolve())));
  const data = join(dir, 'data');
  run('initdb', ['-D', data, '-U', 'postgres', '--auth=trust', '-E', 'UTF8', '--locale=C.UTF-8', '--no-sync']);
  // initdb trusts loopback only; a server listening elsewhere (a namespace's veth) trusts its own subnet
  if (listenAddress !== '127.0.0.1') appendFileSync(join(data, 'pg_hba.conf'), 'host all all samenet trust\n');
  const durability = durable
    ? '-c fsync=on -c synchronous_commit=on -c full_page_writes=on'
    : '-c fsync=off -c synchronous_commit=off -c full_page_writes=off';
  const options = `-p ${port} -k ${dir} -c listen_addresses=${listenAddress} ${durability} -c max_connections=300`;
  const start = () => run('pg_ctl', ['-D', data, '-l', join(dir, 'server.log'), '-w', '-o', options, 'start']);
  // fast (not immediate): it checkpoints, so commits made under synchronous_commit=off survive a restart.
  const halt = () => run('pg_ctl', ['-D', data, '-m', 'fast', '-w', 'stop']);
  const crash = () => runAsync('pg_ctl', ['-D', data, '-m', 'immediate', '-w', 'stop']);
  const restart = () => runAsync('pg_ctl', ['-D', data, '-l', join(dir, 'server.log'), '-w', '-o', options, 'start']);
  const postmasterPid = () => Number(readFileSync(join(data, 'postmaster.pid'), 'utf8').split('\n')[0]);
  const pids = () => {
    const postmaster = postmasterPid();
    return [postmaster, ...childPids(postmaster)];
  };
  let frozen = [];
  start();
  return {
    port,
    dir,
    durable,
    url: `postgres://postgres@${listenAddress}:${port}/postgres`,
    socketUrl: `postgres://postgres@localhost:${port}/postgres?host=${encodeURIComponent(dir)}`,
    start,
    halt,
    crash,
    restart,
    pids,
    freeze() {
      frozen = freezePids(pids);
      return frozen;
    },
    thaw() {
      thawPids(frozen);
      frozen = [];
    },
    stop() {
      thawPids(frozen);
      try {
        run('pg_ctl', ['-D', data, '-m', 'fast', '-w', 'stop']);
      } catch {
        // already stopped
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
