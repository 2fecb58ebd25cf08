/**
 * A TCP load balancer for fleet tests: what stands in front of several Sleigh servers in
 * production (nginx, HAProxy, a cloud load balancer). Each new connection goes to the next
 * backend in turn; a backend that refuses the connection is skipped, so when a server dies its
 * clients' reconnects land on the others.
 */
import { createServer, connect, type Server, type Socket } from 'node:net';

export class Balancer {
  private next = 0;
  private readonly open = new Set<Socket>();
  /** Where each connection went, by backend URL (tests check that clients moved). */
  readonly routed = new Map<string, number>();

  private constructor(
    private readonly server: Server,
    readonly port: number,
    private backends: string[],
  ) {}

  /** Listens on a free port of 127.0.0.1 in front of `backends` (http://host:port URLs). */
  static async start(backends: readonly string[]): Promise<Balancer> {
    const server = createServer();
    const port = await new Promise<number>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => {
        const address = server.address();
        resolve(typeof address === 'object' && address !== null ? address.port : 0);
      });
    });
    const balancer = new Balancer(server, port, [...backends]);
    server.on('connection', (client) => balancer.route(client));
    return balancer;
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  setBackends(backends: readonly string[]): void {
    this.backends = [...backends];
  }

  /** Cuts every open connection, as a network blip would: clients reconnect. */
  dropAll(): void {
    for (const socket of this.open) socket.destroy();
  }

  async close(): Promise<void> {
    this.dropAll();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private route(client: Socket): void {
    this.open.add(client);
    client.on('close', () => this.open.delete(client));
    client.on('error', () => client.destroy());
    client.pause();
    const tryBackend = (tries: number): void => {
      if (tries >= this.backends.length || client.destroyed) {
        client.destroy();
        return;
      }
      const target = this.backends[this.next++ % this.backends.length]!;
      const { hostname, port } = new URL(target);
      const upstream = connect(Number(port), hostname);
      upstream.once('error', () => {
        upstream.destroy();
        if (!connected) tryBackend(tries + 1);
        else client.destroy();
      });
      let connected = false;
      upstream.once('connect', () => {
        connected = true;
        this.routed.set(target, (this.routed.get(target) ?? 0) + 1);
        this.open.add(upstream);
        upstream.on('close', () => {
          this.open.delete(upstream);
          client.destroy();
        });
        client.on('close', () => upstream.destroy());
        client.pipe(upstream);
        upstream.pipe(client);
        client.resume();
      });
    };
    tryBackend(0);
  }
}
