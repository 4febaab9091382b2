/**
 * Enforces DESIGN.md section 2 (folders and dependency direction). Run by `npm run depcheck`
 * and CI. Each rule names the design sentence it enforces.
 * @type {import('dependency-cruiser').IConfiguration}
 */
module.exports = {
  forbidden: [
    {
      name: 'no-circular',
      comment: 'A cycle is a design bug (STYLE 7.2).',
      severity: 'error',
      from: {},
      to: { circular: true },
    },
    {
      name: 'core-imports-nothing',
      comment: 'libs/core is the shared vocabulary and imports nothing of ours.',
      severity: 'error',
      from: { path: '^libs/core/' },
      to: { path: '^(libs|apps)/', pathNot: '^libs/core/' },
    },
    {
      name: 'no-nest-in-core-or-decision',
      comment: 'libs/core and libs/decision never import @nestjs/* (the engine is pure).',
      severity: 'error',
      from: { path: '^libs/(core|decision)/' },
      to: { path: '(^|/)node_modules/@nestjs/|^@nestjs/' },
    },
    {
      name: 'libs-import-only-core',
      comment:
        'Every lib may import libs/core and itself, nothing else of ours. Exception from DESIGN 2: ' +
        'libs/persistence implements store and sink interfaces declared in delegation, audit and resolvers.',
      severity: 'error',
      from: { path: '^libs/([^/]+)/', pathNot: '^libs/persistence/|\\.spec\\.ts$' },
      to: { path: '^libs/', pathNot: ['^libs/core/', '^libs/$1/'] },
    },
    {
      name: 'persistence-imports-only-contracts',
      comment: 'libs/persistence may import core, its own files and the libs whose interfaces it implements.',
      severity: 'error',
      from: { path: '^libs/persistence/', pathNot: '\\.spec\\.ts$' },
      to: { path: '^libs/', pathNot: '^libs/(core|persistence|delegation|audit|resolvers)/' },
    },
    {
      name: 'specs-import-libs-via-core-or-testing',
      comment: 'Lib tests may additionally use libs/testing, and nothing else of other libs.',
      severity: 'error',
      from: { path: '^libs/([^/]+)/.*\\.spec\\.ts$' },
      to: { path: '^libs/', pathNot: ['^libs/core/', '^libs/testing/', '^libs/$1/'] },
    },
    {
      name: 'nothing-imports-apps',
      comment: 'apps/* are composition roots: nothing imports them (not even another app).',
      severity: 'error',
      from: { path: '^(libs/|apps/([^/]+)/)' },
      to: { path: '^apps/', pathNot: '^apps/$2/' },
    },
    {
      name: 'only-through-index',
      comment: "A lib's public face is its index.ts; nothing outside a lib imports its inner files.",
      severity: 'error',
      from: { path: '^(?!libs/([^/]+)/)' },
      to: { path: '^libs/[^/]+/src/', pathNot: '^libs/[^/]+/src/index\\.ts$' },
    },
    {
      name: 'only-through-index-from-other-libs',
      comment: "Another lib's inner files are private to it.",
      severity: 'error',
      from: { path: '^libs/([^/]+)/' },
      to: { path: '^libs/[^/]+/src/', pathNot: ['^libs/$1/', '^libs/[^/]+/src/index\\.ts$'] },
    },
    {
      name: 'not-to-unresolvable',
      comment:
        'Every import must resolve (a typo in a path alias would otherwise hide a violation). ' +
        '`✖` is what dependency-cruiser 16 reports for a type member named `import` holding a type ' +
        'literal (`import: { name: string }[]`), which is not an import at all.',
      severity: 'error',
      from: {},
      to: { couldNotResolve: true, pathNot: '^✖$' },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    exclude: { path: '(^|/)dist/' },
    tsConfig: { fileName: 'tsconfig.json' },
    tsPreCompilationDeps: true,
    parser: 'tsc',
    enhancedResolveOptions: {
      exportsFields: ['exports'],
      conditionNames: ['import', 'require', 'node', 'default', 'types'],
      extensions: ['.ts', '.js', '.mjs', '.cjs', '.json', '.d.ts'],
    },
  },
};
