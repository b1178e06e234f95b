/**
 * Kata's agent API over ttrpc: grpc.Health and grpc.AgentService, with
 * request and response code generated from agent/proto (runtime/gen). Every
 * call goes through `call`, which takes a method of the generated service
 * descriptors: nothing but Kata's methods can be sent.
 */
import { create, toBinary, type DescMessage, type DescMethodUnary, type MessageInitShape, type MessageShape } from '@bufbuild/protobuf';
import { AgentService } from './gen/agent_pb.js';
import { Health, HealthCheckResponse_ServingStatus } from './gen/health_pb.js';
import { decodeMessage, type TtrpcClient } from './ttrpc.js';

export { AgentService, Health };
export const SERVING_STATUS = HealthCheckResponse_ServingStatus;

export interface CallOptions {
  /** Bounds the wait here (ms). */
  timeoutMs?: number;
}

/** Something that records each RPC by its path (the boot test's list of calls). */
export type RpcObserver = (path: string) => void;

export interface VersionInfo {
  grpcVersion: string;
  agentVersion: string;
}

export class AgentClient {
  constructor(
    readonly ttrpc: TtrpcClient,
    private readonly observe?: RpcObserver,
  ) {}

  /** One unary RPC of Kata's services. */
  async call<I extends DescMessage, O extends DescMessage>(
    method: DescMethodUnary<I, O>,
    input: MessageInitShape<I>,
    opts: CallOptions = {},
  ): Promise<MessageShape<O>> {
    const service = method.parent.typeName;
    this.observe?.(`/${service}/${method.name}`);
    const payload = toBinary(method.input, create(method.input, input));
    const b = await this.ttrpc.call(service, method.name, payload, opts.timeoutMs !== undefined ? { timeoutMs: opts.timeoutMs } : {});
    return decodeMessage(method.output, b, `/${service}/${method.name} answer`);
  }

  async check(timeoutMs?: number): Promise<HealthCheckResponse_ServingStatus> {
    return (await this.call(Health.method.check, {}, timeoutMs !== undefined ? { timeoutMs } : {})).status;
  }

  async version(timeoutMs?: number): Promise<VersionInfo> {
    const v = await this.call(Health.method.version, {}, timeoutMs !== undefined ? { timeoutMs } : {});
    return { grpcVersion: v.grpcVersion, agentVersion: v.agentVersion };
  }

  close(): void {
    this.ttrpc.close();
  }
}
