import react from '@vitejs/plugin-react';
import { defineConfig } from 'vite';

/** Where `vite dev` forwards the sync protocol and /metrics (a `sleigh dev` server). */
const target = process.env.SLEIGH_URL ?? 'http://127.0.0.1:3210';

export default defineConfig({
  base: '/dashboard/',
  plugins: [react()],
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    // uPlot, dagre and React are one small app; a single chunk keeps serving trivial.
    chunkSizeWarningLimit: 1000,
  },
  server: {
    proxy: {
      '/api': { target, ws: true, changeOrigin: true },
      '/metrics': { target, changeOrigin: true },
    },
  },
  preview: {
    proxy: {
      '/api': { target, ws: true, changeOrigin: true },
      '/metrics': { target, changeOrigin: true },
    },
  },
});
