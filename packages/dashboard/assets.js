// The built dashboard (vite build writes it here); the CLI hands this folder to the server.
import { fileURLToPath, URL } from 'node:url';

export const dashboardDir = fileURLToPath(new URL('./dist/', import.meta.url));
