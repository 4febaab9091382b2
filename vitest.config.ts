import { defineConfig } from 'vitest/config';
import swc from 'unplugin-swc';
import { fileURLToPath } from 'node:url';

const lib = (name: string) => fileURLToPath(new URL(`./libs/${name}/src/index.ts`, import.meta.url));

export default defineConfig({
  plugins: [swc.vite({ module: { type: 'es6' } })],
  resolve: { alias: { '@warden/core': lib('core'), '@warden/decision': lib('decision'), '@warden/resolvers': lib('resolvers'), '@warden/delegation': lib('delegation'), '@warden/gateway': lib('gateway'), '@warden/persistence': lib('persistence'), '@warden/client': lib('client'), '@warden/budget': lib('budget'), '@warden/audit': lib('audit') } },
  test: {
    environment: 'node',
    include: ['apps/**/*.spec.ts', 'libs/**/*.spec.ts', 'test/**/*.spec.ts', 'test/**/*.e2e-spec.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
  },
});
