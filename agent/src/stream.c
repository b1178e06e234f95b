/*
 * A process's stdio as Kata's agent serves it: ReadStdout/ReadStderr wait
 * for output and answer at most `len` bytes (empty data = end of stream;
 * once the process has exited, 500 ms without output is the end too, so a
 * background child holding the pipe cannot hold the reader); WriteStdin
 * writes all of its data (empty data closes stdin); CloseStdin closes it.
 */
#define _GNU_SOURCE
#include "agent.h"
#include "agent.pb-c.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define EXIT_DRAIN_MS 500
/* WriteStdin calls in flight per process (each up to a 4 MiB message): bounds the memory held. */
#define MAX_PENDING_WRITES 16

struct stream_data {
	char *cid, *eid;
	int err;           /* ReadStderr (else ReadStdout) */
	uint32_t len;
	uint8_t *data;     /* WriteStdin: what is left to write */
	size_t size, off;
};

static struct stream_data *stream_data_new(const char *cid, const char *eid)
{
	struct stream_data *s = calloc(1, sizeof(*s));
	if (s) {
		s->cid = xstrdup(cid);
		s->eid = xstrdup(eid);
	}
	return s;
}

static void stream_release(struct pending *pd)
{
	struct stream_data *s = pd->data;
	free(s->cid);
	free(s->eid);
	free(s->data);
	free(s);
}

/* The process a pending entry is for, waited ones included (their pipes are still ours). */
static struct process *stream_process(const struct stream_data *s)
{
	struct container *c = container_find(s->cid);
	for (struct process *p = c ? c->procs : NULL; p; p = p->next)
		if (!strcmp(p->exec_id, s->eid))
			return p;
	return NULL;
}

static void answer_data(const struct call *call, const uint8_t *data, size_t n)
{
	Grpc__ReadStreamResponse resp = GRPC__READ_STREAM_RESPONSE__INIT;
	resp.data.data = (uint8_t *)data;
	resp.data.len = n;
	reply_msg(call, &resp.base);
}

/* One read attempt: 1 = answered (data or end of stream), 0 = nothing yet. */
static int try_read(const struct call *call, struct process *p, int err, uint32_t len, uint64_t *wake_at)
{
	int fd = p ? (err ? p->err_fd : p->out_fd) : -1;
	if (fd < 0) {
		answer_data(call, NULL, 0);
		return 1;
	}
	size_t want = len < READ_STREAM_MAX ? len : READ_STREAM_MAX;
	uint8_t *buf = malloc(want ? want : 1);
	if (!buf) {
		reply_err(call, CODE_INTERNAL, "out of memory");
		return 1;
	}
	ssize_t n = want ? read(fd, buf, want) : 0;
	int done = 1;
	if (n > 0)
		answer_data(call, buf, (size_t)n);
	else if (n == 0)
		answer_data(call, NULL, 0);
	else if (errno != EAGAIN && errno != EINTR)
		reply_err(call, CODE_INTERNAL, "read: %s", strerror(errno));
	else if (p->exited && now_ms() >= p->exited_at + EXIT_DRAIN_MS)
		answer_data(call, NULL, 0);
	else {
		done = 0;
		if (p->exited)
			*wake_at = p->exited_at + EXIT_DRAIN_MS;
	}
	free(buf);
	return done;
}

static int read_progress(struct pending *pd)
{
	struct stream_data *s = pd->data;
	return try_read(&pd->call, stream_process(s), s->err, s->len, &pd->wake_at);
}

static int read_pollfd(struct pending *pd, short *events)
{
	struct stream_data *s = pd->data;
	struct process *p = stream_process(s);
	*events = POLLIN;
	return p ? (s->err ? p->err_fd : p->out_fd) : -1;
}

static void read_stream(const struct call *call, const ProtobufCMessage *m, int err)
{
	const Grpc__ReadStreamRequest *req = (const Grpc__ReadStreamRequest *)m;
	struct process *p = process_lookup(call, req->container_id, req->exec_id, 0);
	if (!p)
		return;
	if ((err ? p->err_fd : p->out_fd) < 0) {
		reply_err(call, CODE_INTERNAL, "cannot get stream reader");
		return;
	}
	uint64_t wake_at = 0;
	if (try_read(call, p, err, req->len, &wake_at))
		return;
	struct pending *pd = calloc(1, sizeof(*pd));
	struct stream_data *s = stream_data_new(req->container_id, p->exec_id);
	if (!pd || !s) {
		free(pd);
		free(s);
		reply_err(call, CODE_INTERNAL, "out of memory");
		return;
	}
	s->err = err;
	s->len = req->len;
	pd->call = *call;
	pd->data = s;
	pd->wake_at = wake_at;
	pd->progress = read_progress;
	pd->pollfd = read_pollfd;
	pd->release = stream_release;
	pending_add(pd);
}

void h_read_stdout(const struct call *call, const ProtobufCMessage *m)
{
	read_stream(call, m, 0);
}

void h_read_stderr(const struct call *call, const ProtobufCMessage *m)
{
	read_stream(call, m, 1);
}

/* ---------------------------------------------------------------- stdin */

static void close_stdin(struct process *p)
{
	if (p->pending_writes)
		p->close_stdin = 1;
	else
		close_fd(&p->in_fd);
}

static void answer_len(const struct call *call, size_t n)
{
	Grpc__WriteStreamResponse resp = GRPC__WRITE_STREAM_RESPONSE__INIT;
	resp.len = (uint32_t)n;
	reply_msg(call, &resp.base);
}

static int is_stdin_write_of(const struct pending *pd, const void *p);

/* Writes what the pipe takes; 1 = finished (answered), 0 = more to write. Writes
 * to one process go in the order they came: a later one waits for the earlier. */
static int write_some(struct pending *pd)
{
	struct stream_data *s = pd->data;
	struct process *p = stream_process(s);
	const struct pending *first = p ? pending_first(is_stdin_write_of, p) : NULL;
	if (first && first != pd)
		return 0;
	int fd = p ? p->in_fd : -1;
	while (fd >= 0 && s->off < s->size) {
		ssize_t w = write(fd, s->data + s->off, s->size - s->off);
		if (w > 0) {
			s->off += (size_t)w;
			continue;
		}
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && errno == EAGAIN)
			return 0;
		break;
	}
	if (s->off == s->size)
		answer_len(&pd->call, s->size);
	else
		reply_err(&pd->call, CODE_INTERNAL, "%s", fd < 0 ? "Cannot get writer" : strerror(errno));
	return 1;
}

/* However the write ended (answered, deadline, connection gone): a deferred CloseStdin runs. */
static void write_release(struct pending *pd)
{
	struct process *p = stream_process(pd->data);
	if (p && --p->pending_writes == 0 && p->close_stdin)
		close_fd(&p->in_fd);
	stream_release(pd);
}

static int write_pollfd(struct pending *pd, short *events)
{
	struct process *p = stream_process(pd->data);
	*events = POLLOUT;
	return p ? p->in_fd : -1;
}

static int is_stdin_write_of(const struct pending *pd, const void *p)
{
	return pd->progress == write_some && stream_process(pd->data) == p;
}

void h_write_stdin(const struct call *call, const ProtobufCMessage *m)
{
	const Grpc__WriteStreamRequest *req = (const Grpc__WriteStreamRequest *)m;
	struct process *p = process_lookup(call, req->container_id, req->exec_id, 1);
	if (!p)
		return;
	if (req->data.len == 0) {
		close_stdin(p);
		answer_len(call, 0);
		return;
	}
	if (p->in_fd < 0) {
		reply_err(call, CODE_INTERNAL, "Cannot get writer");
		return;
	}
	if (p->pending_writes >= MAX_PENDING_WRITES) {
		reply_err(call, CODE_RESOURCE_EXHAUSTED, "%d WriteStdin calls are still writing to this process; wait for their answers", p->pending_writes);
		return;
	}
	struct pending *pd = calloc(1, sizeof(*pd));
	struct stream_data *s = stream_data_new(req->container_id, p->exec_id);
	uint8_t *copy = malloc(req->data.len);
	if (!pd || !s || !copy) {
		free(pd);
		free(s);
		free(copy);
		reply_err(call, CODE_INTERNAL, "out of memory");
		return;
	}
	memcpy(copy, req->data.data, req->data.len);
	s->data = copy;
	s->size = req->data.len;
	pd->call = *call;
	pd->data = s;
	pd->progress = write_some;
	pd->pollfd = write_pollfd;
	pd->release = write_release;
	p->pending_writes++;
	if (write_some(pd))
		pending_discard(pd);
	else
		pending_add(pd);
}

void h_close_stdin(const struct call *call, const ProtobufCMessage *m)
{
	const Grpc__CloseStdinRequest *req = (const Grpc__CloseStdinRequest *)m;
	struct process *p = process_lookup(call, req->container_id, req->exec_id, 0);
	if (!p)
		return;
	close_stdin(p);
	reply_msg(call, &((Google__Protobuf__Empty)GOOGLE__PROTOBUF__EMPTY__INIT).base);
}
