/** Types of remote-engine.mjs (plain JS, shared with the bench). */
export interface RemoteEngine {
  /** DOCKER_HOST for it: unix://<host temp dir>/docker.sock */
  host: string;
  container: string;
  volume: string;
  stop(): Promise<void>;
}
export function dockerdImage(): Promise<string>;
export function startRemoteEngine(role?: 'test' | 'bench'): Promise<RemoteEngine>;
export function loadImage(ref: string, host: string): Promise<void>;
