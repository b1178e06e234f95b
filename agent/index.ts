/**
 * Public entry point of the agent stage: osbuilder's minimal guest agent
 * (static C, agent/src) and its build. Protocol: Kata's, agent/proto/*.proto (the C and
 * the runtime's TypeScript are generated from them).
 */
export {
  buildAgent,
  defaultAgentBinary,
  planAgentBuild,
  readAgentSources,
  agentDir,
  agentProtoDir,
  agentVersion,
  chooseCompiler,
  compilerPackages,
  verifyAgentBinary,
  AGENT_CFLAGS,
  type AgentEngine,
  type AgentLibc,
  type AgentBuildInput,
  type AgentBuildPlan,
  type AgentBuildResult,
  type BuildAgentOptions,
} from './build.js';

/** Where the agent listens in the guest (Kata: vsock port 1024; virtio-serial port name). */
export const AGENT_VSOCK_PORT = 1024;
export const AGENT_SERIAL_NAME = 'agent.channel.0';
/** Install path in the rootfs (Kata's). */
export const AGENT_INSTALL_PATH = '/usr/bin/kata-agent';
