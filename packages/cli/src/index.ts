export { main } from './main.js';
export type { Output } from './context.js';
