export * from './span.js';
export * from './ids.js';
