/**
 * The small part of `oidc-provider` 9 (which ships no types) that test/support/oidc-issuer.ts
 * uses. Configuration is deliberately loose (`Record<string, unknown>`): oidc-provider validates
 * it at construction and the harness is the only caller.
 */
declare module 'oidc-provider' {
  type IncomingMessage = import('node:http').IncomingMessage;
  type ServerResponse = import('node:http').ServerResponse;

  /** The Koa context handed to configuration hooks (only what the harness reads). */
  export interface KoaContextWithOIDC {
    get(header: string): string;
  }

  interface ClientModel {
    readonly clientId: string;
  }

  interface GrantModel {
    addOIDCScope(scope: string): void;
    save(): Promise<string>;
  }

  interface AccessTokenModel {
    save(): Promise<string>;
  }

  export default class Provider {
    constructor(issuer: string, configuration?: Record<string, unknown>);
    readonly issuer: string;
    proxy: boolean;
    callback(): (req: IncomingMessage, res: ServerResponse) => void;
    readonly Client: { find(id: string): Promise<ClientModel | undefined> };
    readonly Grant: new (fields: { accountId: string; clientId: string }) => GrantModel;
    readonly AccessToken: new (fields: { accountId: string; client: ClientModel; grantId: string; scope: string; expiresWithSession?: boolean }) => AccessTokenModel;
  }

  export const errors: {
    readonly InvalidTarget: new (description?: string) => Error;
  };
}

/** The in-memory adapter (not exported by the package entry; the harness shares one store across key rotations). */
declare module 'oidc-provider/lib/adapters/memory_adapter.js' {
  /** An adapter factory over one fresh store. */
  export function createMemoryAdapter(clockTolerance?: number): (model: string) => unknown;
}
