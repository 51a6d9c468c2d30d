import { readdirSync, readFileSync, statSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface FixtureServer {
  url(path: string): string;
  /** Replace or add what a path serves. */
  set(path: string, route: Route): void;
  hits(path: string): number;
  close(): Promise<void>;
}
export interface Route {
  status?: number;
  headers?: Record<string, string>;
  body?: string | Buffer;
  /** A fixture file under tests/fixtures. */
  file?: string;
}

const fixturesDir = new URL('../fixtures/', import.meta.url);
export const fixture = (name: string) => readFileSync(new URL(name, fixturesDir));

/** Every file under tests/fixtures/<dir>, as paths relative to that folder (for `fixture(`${dir}/${name}`)`). */
export function fixtureFiles(dir: string): string[] {
  const out: string[] = [];
  const walk = (rel: string) => {
    for (const f of readdirSync(new URL(`${dir}/${rel}`, fixturesDir))) {
      const name = rel + f;
      if (statSync(new URL(`${dir}/${name}`, fixturesDir)).isDirectory()) walk(`${name}/`);
      else out.push(name);
    }
  };
  walk('');
  return out;
}

/** A real HTTP server on loopback serving fixture feeds, so the poller fetches over the network. */
export async function startFixtureServer(routes: Record<string, Route> = {}): Promise<FixtureServer> {
  const table = new Map(Object.entries(routes));
  const counts = new Map<string, number>();
  const server: Server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0]!;
    counts.set(path, (counts.get(path) ?? 0) + 1);
    const route = table.get(path);
    if (!route) {
      res.writeHead(404).end('not found');
      return;
    }
    const body = route.file ? fixture(route.file) : (route.body ?? '');
    res.writeHead(route.status ?? 200, { 'content-type': 'application/rss+xml; charset=utf-8', ...route.headers });
    res.end(body);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  return {
    url: (path) => `http://127.0.0.1:${port}${path}`,
    set: (path, route) => void table.set(path, route),
    hits: (path) => counts.get(path) ?? 0,
    close: () => new Promise((r) => server.close(() => r())),
  };
}
