/* err: the error codes of the C layers above the codec (conn, pool, the
 * Lua glue, lev.tcp). A function that can fail returns 0 or one of these
 * (always negative); a failure that reaches Lua becomes nil, text, category
 * (lev.h lev_push_fail), with the category from levr_category, never from
 * the text. See docs/CONVENTIONS.md. */
#ifndef LEVR_ERR_H
#define LEVR_ERR_H

enum levr_err {
  LEVR_OK = 0,
  LEVR_ETIMEOUT = -1,  /* a deadline passed */
  LEVR_EIO = -2,       /* the transport failed (connect, read, write, TLS) */
  LEVR_EEOF = -3,      /* the peer closed the connection */
  LEVR_EPROTO = -4,    /* the peer broke the protocol */
  LEVR_ECLOSED = -5,   /* closed on our side */
  LEVR_ELIMIT = -6,    /* a documented bound was reached */
  LEVR_ENOMEM = -7,    /* out of memory */
  LEVR_EINVAL = -8     /* a bad argument */
};

/* The category Lua sees for err (one word, see README "Errors"). */
static inline const char *levr_category(int err) {
  switch (err) {
  case LEVR_ETIMEOUT: return "timeout";
  case LEVR_EEOF: return "eof";
  case LEVR_EPROTO: return "protocol";
  case LEVR_ECLOSED: return "closed";
  case LEVR_ELIMIT: return "limit";
  case LEVR_ENOMEM: return "limit";
  case LEVR_EINVAL: return "config";
  default: return "io";
  }
}

#endif
