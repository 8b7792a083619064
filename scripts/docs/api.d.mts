/** docs/api/, the generated API reference. */
export const API_DIR: string;
/** Runs TypeDoc into `out`. */
export function generate(out: string): { ok: boolean; output: string };
/** Files that differ between two generated trees. */
export function differences(expectedDir: string, actualDir: string): string[];
/** Regenerates the reference into a temp folder and compares it with docs/api/. */
export function checkApiReference(): { problems: string[]; files: number };
