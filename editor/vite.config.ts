import { fileURLToPath, URL } from 'node:url'

import vue from '@vitejs/plugin-vue'
import { defineConfig } from 'vitest/config'

// The bundle is built into the Python package's static folder, which the manager serves at /.
// It is a build artefact (gitignored): `make` runs `npm ci && npm run build` here.
export default defineConfig({
  plugins: [vue()],
  base: './',
  resolve: {
    alias: { '@': fileURLToPath(new URL('./src', import.meta.url)) },
  },
  build: {
    outDir: fileURLToPath(new URL('../config_manager/static', import.meta.url)),
    emptyOutDir: true,
    chunkSizeWarningLimit: 600,
  },
  server: {
    // `npm run dev` against a manager on :8081 (make run)
    proxy: {
      '/api': 'http://127.0.0.1:8081',
      '/readyz': 'http://127.0.0.1:8081',
      '/docs': 'http://127.0.0.1:8081',
      '/openapi.json': 'http://127.0.0.1:8081',
    },
  },
  test: {
    environment: 'happy-dom',
    include: ['src/**/*.test.ts'],
  },
})
