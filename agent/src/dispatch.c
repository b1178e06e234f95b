/*
 * Routes a ttrpc.Request to its handler by the services' generated
 * descriptors (agent/proto), and answers what has no handler as the real
 * kata-agent does: a method of Kata's AgentService that osbuilder's agent
 * does not implement gets NOT_FOUND "/grpc.AgentService/<Method> is not
 * supported" (ttrpc-rust's generated default), an unknown service or method
 * gets ttrpc-rust's server statuses.
 */
#define _GNU_SOURCE
#include "agent.h"
#include "agent.pb-c.h"
#include "health.pb-c.h"
#include "ttrpc.pb-c.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include <string.h>

struct route {
	const char *method;
	handler_fn fn;
};

static const struct route HEALTH_ROUTES[] = {
	{ "Check", h_check },
	{ "Version", h_version },
};

static const struct route AGENT_ROUTES[] = {
	{ "CreateSandbox", h_create_sandbox },
	{ "DestroySandbox", h_destroy_sandbox },
	{ "GetGuestDetails", h_get_guest_details },
	{ "CreateContainer", h_create_container },
	{ "StartContainer", h_start_container },
	{ "RemoveContainer", h_remove_container },
	{ "ExecProcess", h_exec_process },
	{ "SignalProcess", h_signal_process },
	{ "WaitProcess", h_wait_process },
	{ "ReadStdout", h_read_stdout },
	{ "ReadStderr", h_read_stderr },
	{ "WriteStdin", h_write_stdin },
	{ "CloseStdin", h_close_stdin },
};

struct service {
	const ProtobufCServiceDescriptor *desc;
	const struct route *routes;
	size_t nroutes;
	handler_fn *by_index; /* the descriptor's method order */
};

static struct service SERVICES[] = {
	{ &grpc__health__descriptor, HEALTH_ROUTES, sizeof(HEALTH_ROUTES) / sizeof(HEALTH_ROUTES[0]), NULL },
	{ &grpc__agent_service__descriptor, AGENT_ROUTES, sizeof(AGENT_ROUTES) / sizeof(AGENT_ROUTES[0]), NULL },
};

/* Maps each route onto the generated method list; a route naming no method is a build bug. */
void dispatch_init(void)
{
	for (size_t s = 0; s < sizeof(SERVICES) / sizeof(SERVICES[0]); s++) {
		struct service *svc = &SERVICES[s];
		svc->by_index = calloc(svc->desc->n_methods, sizeof(handler_fn));
		if (!svc->by_index) {
			logmsg("out of memory");
			_exit(1);
		}
		for (size_t r = 0; r < svc->nroutes; r++) {
			const ProtobufCMethodDescriptor *m = protobuf_c_service_descriptor_get_method_by_name(svc->desc, svc->routes[r].method);
			if (!m) {
				logmsg("internal error: %s has no method %s", svc->desc->name, svc->routes[r].method);
				_exit(1);
			}
			svc->by_index[m - svc->desc->methods] = svc->routes[r].fn;
		}
	}
}

int call_alive(const struct call *call)
{
	return call->conn && call->conn->gen == call->gen && call->conn->fd >= 0;
}

void reply_msg(const struct call *call, const ProtobufCMessage *resp)
{
	if (!call_alive(call))
		return;
	size_t n = protobuf_c_message_get_packed_size(resp);
	uint8_t *b = malloc(n ? n : 1);
	if (!b) {
		conn_respond(call->conn, call->stream, CODE_INTERNAL, "out of memory", NULL, 0);
		return;
	}
	protobuf_c_message_pack(resp, b);
	conn_respond(call->conn, call->stream, CODE_OK, NULL, b, n);
	free(b);
}

void reply_err(const struct call *call, int code, const char *fmt, ...)
{
	if (!call_alive(call))
		return;
	char msg[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	conn_respond(call->conn, call->stream, code, msg, NULL, 0);
}

static const struct service *find_service(const char *name)
{
	for (size_t s = 0; s < sizeof(SERVICES) / sizeof(SERVICES[0]); s++)
		if (!strcmp(SERVICES[s].desc->name, name))
			return &SERVICES[s];
	return NULL;
}

static void invoke(const struct call *call, const struct service *svc, const ProtobufCMethodDescriptor *m, const ProtobufCBinaryData *payload)
{
	handler_fn fn = svc->by_index[m - svc->desc->methods];
	if (!fn) {
		reply_err(call, CODE_NOT_FOUND, "/%s/%s is not supported", svc->desc->name, m->name);
		return;
	}
	ProtobufCMessage *req = protobuf_c_message_unpack(m->input, NULL, payload->len, payload->data);
	if (!req) {
		/* ttrpc-rust: a payload that does not decode fails the handler: UNKNOWN. */
		reply_err(call, CODE_UNKNOWN, "ttrpc err: cannot decode %s", m->input->name);
		return;
	}
	fn(call, req);
	protobuf_c_message_free_unpacked(req, NULL);
}

void dispatch_request(struct conn *c, uint32_t stream, const uint8_t *p, size_t n)
{
	struct call call = { .conn = c, .gen = c->gen, .stream = stream };
	Ttrpc__Request *req = ttrpc__request__unpack(NULL, n, p);
	if (!req) {
		reply_err(&call, CODE_INVALID_ARGUMENT, "cannot decode ttrpc.Request");
		return;
	}
	if (req->timeout_nano > 0)
		call.deadline = now_ms() + (uint64_t)req->timeout_nano / 1000000 + 1;
	dbgmsg("stream %u: %s/%s", stream, req->service, req->method);
	const struct service *svc = find_service(req->service);
	const ProtobufCMethodDescriptor *m = svc ? protobuf_c_service_descriptor_get_method_by_name(svc->desc, req->method) : NULL;
	if (!svc)
		reply_err(&call, CODE_INVALID_ARGUMENT, "%s service does not exist", req->service);
	else if (!m)
		reply_err(&call, CODE_UNIMPLEMENTED, "%s method", req->method);
	else
		invoke(&call, svc, m, &req->payload);
	ttrpc__request__free_unpacked(req, NULL);
}
