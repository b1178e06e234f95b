/* Minimal protobuf wire-format reader/writer (proto3 subset used by ttrpc). */
#ifndef OSB_PB_H
#define OSB_PB_H

#include <stddef.h>
#include <stdint.h>

/* Growable output buffer. On allocation failure `failed` is set and writes stop. */
struct buf {
	uint8_t *data;
	size_t len, cap;
	int failed;
};

void buf_free(struct buf *b);
void buf_put(struct buf *b, const void *p, size_t n);
void pb_put_varint(struct buf *b, uint64_t v);
void pb_put_tag(struct buf *b, uint32_t field, uint32_t wire);
/* Fields are written only when non-zero / non-empty (proto3 default omission). */
void pb_put_uint(struct buf *b, uint32_t field, uint64_t v);
void pb_put_int(struct buf *b, uint32_t field, int64_t v);
void pb_put_bool(struct buf *b, uint32_t field, int v);
void pb_put_bytes(struct buf *b, uint32_t field, const void *p, size_t n);
void pb_put_str(struct buf *b, uint32_t field, const char *s);

/* A read cursor over one message. */
struct pb {
	const uint8_t *p, *end;
};

struct pb_field {
	uint32_t field;
	uint32_t wire;     /* 0 varint, 1 fixed64, 2 length-delimited, 5 fixed32 */
	uint64_t varint;   /* wire 0, 1, 5 */
	const uint8_t *data; /* wire 2 */
	size_t len;
};

/* 1 = a field was read, 0 = end of message, -1 = malformed. Unknown fields are returned too: callers skip them. */
int pb_next(struct pb *r, struct pb_field *f);

#endif
