/* tls: a TLS client session on OpenSSL memory BIOs (see tls.h).
 *
 * Each session owns an SSL with two memory BIOs: "in" holds ciphertext fed
 * from the socket, "out" holds ciphertext OpenSSL produced for the socket.
 * Memory BIOs never block, so SSL calls only ever stop for want of input
 * (TLS_WANT); and since writes into "out" always succeed, tls_conn_write
 * encrypts everything at once.
 *
 * OpenSSL reports failures through a per-thread error queue. Every entry
 * point clears it before calling OpenSSL (SSL_get_error needs that) and
 * drains it after turning an error into text, so nothing one connection
 * leaves behind is blamed on the next.
 */
#include "tls.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

struct tls_ctx {
  SSL_CTX *ssl_ctx;
  /* Plain int: a context belongs to one event loop thread. */
  int refs;
};

enum { CONN_OPEN, CONN_EOF, CONN_FAILED };

struct tls_conn {
  tls_ctx *ctx;
  SSL *ssl;
  BIO *in;        /* socket -> OpenSSL; owned by ssl */
  BIO *out;       /* OpenSSL -> socket; owned by ssl */
  int state;
  char err[256];
};

/* --- error text --------------------------------------------------------- */

/* The reason of one queued OpenSSL error. System errors (a missing file,
 * say) carry errno, which strerror words better than OpenSSL does. */
static const char *reason_text(unsigned long e, char *buf, size_t len)
{
  const char *r;

  if (e == 0)
    return "unknown error";
  if (ERR_SYSTEM_ERROR(e))
    return strerror(ERR_GET_REASON(e));
  r = ERR_reason_error_string(e);
  if (r != NULL)
    return r;
  ERR_error_string_n(e, buf, len);
  return buf;
}

/* The first queued error is the root cause; later entries are the callers
 * that passed it up ("PEM lib", "system lib"), so they say less. */
static const char *queue_text(char *buf, size_t len)
{
  return reason_text(ERR_peek_error(), buf, len);
}

static void put(char *dst, size_t len, const char *fmt, ...)
{
  va_list ap;

  if (dst == NULL || len == 0)
    return;
  va_start(ap, fmt);
  vsnprintf(dst, len, fmt, ap);
  va_end(ap);
}

/* Why path cannot be used: strerror when it cannot even be read (the
 * common mistake, and OpenSSL's own words for it vary by version; a
 * directory opens fine and only fails to read), otherwise what OpenSSL
 * queued while parsing it. */
static const char *file_text(const char *path, char *buf, size_t len)
{
  FILE *f = fopen(path, "r");
  int bad;

  if (f == NULL)
    return strerror(errno);
  bad = fgetc(f) == EOF && ferror(f);
  if (bad)
    bad = errno;
  fclose(f);
  return bad ? strerror(bad) : queue_text(buf, len);
}

/* Why a key file yields no key. OpenSSL 3.0's decoders say "unsupported"
 * for a file without a key and "interrupted or cancelled" for an
 * encrypted one, so look at the PEM text first. */
static const char *key_text(const char *path, char *buf, size_t len)
{
  char head[8192];
  size_t n;
  FILE *f = fopen(path, "r");
  const char *why = NULL;

  if (f == NULL)
    return strerror(errno);
  n = fread(head, 1, sizeof head - 1, f);
  if (ferror(f))
    why = strerror(errno);
  fclose(f);
  head[n] = '\0';
  if (why != NULL)
    return why;
  if (strstr(head, "PRIVATE KEY-----") == NULL)
    return "no PEM private key in it";
  if (strstr(head, "ENCRYPTED") != NULL)
    return "the key is encrypted (passphrases are not supported)";
  return queue_text(buf, len);
}

/* --- contexts ----------------------------------------------------------- */

/* Never let OpenSSL prompt on the terminal for a key's passphrase: the
 * process may be a server with no one at the keyboard. */
static int no_password(char *buf, int size, int rwflag, void *u)
{
  (void)buf; (void)size; (void)rwflag; (void)u;
  return -1;
}

static int load_key_pair(SSL_CTX *ssl_ctx, const char *cert_file,
                         const char *key_file, char *err, size_t errlen)
{
  char tmp[256];
  BIO *bio;
  EVP_PKEY *pkey;
  X509 *cert;
  int ok;

  /* The chain variant also sends intermediates that follow the leaf. */
  if (SSL_CTX_use_certificate_chain_file(ssl_ctx, cert_file) != 1) {
    unsigned long e = ERR_peek_error();

    put(err, errlen, "ssl: cannot load certificate %s: %s", cert_file,
        ERR_GET_LIB(e) == ERR_LIB_PEM
        && ERR_GET_REASON(e) == PEM_R_NO_START_LINE
            ? "no PEM certificate in it"
            : file_text(cert_file, tmp, sizeof tmp));
    return TLS_ERR;
  }
  /* The key is read by hand so that "wrong key" and "unreadable key" get
   * different messages: SSL_CTX_use_PrivateKey_file reports both alike. */
  bio = BIO_new_file(key_file, "r");
  pkey = bio ? PEM_read_bio_PrivateKey(bio, NULL, no_password, NULL) : NULL;
  BIO_free(bio);
  if (pkey == NULL) {
    put(err, errlen, "ssl: cannot load key %s: %s", key_file,
        key_text(key_file, tmp, sizeof tmp));
    return TLS_ERR;
  }
  cert = SSL_CTX_get0_certificate(ssl_ctx);
  ok = cert != NULL && X509_check_private_key(cert, pkey) == 1
       && SSL_CTX_use_PrivateKey(ssl_ctx, pkey) == 1
       && SSL_CTX_check_private_key(ssl_ctx) == 1;
  EVP_PKEY_free(pkey);
  if (!ok) {
    put(err, errlen, "ssl: certificate and key do not match (%s, %s)",
        cert_file, key_file);
    return TLS_ERR;
  }
  return TLS_OK;
}

static int configure(SSL_CTX *ssl_ctx, const tls_config *cfg, char *err,
                     size_t errlen)
{
  char tmp[256];

  if (SSL_CTX_set_min_proto_version(ssl_ctx, TLS1_2_VERSION) != 1) {
    put(err, errlen, "ssl: cannot set TLS 1.2 minimum: %s",
        queue_text(tmp, sizeof tmp));
    return TLS_ERR;
  }
  /* A renegotiation could make SSL_write wait for the peer, which would
   * break tls_conn_write's promise to queue everything at once. Redis
   * never renegotiates, so refuse it. */
  SSL_CTX_set_options(ssl_ctx, SSL_OP_NO_RENEGOTIATION);
  /* Free the 16 KB record buffers of idle sessions; pools keep many. */
  SSL_CTX_set_mode(ssl_ctx, SSL_MODE_RELEASE_BUFFERS);

  /* A CA file given with verify off is still loaded, so that a typo in
   * it is reported now rather than when verify is turned on. */
  if (cfg->ca_file != NULL) {
    if (SSL_CTX_load_verify_locations(ssl_ctx, cfg->ca_file, NULL) != 1) {
      put(err, errlen, "ssl: cannot load CA file %s: %s", cfg->ca_file,
          file_text(cfg->ca_file, tmp, sizeof tmp));
      return TLS_ERR;
    }
  } else if (cfg->verify) {
    /* Reads SSL_CERT_FILE / SSL_CERT_DIR, else the distribution's store.
     * A missing store is not an error here: verification will then fail
     * with "unable to get local issuer certificate", which says more. */
    if (SSL_CTX_set_default_verify_paths(ssl_ctx) != 1) {
      put(err, errlen, "ssl: cannot load the system trust store: %s",
          queue_text(tmp, sizeof tmp));
      return TLS_ERR;
    }
  }
  SSL_CTX_set_verify(ssl_ctx, cfg->verify ? SSL_VERIFY_PEER : SSL_VERIFY_NONE,
                     NULL);

  if (cfg->cert_file == NULL && cfg->key_file != NULL) {
    put(err, errlen, "ssl: key %s given without a certificate",
        cfg->key_file);
    return TLS_ERR;
  }
  if (cfg->cert_file != NULL)
    /* No key file: the key is expected in the certificate's PEM file. */
    return load_key_pair(ssl_ctx, cfg->cert_file,
                         cfg->key_file ? cfg->key_file : cfg->cert_file,
                         err, errlen);
  return TLS_OK;
}

int tls_ctx_new(tls_ctx **out, const tls_config *cfg, char *err,
                size_t errlen)
{
  char tmp[256];
  tls_ctx *ctx;
  int rc;

  *out = NULL;
  put(err, errlen, "%s", "");
  ERR_clear_error();
  ctx = malloc(sizeof *ctx);
  if (ctx == NULL) {
    put(err, errlen, "ssl: out of memory");
    return TLS_ERR;
  }
  ctx->refs = 1;
  ctx->ssl_ctx = SSL_CTX_new(TLS_client_method());
  if (ctx->ssl_ctx == NULL) {
    put(err, errlen, "ssl: cannot create context: %s",
        queue_text(tmp, sizeof tmp));
    free(ctx);
    ERR_clear_error();
    return TLS_ERR;
  }
  rc = configure(ctx->ssl_ctx, cfg, err, errlen);
  ERR_clear_error();
  if (rc != TLS_OK) {
    SSL_CTX_free(ctx->ssl_ctx);
    free(ctx);
    return TLS_ERR;
  }
  *out = ctx;
  return TLS_OK;
}

void tls_ctx_ref(tls_ctx *ctx)
{
  ctx->refs++;
}

void tls_ctx_unref(tls_ctx *ctx)
{
  if (ctx == NULL || --ctx->refs > 0)
    return;
  SSL_CTX_free(ctx->ssl_ctx);
  free(ctx);
}

/* --- sessions ----------------------------------------------------------- */

static int is_ip_literal(const char *name)
{
  unsigned char buf[sizeof(struct in6_addr)];

  return inet_pton(AF_INET, name, buf) == 1
         || inet_pton(AF_INET6, name, buf) == 1;
}

static BIO *mem_bio(void)
{
  BIO *b = BIO_new(BIO_s_mem());

  /* An empty memory BIO reports EOF by default; -1 makes it "retry", so
   * OpenSSL says SSL_ERROR_WANT_READ instead of "unexpected eof". */
  if (b != NULL)
    BIO_set_mem_eof_return(b, -1);
  return b;
}

static int set_peer_name(tls_conn *c, const char *name)
{
  int verify = SSL_get_verify_mode(c->ssl) & SSL_VERIFY_PEER;

  if (is_ip_literal(name)) {
    /* RFC 6066 forbids IP addresses in SNI; the certificate must list the
     * address as an iPAddress SAN, which set1_ip_asc checks. */
    if (verify
        && X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(c->ssl), name) != 1)
      return TLS_ERR;
    return TLS_OK;
  }
  if (SSL_set_tlsext_host_name(c->ssl, name) != 1)
    return TLS_ERR;
  if (verify) {
    /* "*.example.com" matches one whole label, never "w*.example.com". */
    SSL_set_hostflags(c->ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
    if (SSL_set1_host(c->ssl, name) != 1)
      return TLS_ERR;
  }
  return TLS_OK;
}

int tls_conn_new(tls_conn **out, tls_ctx *ctx, const char *server_name)
{
  tls_conn *c;
  BIO *in, *out_bio;

  *out = NULL;
  ERR_clear_error();
  c = calloc(1, sizeof *c);
  if (c == NULL)
    return TLS_ERR;
  c->ssl = SSL_new(ctx->ssl_ctx);
  in = mem_bio();
  out_bio = mem_bio();
  if (c->ssl == NULL || in == NULL || out_bio == NULL) {
    BIO_free(in);
    BIO_free(out_bio);
    goto fail;
  }
  /* From here the SSL owns both BIOs and frees them with itself. */
  SSL_set_bio(c->ssl, in, out_bio);
  c->in = in;
  c->out = out_bio;
  SSL_set_connect_state(c->ssl);
  if (server_name != NULL && server_name[0] != '\0'
      && set_peer_name(c, server_name) != TLS_OK)
    goto fail;
  c->ctx = ctx;
  tls_ctx_ref(ctx);
  c->state = CONN_OPEN;
  *out = c;
  return TLS_OK;

fail:
  SSL_free(c->ssl);
  free(c);
  ERR_clear_error();
  return TLS_ERR;
}

void tls_conn_free(tls_conn *c)
{
  if (c == NULL)
    return;
  SSL_free(c->ssl);
  tls_ctx_unref(c->ctx);
  free(c);
}

/* Plain words for the two failures OpenSSL words most obscurely. */
static const char *hint(const tls_conn *c, unsigned long e)
{
  if (ERR_GET_LIB(e) != ERR_LIB_SSL)
    return "";
  /* The first bytes back were not a TLS record: usually a port that
   * speaks plain RESP ("-ERR ..."). */
  if (ERR_GET_REASON(e) == SSL_R_WRONG_VERSION_NUMBER
      && !SSL_is_init_finished(c->ssl))
    return " (is the server speaking TLS?)";
  /* TLS 1.3 servers check the client certificate after the client has
   * finished, so this arrives on the first read, not in the handshake. */
  if (ERR_GET_REASON(e) == SSL_R_TLSV13_ALERT_CERTIFICATE_REQUIRED)
    return " (the server requires a client certificate)";
  return "";
}

/* Turns the outcome of an SSL call that returned r into a TLS_ code,
 * recording the error text when it failed. what names the operation. */
static int outcome(tls_conn *c, int r, const char *what)
{
  char tmp[256];
  unsigned long e;
  long vr;

  switch (SSL_get_error(c->ssl, r)) {
  case SSL_ERROR_WANT_READ:
  case SSL_ERROR_WANT_WRITE:  /* memory BIOs never ask, but it is benign */
    return TLS_WANT;
  case SSL_ERROR_ZERO_RETURN:
    c->state = CONN_EOF;
    return TLS_EOF;
  case SSL_ERROR_SSL:
    /* With SSL_VERIFY_PEER and no callback, any failed check aborts the
     * handshake, so a recorded result other than OK is the cause. */
    vr = SSL_get_verify_result(c->ssl);
    if (vr != X509_V_OK && (SSL_get_verify_mode(c->ssl) & SSL_VERIFY_PEER)) {
      put(c->err, sizeof c->err, "ssl: certificate verify failed: %s",
          X509_verify_cert_error_string(vr));
      break;
    }
    e = ERR_peek_error();
    put(c->err, sizeof c->err, "ssl: %s failed: %s%s", what,
        reason_text(e, tmp, sizeof tmp), hint(c, e));
    break;
  case SSL_ERROR_SYSCALL:
    /* Memory BIOs have no errno; this means OpenSSL saw the stream end or
     * ran out of memory without queueing a reason. */
    e = ERR_peek_error();
    put(c->err, sizeof c->err, "ssl: %s failed: %s", what,
        e != 0 ? reason_text(e, tmp, sizeof tmp) : "unexpected end of stream");
    break;
  default:
    put(c->err, sizeof c->err, "ssl: %s failed: %s", what,
        queue_text(tmp, sizeof tmp));
    break;
  }
  c->state = CONN_FAILED;
  ERR_clear_error();
  return TLS_ERR;
}

/* The state check shared by the calls that drive the session. */
static int usable(const tls_conn *c)
{
  if (c->state == CONN_FAILED)
    return TLS_ERR;
  if (c->state == CONN_EOF)
    return TLS_EOF;
  return TLS_OK;
}

int tls_conn_feed(tls_conn *c, const char *data, size_t n)
{
  int chunk, w;

  if (c->state == CONN_FAILED)
    return TLS_ERR;
  ERR_clear_error();
  while (n > 0) {
    chunk = n > INT_MAX ? INT_MAX : (int)n;
    w = BIO_write(c->in, data, chunk);
    if (w <= 0) {
      put(c->err, sizeof c->err, "ssl: out of memory buffering input");
      c->state = CONN_FAILED;
      ERR_clear_error();
      return TLS_ERR;
    }
    data += w;
    n -= (size_t)w;
  }
  return TLS_OK;
}

int tls_conn_handshake(tls_conn *c)
{
  int rc = usable(c), r;

  if (rc != TLS_OK)
    return rc == TLS_EOF ? TLS_OK : rc;  /* it finished, then ended */
  if (SSL_is_init_finished(c->ssl))
    return TLS_OK;
  ERR_clear_error();
  r = SSL_do_handshake(c->ssl);
  if (r == 1)
    return TLS_OK;
  rc = outcome(c, r, "handshake");
  /* close_notify before the handshake ended is a failure, not an end. */
  if (rc == TLS_EOF) {
    put(c->err, sizeof c->err, "ssl: handshake failed: peer closed");
    c->state = CONN_FAILED;
    return TLS_ERR;
  }
  return rc;
}

int tls_conn_read(tls_conn *c, char *out, size_t cap, size_t *n)
{
  int rc = usable(c), r;

  *n = 0;
  if (rc != TLS_OK)
    return rc;
  if (cap == 0)
    return TLS_WANT;
  ERR_clear_error();
  /* Post-handshake messages (TLS 1.3 session tickets, key updates) are
   * consumed here and give WANT when no application data follows them. A
   * key update may queue our own reply: callers send tls_conn_out after
   * every call, not only after writes. */
  r = SSL_read_ex(c->ssl, out, cap, n);
  if (r == 1)
    return TLS_OK;
  *n = 0;
  return outcome(c, r, "read");
}

int tls_conn_write(tls_conn *c, const char *data, size_t n)
{
  size_t done;
  int r;

  if (c->state == CONN_FAILED)
    return TLS_ERR;
  if (!SSL_is_init_finished(c->ssl)) {
    /* SSL_write would run the handshake and queue nothing; the contract
     * is that written data is queued, so this is the caller's mistake. */
    put(c->err, sizeof c->err, "ssl: write before the handshake finished");
    c->state = CONN_FAILED;
    return TLS_ERR;
  }
  ERR_clear_error();
  while (n > 0) {
    r = SSL_write_ex(c->ssl, data, n, &done);
    if (r != 1) {
      if (outcome(c, r, "write") != TLS_ERR) {
        put(c->err, sizeof c->err, "ssl: write could not complete");
        c->state = CONN_FAILED;
      }
      return TLS_ERR;
    }
    data += done;
    n -= done;
  }
  return TLS_OK;
}

int tls_conn_shutdown(tls_conn *c)
{
  int r;

  if (c->state == CONN_FAILED)
    return TLS_ERR;
  /* Before the handshake there is no session to close: the caller just
   * drops the socket. */
  if (!SSL_is_init_finished(c->ssl))
    return TLS_OK;
  ERR_clear_error();
  /* 0: our close_notify is queued, the peer's has not come (we do not
   * wait for it); 1: both done. */
  r = SSL_shutdown(c->ssl);
  if (r >= 0)
    return TLS_OK;
  return outcome(c, r, "shutdown") == TLS_WANT ? TLS_OK : TLS_ERR;
}

const char *tls_conn_out(tls_conn *c, size_t *len)
{
  char *p = NULL;
  long n = BIO_get_mem_data(c->out, &p);

  *len = n > 0 ? (size_t)n : 0;
  return *len > 0 ? p : NULL;
}

void tls_conn_out_consume(tls_conn *c, size_t n)
{
  char scratch[16384];
  size_t left;
  int chunk, r;

  /* A memory BIO can only drop bytes by reading them out; the copy costs
   * about what sending them did. */
  left = (size_t)BIO_ctrl_pending(c->out);
  if (n > left)
    n = left;
  while (n > 0) {
    chunk = n > sizeof scratch ? (int)sizeof scratch : (int)n;
    r = BIO_read(c->out, scratch, chunk);
    if (r <= 0)
      break;
    n -= (size_t)r;
  }
}

const char *tls_conn_error(const tls_conn *c)
{
  if (c->err[0] != '\0')
    return c->err;
  return c->state == CONN_FAILED ? "ssl: failed" : "";
}
