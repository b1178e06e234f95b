/**
 * Public entry point of the runtime stage: configuration.toml, the QEMU
 * command line, the VM lifecycle, the ttrpc agent client, host checks and env.
 */
export { boot, type BootResult } from './boot.js';
export { resolveRuntimeConfig, ACCELS, CHANNELS, type BootOptions, type BootSession, type HotAdd } from './boot-prepare.js';
export { Hotplug, parseDeviceSpec, parseObjectSpec, splitKeyval, type DeviceSpec, type ObjectSpec } from './hotplug.js';
export {
  parseConfig,
  loadConfig,
  defaultConfig,
  applyOverrides,
  findConfig,
  type RuntimeConfig,
  type ConfigOverrides,
  type GuestArch,
  type HypervisorConfig,
  type AgentConfig,
} from './config.js';
export {
  planQemu,
  kernelParams,
  rootParams,
  rootPortArgs,
  ROOT_PORT_PREF64_RESERVE,
  KATA_AMD64_PARAMS,
  KATA_ARM64_PARAMS,
  KATA_COMMON_PARAMS,
  KATA_SYSTEMD_PARAMS,
  type QemuPlan,
  type QemuPlanInput,
  type Accel,
  type AgentChannel,
  type RootDevice,
} from './qemu.js';
export { Vm, type VmOptions } from './vm.js';
export {
  checkHost,
  resolveAccel,
  runProbe,
  findQemu,
  qemuBinaryFor,
  hostGuestArch,
  parseGuestArch,
  agentChannelFor,
  type HostReport,
  type ProbeResult,
} from './host.js';
export { collectEnv, envReport, envToml, type EnvReport } from './env.js';
export { AgentClient, AgentService, Health, SERVING_STATUS, type VersionInfo, type RpcObserver } from './agent-client.js';
export { GuestSandbox, GuestContainer, GuestProcess, type ContainerSource, type ProcessIo, type ProcessInit } from './sandbox.js';
export { resolveContainer, runContainer, newContainerId, type ContainerRequest, type ContainerResult, type GuestMount } from './container-run.js';
export { defaultContainerRootfs, containerOsRelease, CONTAINER_OS_ID, type ContainerRootfs } from './container-rootfs.js';
export { defaultSpec, specFromConfig, parseConfigJson, bindMount, setRoot, tmpfsMount, type Spec } from './oci.js';
export { SharedDir, KATA_GUEST_SHARED_DIR, KATA_HOST_SHARED_BASE, SHARED_FS_TAG } from './shared-fs.js';
export { qmpCommand, QmpSession, type QmpEvent } from './qmp.js';
export { TtrpcClient, RpcError, encodeFrame, FrameDecoder, encodeRequest, decodeResponse, TTRPC_MAX_MESSAGE, RPC_CODES } from './ttrpc.js';
