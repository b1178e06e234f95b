/* grpc.Health, as Kata's agent answers it: always SERVING; its version and API version. */
#define _GNU_SOURCE
#include "agent.h"
#include "health.pb-c.h"

void h_check(const struct call *call, const ProtobufCMessage *m)
{
	(void)m;
	Grpc__HealthCheckResponse resp = GRPC__HEALTH_CHECK_RESPONSE__INIT;
	resp.status = GRPC__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING;
	reply_msg(call, &resp.base);
}

void h_version(const struct call *call, const ProtobufCMessage *m)
{
	(void)m;
	Grpc__VersionCheckResponse resp = GRPC__VERSION_CHECK_RESPONSE__INIT;
	resp.grpc_version = AGENT_API_VERSION;
	resp.agent_version = AGENT_VERSION;
	reply_msg(call, &resp.base);
}
