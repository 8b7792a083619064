// The clients the HTTP-client benchmark compares, each making the same call (GET /data, JSON body
// parsed) to the same loopback upstream with a keep-alive pool.
import { Agent as HttpAgent } from 'node:http';
import { HttpService } from '@nestjs/axios';
import axios from 'axios';
import got from 'got';
import { HttpClient } from 'nest-resilience/http';
import { firstValueFrom } from 'rxjs';
import { Agent, request } from 'undici';

/** Names of the compared clients. */
export const CLIENTS = ['undici', 'http-client', 'got', 'nestjs-axios'] as const;
export type ClientName = (typeof CLIENTS)[number];

/** What each row of the table is. */
export const CLIENT_LABELS: Record<ClientName, string> = {
  undici: 'raw `undici.request` (keep-alive Agent)',
  'http-client': '`HttpClient` (nest-resilience/http, defaults: timeouts, 3 attempts, breaker)',
  got: 'got 14 (retry limit 2, keep-alive agent)',
  'nestjs-axios': '@nestjs/axios `HttpService` (axios, keep-alive agent)',
};

/** One client ready to call the upstream: `call()` resolves with the parsed body. */
export interface BenchClient {
  call(): Promise<unknown>;
  close(): Promise<void>;
}

/** Keep-alive sockets per origin for every client (the same cap everywhere). */
const CONNECTIONS = 64;
const PATH = '/data';

/** Creates the client `name` for the upstream at `baseUrl`. */
export function createClient(name: ClientName, baseUrl: string): BenchClient {
  switch (name) {
    case 'undici': {
      const dispatcher = new Agent({ connections: CONNECTIONS });
      const url = `${baseUrl}${PATH}`;
      return {
        call: async () => {
          const response = await request(url, { dispatcher });
          if (response.statusCode !== 200) throw new Error(`status ${response.statusCode}`);
          return response.body.json();
        },
        close: () => dispatcher.close(),
      };
    }
    case 'http-client': {
      const client = new HttpClient('bench', { baseUrl, connections: CONNECTIONS });
      return { call: async () => (await client.get(PATH)).data, close: () => client.close() };
    }
    case 'got': {
      const agent = new HttpAgent({ keepAlive: true, maxSockets: CONNECTIONS });
      const instance = got.extend({ prefixUrl: baseUrl, agent: { http: agent }, retry: { limit: 2 }, responseType: 'json' });
      return {
        call: async () => (await instance.get(PATH.slice(1))).body,
        close: async () => agent.destroy(),
      };
    }
    case 'nestjs-axios': {
      const agent = new HttpAgent({ keepAlive: true, maxSockets: CONNECTIONS });
      const service = new HttpService(axios.create({ baseURL: baseUrl, httpAgent: agent }));
      return {
        call: async () => (await firstValueFrom(service.get(PATH))).data,
        close: async () => agent.destroy(),
      };
    }
  }
}
