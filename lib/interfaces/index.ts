export * from './resilience-module-options.interface.js';
