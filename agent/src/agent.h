/* osbuilder's minimal guest agent: shared declarations. */
#ifndef OSB_AGENT_H
#define OSB_AGENT_H

#include <stddef.h>
#include <stdint.h>
#include "pb.h"

#ifndef AGENT_VERSION
#define AGENT_VERSION "0.0.0-dev"
#endif
/* Kata's agent reports its API version as grpc_version. */
#define AGENT_API_VERSION "0.0.1"

/* ttrpc (containerd/ttrpc channel.go): 10-byte header, payload at most 4 MiB. */
#define TTRPC_HEADER_LEN 10
#define TTRPC_MAX_MESSAGE (4u << 20)
#define TTRPC_TYPE_REQUEST 1
#define TTRPC_TYPE_RESPONSE 2

/* google.rpc.Code values used here. */
#define CODE_OK 0
#define CODE_INVALID_ARGUMENT 3
#define CODE_DEADLINE_EXCEEDED 4
#define CODE_RESOURCE_EXHAUSTED 8
#define CODE_UNIMPLEMENTED 12
#define CODE_INTERNAL 13

#define VSOCK_PORT 1024
#define SERIAL_NAME "agent.channel.0"

extern int g_pid1;
extern int g_debug;
/* Serving a guest channel (vsock or virtio-serial), not a host test socket. */
extern int g_guest;
/* A stop signal (SIGTERM/SIGINT) read from the signalfd and not acted on yet; 0 = none.
 * Never set as PID 1, which ignores those signals. */
extern int g_stop_signal;

void logmsg(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void dbgmsg(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* init.c */
void pid1_setup(void);
void ensure_stdio(void);
void power_off(void) __attribute__((noreturn));

/* main.c: empties the agent's signalfd, recording a stop signal in g_stop_signal.
 * Whoever reads the signalfd must read it through this, or the stop is lost. */
void read_signals(int sigfd);

/* exec.c */
struct exec_req {
	char **argv; size_t argc;
	char **env; size_t envc;
	char *cwd;
	uint64_t timeout_ms;
	const uint8_t *stdin_data; size_t stdin_len;
};

struct exec_res {
	int exit_code;
	int signal;
	int timed_out;
	int truncated;
	struct buf out, err;
	char error[256];  /* set when the command could not be started */
};

/* Runs one command to completion (or its timeout); `sigfd` is the agent's signalfd (SIGCHLD,
 * SIGTERM, SIGINT). A stop signal kills the command's process group; exec_run still fills
 * `res` (exit 137, signal 9, a note on stderr) and returns, g_stop_signal set. */
void exec_run(const struct exec_req *req, struct exec_res *res, int sigfd);
/* Reaps every exited child (orphans reparented to PID 1 included); returns how many. */
int reap_children(void);

/* Exec output caps: both fit in one 4 MiB ttrpc frame with room for headers. */
#define EXEC_STDOUT_MAX (3u << 20)
#define EXEC_STDERR_MAX (768u << 10)

#endif
