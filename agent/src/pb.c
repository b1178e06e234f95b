#include "pb.h"

#include <stdlib.h>
#include <string.h>

void buf_free(struct buf *b)
{
	free(b->data);
	b->data = NULL;
	b->len = b->cap = 0;
}

void buf_put(struct buf *b, const void *p, size_t n)
{
	if (b->failed || n == 0)
		return;
	if (b->len + n > b->cap) {
		size_t cap = b->cap ? b->cap : 256;
		while (cap < b->len + n)
			cap *= 2;
		uint8_t *d = realloc(b->data, cap);
		if (!d) {
			b->failed = 1;
			return;
		}
		b->data = d;
		b->cap = cap;
	}
	memcpy(b->data + b->len, p, n);
	b->len += n;
}

void pb_put_varint(struct buf *b, uint64_t v)
{
	uint8_t tmp[10];
	size_t n = 0;
	do {
		uint8_t byte = v & 0x7f;
		v >>= 7;
		tmp[n++] = byte | (v ? 0x80 : 0);
	} while (v);
	buf_put(b, tmp, n);
}

void pb_put_tag(struct buf *b, uint32_t field, uint32_t wire)
{
	pb_put_varint(b, ((uint64_t)field << 3) | wire);
}

void pb_put_uint(struct buf *b, uint32_t field, uint64_t v)
{
	if (!v)
		return;
	pb_put_tag(b, field, 0);
	pb_put_varint(b, v);
}

void pb_put_int(struct buf *b, uint32_t field, int64_t v)
{
	/* int32/int64: negative values are sign-extended to 10 bytes, as protobuf does. */
	if (!v)
		return;
	pb_put_tag(b, field, 0);
	pb_put_varint(b, (uint64_t)v);
}

void pb_put_bool(struct buf *b, uint32_t field, int v)
{
	pb_put_uint(b, field, v ? 1 : 0);
}

void pb_put_bytes(struct buf *b, uint32_t field, const void *p, size_t n)
{
	if (!n)
		return;
	pb_put_tag(b, field, 2);
	pb_put_varint(b, n);
	buf_put(b, p, n);
}

void pb_put_str(struct buf *b, uint32_t field, const char *s)
{
	if (s)
		pb_put_bytes(b, field, s, strlen(s));
}

static int get_varint(struct pb *r, uint64_t *out)
{
	uint64_t v = 0;
	for (int shift = 0; shift < 70; shift += 7) {
		if (r->p >= r->end)
			return -1;
		uint8_t byte = *r->p++;
		if (shift == 63 && byte > 1)
			return -1;
		v |= (uint64_t)(byte & 0x7f) << shift;
		if (!(byte & 0x80)) {
			*out = v;
			return 0;
		}
	}
	return -1;
}

int pb_next(struct pb *r, struct pb_field *f)
{
	uint64_t key;
	if (r->p >= r->end)
		return 0;
	if (get_varint(r, &key) < 0)
		return -1;
	memset(f, 0, sizeof(*f));
	f->field = (uint32_t)(key >> 3);
	f->wire = (uint32_t)(key & 7);
	if (f->field == 0 || (key >> 3) > 0x1fffffff)
		return -1;
	switch (f->wire) {
	case 0:
		return get_varint(r, &f->varint) < 0 ? -1 : 1;
	case 1:
		if (r->end - r->p < 8)
			return -1;
		for (int i = 7; i >= 0; i--)
			f->varint = (f->varint << 8) | r->p[i];
		r->p += 8;
		return 1;
	case 5:
		if (r->end - r->p < 4)
			return -1;
		for (int i = 3; i >= 0; i--)
			f->varint = (f->varint << 8) | r->p[i];
		r->p += 4;
		return 1;
	case 2: {
		uint64_t n;
		if (get_varint(r, &n) < 0 || n > (uint64_t)(r->end - r->p))
			return -1;
		f->data = r->p;
		f->len = (size_t)n;
		r->p += n;
		return 1;
	}
	default:
		return -1; /* groups (3, 4) and reserved wire types are not accepted */
	}
}
