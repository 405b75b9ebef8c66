export * from './span.js';
export * from './ids.js';
export { timePerService, type ServiceTime } from './service-time.js';
