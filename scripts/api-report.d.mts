/** api-report/, where the committed reports live. */
export const REPORT_DIR: string;
/** The most runtime exports the root entry `nest-resilience` may have. */
export const MAX_ROOT_RUNTIME_EXPORTS: number;
/** Exported names per entry point: at runtime, and type only. */
export type ExportCounts = Record<string, { runtime: number; typeOnly: number }>;
/** Every entry point of package.json "exports", with its files in dist/. */
export function entryPoints(): Array<{ name: string; types: string; js: string }>;
/** The report file name of an entry point. */
export function reportFileOf(entryName: string): string;
/** The reports dist/ gives now, by file name. */
export function generateReports(): Promise<{ reports: Map<string, string>; counts: ExportCounts }>;
/** The differences between api-report/ and dist/ (empty: up to date). */
export function checkReports(): Promise<{ problems: string[]; counts: ExportCounts }>;
/** Rewrites api-report/ from dist/. */
export function writeReports(): Promise<{ files: number; counts: ExportCounts }>;
