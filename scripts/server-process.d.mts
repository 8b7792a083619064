/** `$envVar` (an exact path) when it exists, else the first of `names` found in `firstDirs`, then on PATH, then in `extraDirs`. */
export function findExecutable(names: readonly string[], options?: { envVar?: string; firstDirs?: readonly string[]; extraDirs?: readonly string[] }): string | undefined;
/** Polls `check` every `intervalMs` until it answers true; throws `${what} within <timeoutMs> ms.` after `timeoutMs`. */
export function waitUntil(check: () => Promise<boolean> | boolean, options: { timeoutMs: number; intervalMs?: number; what: string }): Promise<void>;
/** Whether something accepts TCP connections on 127.0.0.1:`port` (a server expected up, or stopped). */
export function listening(port: number): Promise<boolean>;
