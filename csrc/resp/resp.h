/* resp: the RESP2/RESP3 codec. Pure C99: no uv, no Lua.
 *
 * Encoder: writes commands (argv of byte strings) as RESP arrays of bulk
 * strings into a buf.
 *
 * Reader: an incremental parser. The owner writes bytes into the reader's
 * own buffer (resp_reader_space + resp_reader_commit, so a socket can read
 * straight into it, or resp_reader_feed to copy), then asks for the next
 * whole reply with resp_reader_next. The reader keeps its parse position
 * across feeds, so a large reply that arrives in many pieces is scanned once.
 *
 * Reply representation (zero copy): a reply is a flat array of resp_node in
 * pre-order (an aggregate is followed by its whole subtree; node.size is
 * the subtree size, so the next sibling is at index + size). String payloads
 * are not copied: node.off is the offset of the payload from reply.base,
 * which points into the reader's buffer. A consumer (the Lua glue) turns a
 * bulk string into a Lua string with one lua_pushlstring straight from the
 * bytes the socket wrote. A reply stays valid until the next call to any
 * resp_reader_* function on that reader.
 *
 * Errors are sticky: after a protocol error every resp_reader_next returns
 * the same error until resp_reader_reset.
 */
#ifndef LEVR_RESP_H
#define LEVR_RESP_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"

#define RESP_VERSION "0.1.0"

/* Return codes of resp_reader_next and friends. */
#define RESP_OK 1      /* a whole reply is in *out */
#define RESP_AGAIN 0   /* need more bytes */
#define RESP_EPROTO (-71) /* malformed input or a limit exceeded (sticky) */
#define RESP_ENOMEM (-12)

typedef enum resp_type {
  RESP_SIMPLE = 1,  /* + */
  RESP_ERROR,       /* - */
  RESP_INTEGER,     /* : */
  RESP_BULK,        /* $ */
  RESP_ARRAY,       /* * */
  RESP_NULL,        /* $-1, *-1, _ (see node.null_of) */
  RESP_DOUBLE,      /* , */
  RESP_BOOLEAN,     /* # */
  RESP_BIGNUM,      /* ( (digits as a string) */
  RESP_VERBATIM,    /* = (payload after the 3-letter format and ':') */
  RESP_BLOB_ERROR,  /* ! */
  RESP_MAP,         /* % (len = number of pairs; 2*len child elements) */
  RESP_SET,         /* ~ */
  RESP_PUSH         /* > */
} resp_type;

/* Attributes (|) are parsed, checked against the limits and dropped: the
 * reply is the value that follows them, at any nesting level. */

typedef struct resp_node {
  uint8_t type;      /* resp_type */
  char null_of;      /* RESP_NULL: '$', '*' or '_'; else 0 */
  char fmt[4];       /* RESP_VERBATIM: format, e.g. "txt", NUL terminated */
  uint32_t size;     /* nodes in this subtree, itself included (>= 1) */
  int64_t len;       /* strings: payload bytes; aggregates: elements
                        (map: pairs) */
  size_t off;        /* strings: payload offset from reply base */
  union {
    int64_t i;       /* RESP_INTEGER */
    double d;        /* RESP_DOUBLE */
    int b;           /* RESP_BOOLEAN: 0 or 1 */
  } v;
} resp_node;

typedef struct resp_reply {
  const resp_node *nodes; /* nodes[0] is the reply; count nodes in all */
  size_t count;
  const char *base;       /* string payload of node n: base + nodes[n].off */
  size_t bytes;           /* wire size of the reply */
} resp_reply;

typedef struct resp_limits {
  int max_depth;          /* nesting of aggregates; default 128 */
  int64_t max_elements;   /* elements of one aggregate; default 2^32 - 1 */
  int64_t max_bulk;       /* bytes of one string (bulk, or the line of a
                             status, error or big number); default 512 MB */
  size_t max_line;        /* bytes of a line holding a number (lengths,
                             counts, integers, doubles; inline requests);
                             default 64 KB */
  size_t max_reply;       /* cost of one whole reply: its wire bytes plus
                             RESP_NODE_COST per value; 0 = no limit */
} resp_limits;

/* What one value of a reply is charged against max_reply besides its wire
 * bytes: the reader's resp_node (40 bytes on LP64) and the slot of the
 * value a consumer makes of it (16 bytes in a Lua table), rounded up. It
 * bounds what a reply of many tiny values allocates: 10 million "_\r\n"
 * are 30 MB on the wire but cost 670 MB. */
#define RESP_NODE_COST 64

/* Reader flags. */
#define RESP_READER_REQUEST 1 /* read client requests: arrays of bulk
                                 strings, and inline commands (a line of
                                 words, with "..." and '...' quoting, as
                                 redis-cli and telnet send) which come out as
                                 an array of bulk strings */

typedef struct resp_frame resp_frame;

/* Scratch memory many readers take turns with (resp_reader_borrow): one
 * read buffer and one node array for all the connections of a thread, so
 * an idle connection holds none. Zero-initialise; free with
 * resp_scratch_free. */
typedef struct resp_scratch {
  char *buf;
  size_t cap;
  resp_node *nodes;
  size_t capnodes;
  struct resp_reader *holder; /* the reader that has it, or NULL */
  int busy;                   /* the holder is inside a read: not to take */
} resp_scratch;

typedef struct resp_reader {
  /* private */
  char *buf;              /* input bytes */
  size_t len, cap;        /* bytes in buf, bytes allocated */
  size_t start;           /* first byte of the reply being parsed */
  size_t pos;             /* parse position */
  size_t scan;            /* CRLF search resumes here */
  resp_node *nodes;       /* nodes of the reply being parsed */
  size_t nnodes, capnodes;
  resp_frame *stack;      /* open aggregates */
  int depth;
  int capstack;           /* frames allocated */
  int pending_bulk;       /* 1 while waiting for a bulk payload */
  int flags;
  int err;                /* 0 or the sticky error code */
  size_t str_line;        /* longest status/error/big number line */
  char *errmsg;           /* the sticky error's text (heap), or NULL */
  resp_limits lim;
  /* While borrowing: the scratch, and the reader's own arrays set aside. */
  resp_scratch *lender;
  char *own_buf;
  size_t own_cap;
  resp_node *own_nodes;
  size_t own_capnodes;
} resp_reader;

void resp_limits_default(resp_limits *lim);

/* lim may be NULL for the defaults. */
void resp_reader_init(resp_reader *r, const resp_limits *lim, int flags);
void resp_reader_free(resp_reader *r);
/* Back to a clean state, keeping the allocations (clears the error). */
void resp_reader_reset(resp_reader *r);

/* Returns a pointer where up to *avail (>= want) bytes may be written, or
 * NULL when memory is short. Nothing is visible to the parser until
 * resp_reader_commit. */
char *resp_reader_space(resp_reader *r, size_t want, size_t *avail);
void resp_reader_commit(resp_reader *r, size_t n);
/* Copies n bytes in: space + memcpy + commit. Returns 0 or RESP_ENOMEM. */
int resp_reader_feed(resp_reader *r, const void *data, size_t n);

/* RESP_OK with *out filled, RESP_AGAIN, or a negative error code. */
int resp_reader_next(resp_reader *r, resp_reply *out);
/* Text of the sticky error, e.g. "protocol error: invalid bulk length". */
const char *resp_reader_error(const resp_reader *r);
/* Where one argument of a request lies: base + off, len bytes. */
typedef struct resp_span {
  size_t off, len;
} resp_span;
/* The quick way for a request reader: when the unparsed input starts with
 * a whole, plain request of 1 to max short bulk strings (what clients
 * send), consumes it and returns its argument count, args[] and *base
 * saying where the bytes are (valid until the next feed). Returns 0 for
 * anything else (an incomplete request, an inline one, an unusual
 * spelling, an error to report): resp_reader_next then decides, as if
 * this had not been called. */
int resp_reader_next_args(resp_reader *r, const char **base, resp_span *args,
                          int max);
/* Bytes received but not yet returned as replies. */
size_t resp_reader_pending(const resp_reader *r);
/* Bytes the reader would like to receive next (a whole pending bulk
 * payload, for instance), so a caller can size one read to fit. */
size_t resp_reader_want(const resp_reader *r);
/* Releases the buffer when it holds no bytes and is larger than keep. */
void resp_reader_shrink(resp_reader *r, size_t keep);

/* True when no reply is half received: nothing to keep between reads. */
int resp_reader_idle(const resp_reader *r);
/* Borrowing, for one socket read at a time: resp_reader_borrow gives an
 * idle reader s's buffer and node array in place of its own (taking s from
 * the reader that had it, which is idle then and loses nothing) and marks
 * s busy; resp_reader_release ends the read. s then stays with r while r
 * is idle, so the next read of the same reader costs nothing; anything
 * left (a reply still arriving, or replies not yet taken) moves into r's
 * own memory and s is given back. Replies taken with resp_reader_next stay
 * valid until the release. borrow returns 0, or -1 when s is busy (another
 * reader is inside its read) or r is not idle; release and return give 0,
 * or RESP_ENOMEM (what was left is dropped and r reset: the caller fails
 * its connection). resp_reader_return gives s back at once
 * (resp_reader_free and resp_scratch_free call it). */
int resp_reader_borrow(resp_reader *r, resp_scratch *s);
int resp_reader_release(resp_reader *r);
int resp_reader_return(resp_reader *r);
void resp_scratch_free(resp_scratch *s);

/* Encoder. Each returns 0 or BUF_ENOMEM (the buf is then unchanged). */
int resp_encode_command(buf *b, int argc, const char *const *argv,
                        const size_t *lens);
int resp_encode_array_header(buf *b, int64_t n);
int resp_encode_bulk(buf *b, const char *p, size_t n);
int resp_encode_bulk_int(buf *b, int64_t v);
/* Integral values in int64 range as integers, others with %.17g, infinities
 * as "inf" and "-inf", NaN as "nan". */
int resp_encode_bulk_double(buf *b, double d);

/* Name of a type as Lua sees it: "simple_string", "bulk_string", ... */
const char *resp_type_name(int type);

#endif
