import { readFile } from 'node:fs/promises';

/** A file of the console page, as served. */
export interface ConsoleAsset {
  readonly body: string;
  readonly contentType: string;
}

/** The page's files: nothing else under `assets/` is ever read. */
const ASSETS: Readonly<Record<string, string>> = {
  'index.html': 'text/html; charset=utf-8',
  'console.css': 'text/css; charset=utf-8',
  'console.js': 'text/javascript; charset=utf-8',
};

/** Where they are: next to this module, in the sources (`lib/console/assets`) and in the package (`dist/console/assets`). */
const DIRECTORY = new URL('./assets/', import.meta.url);

const cache = new Map<string, Promise<ConsoleAsset>>();

/** The asset `name` (read once), or `undefined` for any other name. @internal */
export function consoleAsset(name: string): Promise<ConsoleAsset> | undefined {
  const contentType = ASSETS[name];
  if (contentType === undefined) return undefined;
  let asset = cache.get(name);
  if (asset === undefined) {
    asset = readFile(new URL(name, DIRECTORY), 'utf8').then((body) => ({ body, contentType }));
    cache.set(name, asset);
    asset.catch(() => cache.delete(name));
  }
  return asset;
}

/** The page with its `<base href>` set to `basePath` (so its relative URLs work under any prefix). @internal */
export async function consolePage(basePath: string): Promise<ConsoleAsset> {
  const page = await consoleAsset('index.html')!;
  return { ...page, body: page.body.replace('<!--base-->', `<base href="${escapeAttribute(basePath)}">`) };
}

/** The directory the assets are read from (the build copies it next to the compiled module). @internal */
export const CONSOLE_ASSETS_DIRECTORY = DIRECTORY;

function escapeAttribute(value: string): string {
  return value.replace(/&/g, '&amp;').replace(/"/g, '&quot;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}
