// Type-aware lint: floating promises and misused promises are errors, as in
// opentelemetry-js. Generated and third-party output is ignored.
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', 'native/**', 'bpf/**', 'web/dist/**', 'bench/**', '**/*.mjs', '**/*.cjs', 'demo/**'] },
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: { parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname } },
    rules: {
      '@typescript-eslint/no-floating-promises': [
        'error',
        { allowForKnownSafeCalls: [{ from: 'package', package: 'node:test', name: ['describe', 'it', 'test', 'suite'] }] },
      ],
      '@typescript-eslint/no-misused-promises': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/require-await': 'off',
      '@typescript-eslint/restrict-template-expressions': 'off',
    },
  },
  // React props are destructured callbacks declared as methods in their types: never `this`-bound
  { files: ['web/**/*.ts', 'web/**/*.tsx'], rules: { '@typescript-eslint/unbound-method': 'off' } },
);
