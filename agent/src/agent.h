/* osbuilder's guest agent: declarations shared by its modules. */
#ifndef OSB_AGENT_H
#define OSB_AGENT_H

#include <poll.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <protobuf-c/protobuf-c.h>
#include "agent.pb-c.h"

#ifndef AGENT_VERSION
#define AGENT_VERSION "0.0.0-dev"
#endif
/* What Kata's agent reports as grpc_version (its API version). */
#define AGENT_API_VERSION "0.0.1"

/* ttrpc framing (containerd/ttrpc, ttrpc-rust): 10-byte header, payload at most 4 MiB. */
#define TTRPC_HEADER_LEN 10
#define TTRPC_MAX_MESSAGE (4u << 20)
#define TTRPC_TYPE_REQUEST 1
#define TTRPC_TYPE_RESPONSE 2
#define TTRPC_TYPE_DATA 3

/* google.rpc.Code values. */
enum {
	CODE_OK = 0,
	CODE_UNKNOWN = 2,
	CODE_INVALID_ARGUMENT = 3,
	CODE_DEADLINE_EXCEEDED = 4,
	CODE_NOT_FOUND = 5,
	CODE_ALREADY_EXISTS = 6,
	CODE_RESOURCE_EXHAUSTED = 8,
	CODE_FAILED_PRECONDITION = 9,
	CODE_UNIMPLEMENTED = 12,
	CODE_INTERNAL = 13,
};

#define VSOCK_PORT 1024
#define SERIAL_NAME "agent.channel.0"
/* Where containers' shared directory and per-container state live in the guest (Kata's). */
#define KATA_GUEST_SHARED_DIR "/run/kata-containers/shared/containers"
/* The largest ReadStdout/ReadStderr answer: well inside one 4 MiB frame. */
#define READ_STREAM_MAX (1u << 20)

extern int g_pid1, g_debug, g_guest;
/* errno of a failed PR_SET_CHILD_SUBREAPER (0: we reap container processes). */
extern int g_no_reaper;
/* A stop signal (SIGTERM/SIGINT, not as PID 1) not acted on yet; 0 = none. */
extern int g_stop_signal;
/* Set once DestroySandbox has been answered: the agent stops after this loop turn. */
extern int g_destroyed;

/* ------------------------------------------------------------ util.c */
void logmsg(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void dbgmsg(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
uint64_t now_ms(void);
char *xstrdup(const char *s);
int mkdir_p(const char *path, mode_t mode);
int write_file(const char *path, const char *text);
/* Reads at most len-1 bytes and NUL-terminates; returns bytes read or -1. */
ssize_t read_file(const char *path, char *buf, size_t len);
int write_all_fd(int fd, const void *p, size_t n);
/* Reads exactly n bytes before `deadline` (now_ms); 0 ok, -1 error/EOF, -2 timed out. */
int read_exact_until(int fd, void *p, size_t n, uint64_t deadline);
/* Waits up to ms for a child, SIGKILLs it then and waits 1 s more; 0 once reaped. */
int reap_within(pid_t pid, int *status, int ms);
void set_nonblock(int fd);
void close_fd(int *fd);
/* A container or exec id Kata accepts: [A-Za-z0-9][A-Za-z0-9_.-]+, at most 255 bytes. */
int valid_id(const char *id);

/* ------------------------------------------------------------ kmod.c */
/* A module name modprobe takes as a name and parameters it takes as name=value: 0, or -1 with err set. */
int check_kernel_module(const char *name, char *const *params, size_t n, char *err, size_t errlen);
/* modprobe name params…: 0 once loaded, or -1 with modprobe's own output in err. */
int load_kernel_module(const char *name, char *const *params, size_t n, char *err, size_t errlen);

/* ------------------------------------------------------------ ttrpc.c */
struct conn {
	int fd;
	int serial;      /* a virtio-serial port: one stream, no accept */
	unsigned gen;    /* changes whenever the slot gets a new peer */
	uint8_t hdr[TTRPC_HEADER_LEN];
	size_t hdr_got;
	uint32_t len, stream;
	uint8_t type;
	uint8_t *payload;
	size_t got;
	uint64_t discard; /* bytes of an oversized frame still to skip */
};

void conn_init(struct conn *c, int fd, int serial);
void conn_reset(struct conn *c);
/* Feeds received bytes through the frame parser; <0 = close the connection. */
int conn_feed(struct conn *c, const uint8_t *p, size_t n);
/* Sends one response frame: status (always present) and an optional payload. */
int conn_respond(struct conn *c, uint32_t stream, int code, const char *message, const uint8_t *payload, size_t len);

/* ------------------------------------------------------------ dispatch.c */
struct call {
	struct conn *conn;
	unsigned gen;
	uint32_t stream;
	uint64_t deadline; /* now_ms() value; 0 = none (ttrpc timeout_nano) */
};

typedef void (*handler_fn)(const struct call *call, const ProtobufCMessage *req);

void dispatch_init(void);
/* One complete request frame's payload (a ttrpc.Request). */
void dispatch_request(struct conn *c, uint32_t stream, const uint8_t *p, size_t n);
void reply_msg(const struct call *call, const ProtobufCMessage *resp);
void reply_err(const struct call *call, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* The connection the call came on is still the same peer. */
int call_alive(const struct call *call);

/* ------------------------------------------------------------ pending.c */
/* A request answered later (WaitProcess, ReadStdout, ...). */
struct pending {
	struct call call;
	/* Tries to finish; returns 1 when it has answered (the entry is then freed). */
	int (*progress)(struct pending *p);
	/* Optional: the fd and events to poll while waiting. Returns -1 for none. */
	int (*pollfd)(struct pending *p, short *events);
	/* Optional: frees what the kind allocated. */
	void (*release)(struct pending *p);
	/* Optional: ms (now_ms) at which progress must be tried again without an event. */
	uint64_t wake_at;
	void *data;
	struct pending *next;
};

void pending_add(struct pending *p);
/* The oldest entry that match() accepts, or NULL. */
const struct pending *pending_first(int (*match)(const struct pending *p, const void *arg), const void *arg);
/* Releases an entry that is not (or no longer) queued. */
void pending_discard(struct pending *p);
int pending_pollfds(struct pollfd *pfd, int max);
/* ms until the earliest deadline or wake-up, -1 = none. */
int pending_timeout(void);
void pending_run(void);
void pending_drop_conn(const struct conn *c);

/* ------------------------------------------------------------ process.c */
struct container;

struct process {
	struct container *ctr;
	char *exec_id;
	pid_t pid;
	int init;          /* the container's init process */
	int in_fd, out_fd, err_fd; /* our ends of its stdio pipes; -1 = closed */
	int exited, exit_code;
	uint64_t exited_at;
	int waited;        /* WaitProcess answered: removed after this loop turn (process_gc) */
	int pending_writes; /* WriteStdin calls still writing */
	int close_stdin;    /* CloseStdin arrived while writes were pending */
	struct process *next;
};

struct process *process_new(struct container *ctr, const char *exec_id, pid_t pid, int init, int fds[3]);
void process_free(struct process *p);
/* Kata's find_container_process: eid "" = the init process. When not found, answers `call`
 * as Kata does: INVALID_ARGUMENT / NOT_FOUND with the error's name, or INTERNAL with its
 * text when `internal` (the RPCs where Kata's agent wraps the error). */
struct process *process_lookup(const struct call *call, const char *cid, const char *eid, int internal);
/* Records a reaped child; returns 1 if it was one of ours. */
int process_reaped(pid_t pid, int status);
/* Reaps every exited child. */
void reap_children(void);
/* Removes the processes whose WaitProcess has been answered. */
void process_gc(void);

/* ------------------------------------------------------------ container.c */
enum ctr_state { CTR_CREATED, CTR_RUNNING };

struct container {
	char *id;
	enum ctr_state state;
	pid_t init_pid;    /* 0 once the init process has exited */
	int start_fd;      /* releases the init process (StartContainer) */
	char cgroup[512];  /* absolute cgroup directory, "" = none */
	char **mounts;     /* storages mounted for it, unmounted on removal */
	size_t nmounts;
	struct process *procs;
	int removing;      /* 1: RemoveContainer under way; 2: removed, destroyed by container_gc */
	struct container *next;
};

extern struct container *g_containers;
struct container *container_find(const char *id);
/* SIGKILLs every process of the container. */
void container_kill(struct container *c);
int container_all_exited(const struct container *c);
/* Unmounts, removes the cgroup, frees (the container is not in g_containers). */
void container_destroy(struct container *c);
/* Destroys the containers whose RemoveContainer has been answered. */
void container_gc(void);

/* ------------------------------------------------------------ spawn.c */
/* What the forked side needs to become a container's process. */
struct spawn_req {
	const Grpc__Process *proc;
	const Grpc__Spec *spec;    /* NULL for ExecProcess */
	struct container *ctr;     /* ExecProcess: the container joined */
	int sandbox_pidns;
	int stdio[3];              /* child ends */
	int parent_ends[3];        /* closed in the child */
};

/* Forks the process (through an intermediate, for the pid namespace); on success returns
 * its pid (as the agent sees it) after it is set up and, for a container, waiting for
 * StartContainer on *start_fd. On failure writes a message to err and returns -1. */
pid_t spawn_process(const struct spawn_req *req, const char *cgroup, int *start_fd, char *err, size_t errlen);

/* ------------------------------------------------------------ rootfs.c (child side) */
/* Builds the container's mount namespace: spec mounts, devices, masked paths, then pivots
 * into the rootfs. On error writes a message to err and returns -1. */
int setup_rootfs(const Grpc__Spec *spec, char *err, size_t errlen);
/* Resolves `path` inside `root` like a chroot would, never leaving it (symlinks included). */
int secure_join(const char *root, const char *path, char *out, size_t outlen);

/* ------------------------------------------------------------ mountopt.c */
struct mount_opts {
	unsigned long flags;   /* MS_* to set */
	unsigned long clear;   /* MS_* the options clear (rw, dev, ...) */
	unsigned long propagation; /* MS_SHARED/MS_PRIVATE/... (| MS_REC) */
	char data[1024];       /* what the kernel's filesystem parses */
	int bind;
};
/* Kata's/runc's option names; unknown ones go to data. -1 if data does not fit. */
int parse_mount_options(char *const *opts, size_t n, struct mount_opts *out);

/* ------------------------------------------------------------ storage.c */
/* Sets up one Storage (9p, virtio-fs, ephemeral, local): 1 = mounted at its mount point,
 * 0 = nothing to unmount later, -1 = failed (message in err). */
int storage_mount(const Grpc__Storage *s, char *err, size_t errlen);
extern const char *const STORAGE_HANDLERS[];
extern const size_t STORAGE_HANDLERS_COUNT;

/* ------------------------------------------------------------ cgroup.c */
/* Creates the container's cgroup v2 directory and applies Linux.Resources.
 * Returns 0 with dir filled ("" when no cgroup v2 is mounted and none is needed). */
int cgroup_create(const char *cid, const Grpc__Linux *linux, char *dir, size_t dirlen, char *err, size_t errlen);
int cgroup_add(const char *dir, pid_t pid);
/* The pids in the cgroup (cgroup.procs); returns how many were written to out. */
size_t cgroup_pids(const char *dir, pid_t *out, size_t max);
void cgroup_remove(const char *dir);

/* ------------------------------------------------------------ sandbox.c */
struct sandbox {
	int created;
	char *id;
	int uts_fd, ipc_fd, pid_fd; /* the sandbox's shared namespaces; -1 = none */
	int shared_pidns;           /* containers share one pid namespace (the first one's) */
	char **mounts;
	size_t nmounts;
};
extern struct sandbox g_sandbox;
/* Mounts each Storage; on failure unmounts what it mounted and answers the error. */
int mount_storages(const struct call *call, Grpc__Storage *const *st, size_t n, char ***mounts, size_t *nmounts);
void unmount_all(char **mounts, size_t n);
/* Kills and removes every container, unmounts the sandbox's storages (DestroySandbox, a stop). */
void sandbox_teardown(void);

/* ------------------------------------------------------------ handlers */
void h_check(const struct call *, const ProtobufCMessage *);
void h_version(const struct call *, const ProtobufCMessage *);
void h_create_sandbox(const struct call *, const ProtobufCMessage *);
void h_destroy_sandbox(const struct call *, const ProtobufCMessage *);
void h_get_guest_details(const struct call *, const ProtobufCMessage *);
void h_create_container(const struct call *, const ProtobufCMessage *);
void h_start_container(const struct call *, const ProtobufCMessage *);
void h_remove_container(const struct call *, const ProtobufCMessage *);
void h_exec_process(const struct call *, const ProtobufCMessage *);
void h_signal_process(const struct call *, const ProtobufCMessage *);
void h_wait_process(const struct call *, const ProtobufCMessage *);
void h_read_stdout(const struct call *, const ProtobufCMessage *);
void h_read_stderr(const struct call *, const ProtobufCMessage *);
void h_write_stdin(const struct call *, const ProtobufCMessage *);
void h_close_stdin(const struct call *, const ProtobufCMessage *);

/* ------------------------------------------------------------ init.c */
void pid1_setup(void);
void ensure_stdio(void);
void power_off(void) __attribute__((noreturn));

#endif
