/* tls: a TLS client session on OpenSSL memory BIOs. No sockets, no uv.
 *
 * The transport (stream.c) moves bytes: what arrives from the socket goes in
 * with tls_conn_feed; what tls_conn_out returns goes out on the socket. So
 * the loop never blocks on OpenSSL, and TLS can be tested without sockets.
 *
 * All functions return TLS_OK (0), TLS_WANT (more input needed), TLS_EOF
 * (the peer sent close_notify) or TLS_ERR (< 0; tls_conn_error says why,
 * e.g. "certificate verify failed: unable to get local issuer certificate").
 */
#ifndef LEVR_TLS_H
#define LEVR_TLS_H

#include <stddef.h>

#define TLS_OK 0
#define TLS_WANT 1
#define TLS_EOF 2
#define TLS_ERR (-1)

typedef struct tls_config {
  int verify;              /* 1: check the chain and the host name */
  const char *ca_file;     /* NULL: the system store (SSL_CERT_FILE and
                              SSL_CERT_DIR are honoured) */
  const char *cert_file;   /* client certificate (PEM), or NULL */
  const char *key_file;    /* its key (PEM), or NULL */
} tls_config;

/* An SSL_CTX with one configuration; shared by many sessions, counted. */
typedef struct tls_ctx tls_ctx;
/* On failure returns TLS_ERR and writes a message into err. */
int tls_ctx_new(tls_ctx **out, const tls_config *cfg, char *err,
                size_t errlen);
void tls_ctx_ref(tls_ctx *ctx);
void tls_ctx_unref(tls_ctx *ctx);

typedef struct tls_conn tls_conn;
/* server_name: sent as SNI (unless it is an IP address) and checked against
 * the certificate (as an IP address when it is one) when verify is on. */
int tls_conn_new(tls_conn **out, tls_ctx *ctx, const char *server_name);
void tls_conn_free(tls_conn *c);

/* Bytes that arrived from the socket. */
int tls_conn_feed(tls_conn *c, const char *data, size_t n);
/* Drives the handshake: TLS_OK when done, TLS_WANT while it needs the
 * peer's bytes (send tls_conn_out first), TLS_ERR on failure. */
int tls_conn_handshake(tls_conn *c);
/* Decrypts into out: TLS_OK with *n > 0, TLS_WANT when no whole record is
 * buffered, TLS_EOF, or TLS_ERR. */
int tls_conn_read(tls_conn *c, char *out, size_t cap, size_t *n);
/* Encrypts all of data into the output queue. */
int tls_conn_write(tls_conn *c, const char *data, size_t n);
/* Queues close_notify. */
int tls_conn_shutdown(tls_conn *c);
/* Ciphertext waiting to be sent: a pointer and length valid until the next
 * call on c; tls_conn_out_consume(c, n) after n of them were taken. */
const char *tls_conn_out(tls_conn *c, size_t *len);
void tls_conn_out_consume(tls_conn *c, size_t n);
const char *tls_conn_error(const tls_conn *c);

#endif
