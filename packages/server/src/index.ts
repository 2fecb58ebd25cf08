export { generateAdminKey, loadOrCreateAdminKey } from './admin-key.js';
export { SLEIGH_VERSION, SleighServer, type ServerOptions } from './server.js';
export { Subscriptions } from './sync/subscriptions.js';
