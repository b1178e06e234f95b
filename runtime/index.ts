/**
 * Public entry point of the runtime stage: configuration.toml, the QEMU
 * command line, the VM lifecycle, the ttrpc agent client, host checks and env.
 */
export { boot, resolveRuntimeConfig, ACCELS, CHANNELS, type BootOptions, type BootResult } from './boot.js';
export { parseConfig, loadConfig, defaultConfig, applyOverrides, findConfig, type RuntimeConfig, type ConfigOverrides, type GuestArch, type HypervisorConfig, type AgentConfig } from './config.js';
export { planQemu, kernelParams, rootParams, KATA_AMD64_PARAMS, KATA_ARM64_PARAMS, KATA_COMMON_PARAMS, KATA_SYSTEMD_PARAMS, type QemuPlan, type QemuPlanInput, type Accel, type AgentChannel, type RootDevice } from './qemu.js';
export { Vm, type VmOptions } from './vm.js';
export { checkHost, resolveAccel, runProbe, findQemu, qemuBinaryFor, hostGuestArch, type HostReport, type ProbeResult } from './host.js';
export { collectEnv, envReport, envToml, type EnvReport } from './env.js';
export { AgentClient, SERVING_STATUS, type ExecRequest, type ExecResult, type VersionInfo } from './agent-client.js';
export { TtrpcClient, RpcError, encodeFrame, FrameDecoder, encodeRequest, decodeResponse, TTRPC_MAX_MESSAGE } from './ttrpc.js';
