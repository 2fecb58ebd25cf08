export {
  adminKeyProblem,
  generateAdminKey,
  loadOrCreateAdminKey,
  MIN_ADMIN_KEY_LENGTH,
} from './admin-key.js';
export { SLEIGH_VERSION, SleighServer, type ServerOptions } from './server.js';
export { Subscriptions } from './sync/subscriptions.js';
