// The web UI's build: `make build` runs `vite build` into web/dist, which `osprey up` serves.
// Everything is bundled (no CDN): the UI works on a machine without internet.
import { defineConfig } from 'vite';
import react from '@vitejs/plugin-react';

export default defineConfig({
  root: import.meta.dirname,
  base: '/',
  plugins: [react()],
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    assetsDir: 'assets',
    chunkSizeWarningLimit: 2500,
    sourcemap: false,
  },
  server: {
    // `npx vite web` during development: the API comes from a running osprey up
    proxy: { '/api': 'http://127.0.0.1:7070' },
  },
});
