/**
 * Warden's gRPC listener (`WARDEN_GRPC_ADDR`): Nest's gRPC transport serving the Cerbos API and
 * Envoy's ext_authz (`envoy.service.auth.v3.Authorization`) from the protos under
 * `apps/broker/src/proto` (copied next to the build by `nest build`), connected to the HTTP app
 * as a hybrid microservice. The only change to Nest's `ServerGrpc` is that it keeps the port it
 * bound, so `127.0.0.1:0` (a free port, as tests use) can be reported once listening.
 */
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Server, ServerCredentials } from '@grpc/grpc-js';
import type { INestApplication } from '@nestjs/common';
import { WardenError } from '@warden/core';
import { ServerGrpc } from '@nestjs/microservices';
import type { GrpcListenConfig } from '../config/broker-config.js';
import { CERBOS_PROTO_LOADER_OPTIONS } from './cerbos-grpc.convert.js';

/** Where the `.proto` files are: `src/proto` in the sources, the same place relative to this file in the build. */
export const PROTO_DIR = join(dirname(fileURLToPath(import.meta.url)), '..', 'proto');

/** `host:port` as gRPC takes it (IPv6 hosts in brackets). */
export function grpcAddress(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}

/** Nest's gRPC server, remembering the port it bound. */
export class WardenGrpcServer extends ServerGrpc {
  private boundPort: number | undefined;

  constructor(private readonly listenConfig: GrpcListenConfig) {
    super({
      // SECURITY: binds the configured host, 127.0.0.1 by default; never 0.0.0.0 implicitly.
      url: grpcAddress(listenConfig.host, listenConfig.port),
      package: ['cerbos.svc.v1', 'envoy.service.auth.v3', 'agentgateway.dev.ext_mcp'],
      protoPath: ['cerbos/svc/v1/svc.proto', 'envoy/service/auth/v3/external_auth.proto', 'agentgateway/dev/ext_mcp/ext_mcp.proto'],
      loader: { ...CERBOS_PROTO_LOADER_OPTIONS, includeDirs: [PROTO_DIR] },
    });
  }

  /** As Nest's, plus the bound port (grpc-js reports it only to the bind callback). */
  override async createClient(): Promise<Server> {
    const server = new Server();
    this.boundPort = await new Promise<number>((resolve, reject) => {
      server.bindAsync(this.url, ServerCredentials.createInsecure(), (err, port) => (err ? reject(err) : resolve(port)));
    });
    return server;
  }

  /** `host:port` once listening. */
  address(): string | undefined {
    return this.boundPort === undefined ? undefined : grpcAddress(this.listenConfig.host, this.boundPort);
  }
}

const servers = new WeakMap<INestApplication, WardenGrpcServer>();

/** Connects the gRPC services to `app` (started by {@link listenGrpc}). */
export function connectGrpc(app: INestApplication, config: GrpcListenConfig): void {
  const server = new WardenGrpcServer(config);
  app.connectMicroservice({ strategy: server });
  servers.set(app, server);
}

/**
 * Starts the gRPC listener of an app built by `createBrokerApp`; resolves to the bound
 * `host:port`. Fails (rejects) when the address cannot be bound.
 */
export async function listenGrpc(app: INestApplication): Promise<string> {
  const server = servers.get(app);
  if (server === undefined) throw new WardenError('ERR_INTERNAL', 'BUG: no gRPC server connected to this app');
  await app.startAllMicroservices();
  const address = server.address();
  if (address === undefined) throw new WardenError('ERR_INTERNAL', 'BUG: the gRPC server did not report its port');
  return address;
}
