// one probe for the throwaway servers' scripts and the tests that check a server is up (or stopped)
export { listening } from '../../scripts/server-process.mjs';
