/* Tests for csrc/net/tls.c.
 *
 *   test_tls CASE CERTDIR [REDISDIR]
 *
 * CERTDIR is what tools/make-test-certs.sh made. The in-memory cases talk
 * to an OpenSSL server SSL built here, moving bytes between the two by
 * hand; the redis_* cases talk to the redis-server whose DIR/ports file
 * ("PORT TLSPORT") the ctest fixture wrote. Exit status 0 means pass.
 */
#include "tls.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>

#define CHECK(cond)                                                      \
  do {                                                                   \
    if (!(cond)) {                                                       \
      fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__,   \
              #cond);                                                    \
      exit(1);                                                           \
    }                                                                    \
  } while (0)

#define CHECK_HAS(text, part)                                            \
  do {                                                                   \
    const char *t_ = (text);                                             \
    if (t_ == NULL || strstr(t_, (part)) == NULL) {                      \
      fprintf(stderr, "%s:%d: \"%s\" does not contain \"%s\"\n",         \
              __FILE__, __LINE__, t_ ? t_ : "(null)", (part));           \
      exit(1);                                                           \
    }                                                                    \
  } while (0)

static const char *certdir;
static const char *redisdir;

/* CERTDIR/name; a few results may be live at once. */
static const char *cert(const char *name)
{
  static char bufs[8][1024];
  static int next;
  char *b = bufs[next++ % 8];

  snprintf(b, sizeof bufs[0], "%s/%s", certdir, name);
  return b;
}

/* --- the client side ---------------------------------------------------- */

static tls_ctx *client_ctx(int verify, const char *ca, const char *crt,
                           const char *key)
{
  tls_config cfg;
  tls_ctx *ctx;
  char err[256];

  memset(&cfg, 0, sizeof cfg);
  cfg.verify = verify;
  cfg.ca_file = ca;
  cfg.cert_file = crt;
  cfg.key_file = key;
  if (tls_ctx_new(&ctx, &cfg, err, sizeof err) != TLS_OK) {
    fprintf(stderr, "tls_ctx_new: %s\n", err);
    exit(1);
  }
  CHECK(ERR_peek_error() == 0);
  return ctx;
}

static tls_conn *client_conn(tls_ctx *ctx, const char *name)
{
  tls_conn *c;

  CHECK(tls_conn_new(&c, ctx, name) == TLS_OK);
  /* The session holds its own reference. */
  tls_ctx_unref(ctx);
  return c;
}

/* --- an in-memory OpenSSL server ---------------------------------------- */

typedef struct server {
  SSL_CTX *ctx;
  SSL *ssl;
  BIO *in, *out;
  int done, failed;
} server;

enum { CLIENT_CERT_NONE, CLIENT_CERT_REQUIRE };

static void server_init(server *s, const char *name, int client_cert,
                        int max_version)
{
  char crt[64], key[64];

  memset(s, 0, sizeof *s);
  snprintf(crt, sizeof crt, "%s.crt", name);
  snprintf(key, sizeof key, "%s.key", name);
  s->ctx = SSL_CTX_new(TLS_server_method());
  CHECK(s->ctx != NULL);
  CHECK(SSL_CTX_use_certificate_file(s->ctx, cert(crt), SSL_FILETYPE_PEM)
        == 1);
  CHECK(SSL_CTX_use_PrivateKey_file(s->ctx, cert(key), SSL_FILETYPE_PEM)
        == 1);
  if (max_version != 0)
    CHECK(SSL_CTX_set_max_proto_version(s->ctx, max_version) == 1);
  if (client_cert == CLIENT_CERT_REQUIRE) {
    CHECK(SSL_CTX_load_verify_locations(s->ctx, cert("ca.crt"), NULL) == 1);
    SSL_CTX_set_verify(s->ctx,
                       SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT,
                       NULL);
  }
  s->ssl = SSL_new(s->ctx);
  s->in = BIO_new(BIO_s_mem());
  s->out = BIO_new(BIO_s_mem());
  CHECK(s->ssl && s->in && s->out);
  BIO_set_mem_eof_return(s->in, -1);
  BIO_set_mem_eof_return(s->out, -1);
  SSL_set_bio(s->ssl, s->in, s->out);
  SSL_set_accept_state(s->ssl);
}

static void server_free(server *s)
{
  SSL_free(s->ssl);
  SSL_CTX_free(s->ctx);
  ERR_clear_error();
}

/* Server ciphertext to the client, all of it. */
static size_t to_client(server *s, tls_conn *c)
{
  char buf[16384];
  size_t moved = 0;
  int n;

  while ((n = BIO_read(s->out, buf, sizeof buf)) > 0) {
    CHECK(tls_conn_feed(c, buf, (size_t)n) == TLS_OK);
    moved += (size_t)n;
  }
  return moved;
}

/* Client ciphertext to the server, all of it. */
static size_t to_server(tls_conn *c, server *s)
{
  const char *p;
  size_t len, rest;

  p = tls_conn_out(c, &len);
  if (len == 0)
    return 0;
  CHECK(BIO_write(s->in, p, (int)len) == (int)len);
  tls_conn_out_consume(c, len);
  CHECK(tls_conn_out(c, &rest) == NULL && rest == 0);
  return len;
}

static void server_step(server *s)
{
  int r;

  if (s->done || s->failed)
    return;
  r = SSL_do_handshake(s->ssl);
  if (r == 1)
    s->done = 1;
  else if (SSL_get_error(s->ssl, r) != SSL_ERROR_WANT_READ)
    s->failed = 1;
  /* The server's failures are queued on this thread too; they must not
   * be taken for the client's. */
  ERR_clear_error();
}

/* Runs both handshakes as far as they go; returns the client's code. */
static int handshake(tls_conn *c, server *s)
{
  int rc = TLS_WANT, i;
  size_t moved;

  for (i = 0; i < 50; i++) {
    if (rc == TLS_WANT)
      rc = tls_conn_handshake(c);
    /* Whatever the client reports, the error queue is its own business
     * and must be empty when it returns. */
    CHECK(ERR_peek_error() == 0);
    moved = to_server(c, s);
    server_step(s);
    moved += to_client(s, c);
    if (moved == 0)
      break;
  }
  return rc;
}

/* --- cases: handshakes and verification --------------------------------- */

static void case_handshake(void)
{
  server s;
  tls_conn *c;
  const char *sni;

  server_init(&s, "server", CLIENT_CERT_NONE, 0);
  c = client_conn(client_ctx(1, cert("ca.crt"), NULL, NULL), "localhost");
  CHECK(handshake(c, &s) == TLS_OK);
  CHECK(s.done);
  CHECK(tls_conn_handshake(c) == TLS_OK);  /* again: still done */
  sni = SSL_get_servername(s.ssl, TLSEXT_NAMETYPE_host_name);
  CHECK(sni != NULL && strcmp(sni, "localhost") == 0);
  CHECK(SSL_version(s.ssl) == TLS1_3_VERSION);
  CHECK(strcmp(tls_conn_error(c), "") == 0);
  tls_conn_free(c);
  server_free(&s);
}

/* An IP literal is checked against the iPAddress SAN and not sent as SNI. */
static void case_ip(void)
{
  server s;
  tls_conn *c;

  server_init(&s, "server", CLIENT_CERT_NONE, 0);
  c = client_conn(client_ctx(1, cert("ca.crt"), NULL, NULL), "127.0.0.1");
  CHECK(handshake(c, &s) == TLS_OK);
  CHECK(SSL_get_servername(s.ssl, TLSEXT_NAMETYPE_host_name) == NULL);
  tls_conn_free(c);
  server_free(&s);

  server_init(&s, "wrongname", CLIENT_CERT_NONE, 0);
  c = client_conn(client_ctx(1, cert("ca.crt"), NULL, NULL), "127.0.0.1");
  CHECK(handshake(c, &s) == TLS_ERR);
  CHECK_HAS(tls_conn_error(c), "certificate verify failed");
  CHECK_HAS(tls_conn_error(c), "IP address mismatch");
  tls_conn_free(c);
  server_free(&s);

  server_init(&s, "server", CLIENT_CERT_NONE, 0);
  c = client_conn(client_ctx(1, cert("ca.crt"), NULL, NULL), "::1");
  CHECK(handshake(c, &s) == TLS_ERR);
  CHECK_HAS(tls_conn_error(c), "IP address mismatch");
  tls_conn_free(c);
  server_free(&s);
}

static void case_tls12(void)
{
  server s;
  tls_conn *c;
  char buf[16];
  size_t n;

  server_init(&s, "server", CLIENT_CERT_NONE, TLS1_2_VERSION);
  c = client_conn(client_ctx(1, cert("ca.crt"), NULL, NULL), "localhost");
  CHECK(handshake(c, &s) == TLS_OK);
  CHECK(SSL_version(s.ssl) == TLS1_2_VERSION);
  CHECK(SSL_write(s.ssl, "+PONG\r\n", 7) == 7);
  to_client(&s, c);
  CHECK(tls_conn_read(c, buf, sizeof buf, &n) == TLS_OK);
  CHECK(n == 7 && memcmp(buf, "+PONG\r\n", 7) == 0);
  tls_conn_free(c);
  server_free(&s);

  /* The floor is TLS 1.2: a 1.1-only server is refused. */
  server_init(&s, "server", CLIENT_CERT_NONE, TLS1_1_VERSION);
  c = client_conn(client_ctx(1, cert("ca.crt"), NULL, NULL), "localhost");
  CHECK(handshake(c, &s) == TLS_ERR);
  printf("tls1.1 server: %s\n", tls_conn_error(c));
  tls_conn_free(c);
  server_free(&s);
}

static void expect_verify_error(const char *server_cert, const char *ca,
                                const char *name, const char *part)
{
  server s;
  tls_conn *c;

  server_init(&s, server_cert, CLIENT_CERT_NONE, 0);
  c = client_conn(client_ctx(1, ca, NULL, NULL), name);
  CHECK(handshake(c, &s) == TLS_ERR);
  CHECK(s.failed);  /* the client's alert reached it */
  printf("%s: %s\n", server_cert, tls_conn_error(c));
  CHECK_HAS(tls_conn_error(c), "certificate verify failed: ");
  CHECK_HAS(tls_conn_error(c), part);
  /* The error sticks. */
  CHECK(tls_conn_handshake(c) == TLS_ERR);
  CHECK_HAS(tls_conn_error(c), part);
  CHECK(ERR_peek_error() == 0);
  tls_conn_free(c);
  server_free(&s);
}

static void case_wrong_ca(void)
{
  expect_verify_error("server", cert("other-ca.crt"), "localhost",
                      "unable to get local issuer certificate");
}

static void case_expired(void)
{
  expect_verify_error("expired", cert("ca.crt"), "localhost", "expired");
}

static void case_wrong_name(void)
{
  expect_verify_error("wrongname", cert("ca.crt"), "localhost",
                      "hostname mismatch");
  expect_verify_error("server", cert("ca.crt"), "otherhost",
                      "hostname mismatch");
}

/* verify = 0 accepts what verification would refuse. */
static void case_no_verify(void)
{
  static const char *const names[] = {"wrongname", "expired", "server"};
  server s;
  tls_conn *c;
  size_t i;

  for (i = 0; i < sizeof names / sizeof names[0]; i++) {
    server_init(&s, names[i], CLIENT_CERT_NONE, 0);
    /* No CA at all: the chain is not checked either. */
    c = client_conn(client_ctx(0, NULL, NULL, NULL), "localhost");
    CHECK(handshake(c, &s) == TLS_OK);
    CHECK(s.done);
    tls_conn_free(c);
    server_free(&s);
  }
}

/* Pumps once more after the handshake so a server's late verdict (TLS 1.3
 * checks the client certificate after the client finished) arrives. */
static int settle(tls_conn *c, server *s)
{
  char buf[64];
  size_t n;

  to_server(c, s);
  server_step(s);
  if (s->done)
    SSL_read(s->ssl, buf, sizeof buf);  /* sends the session tickets */
  to_client(s, c);
  return tls_conn_read(c, buf, sizeof buf, &n);
}

static void case_client_cert(void)
{
  static const int versions[] = {0, TLS1_2_VERSION};
  server s;
  tls_conn *c;
  size_t i;
  int rc;

  for (i = 0; i < 2; i++) {
    server_init(&s, "server", CLIENT_CERT_REQUIRE, versions[i]);
    c = client_conn(client_ctx(1, cert("ca.crt"), NULL, NULL), "localhost");
    rc = handshake(c, &s);
    /* TLS 1.2 fails the handshake; TLS 1.3 the first read after it. */
    if (rc == TLS_OK)
      rc = settle(c, &s);
    CHECK(rc == TLS_ERR);
    CHECK(s.failed);
    printf("no client cert: %s\n", tls_conn_error(c));
    CHECK_HAS(tls_conn_error(c), i == 0 ? "certificate required"
                                        : "ssl: handshake failed: ");
    CHECK(ERR_peek_error() == 0);
    tls_conn_free(c);
    server_free(&s);

    server_init(&s, "server", CLIENT_CERT_REQUIRE, versions[i]);
    c = client_conn(client_ctx(1, cert("ca.crt"), cert("client.crt"),
                               cert("client.key")), "localhost");
    CHECK(handshake(c, &s) == TLS_OK);
    CHECK(settle(c, &s) == TLS_WANT);
    CHECK(s.done && !s.failed);
    CHECK(SSL_get_verify_result(s.ssl) == X509_V_OK);
    CHECK(SSL_get0_peer_certificate(s.ssl) != NULL);
    tls_conn_free(c);
    server_free(&s);
  }
}

/* A peer that is not speaking TLS: plain Redis, or noise. */
static void case_garbage(void)
{
  static const char redis_err[] = "-ERR unknown command '\x16\x03\x01'\r\n";
  char noise[512];
  tls_conn *c;
  size_t i, len;

  c = client_conn(client_ctx(1, cert("ca.crt"), NULL, NULL), "localhost");
  CHECK(tls_conn_handshake(c) == TLS_WANT);
  CHECK(tls_conn_out(c, &len) != NULL && len > 0);  /* the ClientHello */
  tls_conn_out_consume(c, len);
  CHECK(tls_conn_feed(c, redis_err, sizeof redis_err - 1) == TLS_OK);
  CHECK(tls_conn_handshake(c) == TLS_ERR);
  printf("plain redis: %s\n", tls_conn_error(c));
  CHECK_HAS(tls_conn_error(c), "ssl: handshake failed: ");
  CHECK_HAS(tls_conn_error(c), "wrong version number");
  CHECK(ERR_peek_error() == 0);
  /* Everything after the failure fails the same way. */
  CHECK(tls_conn_feed(c, "x", 1) == TLS_ERR);
  CHECK(tls_conn_write(c, "x", 1) == TLS_ERR);
  CHECK(tls_conn_read(c, noise, sizeof noise, &len) == TLS_ERR);
  CHECK_HAS(tls_conn_error(c), "wrong version number");
  tls_conn_free(c);

  /* Noise shaped like a handshake record, so it gets past the header. */
  for (i = 0; i < sizeof noise; i++)
    noise[i] = (char)(i * 131 + 7);
  memcpy(noise, "\x16\x03\x03\x01\x00", 5);
  c = client_conn(client_ctx(1, cert("ca.crt"), NULL, NULL), "localhost");
  CHECK(tls_conn_handshake(c) == TLS_WANT);
  CHECK(tls_conn_feed(c, noise, sizeof noise) == TLS_OK);
  CHECK(tls_conn_handshake(c) == TLS_ERR);
  printf("noise: %s\n", tls_conn_error(c));
  CHECK_HAS(tls_conn_error(c), "ssl: handshake failed: ");
  CHECK(ERR_peek_error() == 0);
  tls_conn_free(c);
}

/* A peer that stops mid-handshake leaves the client waiting, not failed;
 * the rest, even one byte at a time, completes it. */
static void case_truncated(void)
{
  server s;
  tls_conn *c;
  char flight[65536];
  int len, i;

  server_init(&s, "server", CLIENT_CERT_NONE, 0);
  c = client_conn(client_ctx(1, cert("ca.crt"), NULL, NULL), "localhost");
  CHECK(tls_conn_handshake(c) == TLS_WANT);
  CHECK(tls_conn_handshake(c) == TLS_WANT);  /* nothing came: still */
  to_server(c, &s);
  server_step(&s);
  len = BIO_read(s.out, flight, sizeof flight);
  CHECK(len > 100 && BIO_ctrl_pending(s.out) == 0);
  CHECK(tls_conn_feed(c, flight, (size_t)len / 2) == TLS_OK);
  for (i = 0; i < 3; i++)
    CHECK(tls_conn_handshake(c) == TLS_WANT);
  CHECK(strcmp(tls_conn_error(c), "") == 0);
  for (i = len / 2; i < len - 1; i++) {
    CHECK(tls_conn_feed(c, flight + i, 1) == TLS_OK);
    CHECK(tls_conn_handshake(c) == TLS_WANT);
  }
  CHECK(tls_conn_feed(c, flight + len - 1, 1) == TLS_OK);
  CHECK(tls_conn_handshake(c) == TLS_OK);
  CHECK(handshake(c, &s) == TLS_OK && s.done);
  tls_conn_free(c);
  server_free(&s);
}

static void case_close_notify(void)
{
  server s;
  tls_conn *c;
  char buf[64];
  size_t n;

  /* The server closes: data before close_notify, then TLS_EOF, which
   * stays. */
  server_init(&s, "server", CLIENT_CERT_NONE, 0);
  c = client_conn(client_ctx(1, cert("ca.crt"), NULL, NULL), "localhost");
  CHECK(handshake(c, &s) == TLS_OK);
  CHECK(SSL_write(s.ssl, "bye", 3) == 3);
  CHECK(SSL_shutdown(s.ssl) == 0);
  to_client(&s, c);
  CHECK(tls_conn_read(c, buf, sizeof buf, &n) == TLS_OK);
  CHECK(n == 3 && memcmp(buf, "bye", 3) == 0);
  CHECK(tls_conn_read(c, buf, sizeof buf, &n) == TLS_EOF && n == 0);
  CHECK(tls_conn_read(c, buf, sizeof buf, &n) == TLS_EOF);
  CHECK(strcmp(tls_conn_error(c), "") == 0);
  CHECK(tls_conn_shutdown(c) == TLS_OK);  /* answering it is allowed */
  tls_conn_free(c);
  server_free(&s);

  /* The client closes: the server sees a clean end. */
  server_init(&s, "server", CLIENT_CERT_NONE, 0);
  c = client_conn(client_ctx(1, cert("ca.crt"), NULL, NULL), "localhost");
  CHECK(handshake(c, &s) == TLS_OK);
  CHECK(tls_conn_shutdown(c) == TLS_OK);
  to_server(c, &s);
  CHECK(SSL_read(s.ssl, buf, sizeof buf) == 0);
  CHECK(SSL_get_error(s.ssl, 0) == SSL_ERROR_ZERO_RETURN);
  tls_conn_free(c);
  server_free(&s);

  /* Shutting down before the handshake is a no-op, not an error. */
  c = client_conn(client_ctx(1, cert("ca.crt"), NULL, NULL), "localhost");
  CHECK(tls_conn_shutdown(c) == TLS_OK);
  tls_conn_free(c);
}

/* The system trust store, pointed at our CA through SSL_CERT_FILE. */
static void case_cert_file_env(void)
{
  server s;
  tls_conn *c;

  CHECK(setenv("SSL_CERT_DIR", certdir, 1) == 0);  /* not hashed: inert */
  CHECK(setenv("SSL_CERT_FILE", cert("ca.crt"), 1) == 0);
  server_init(&s, "server", CLIENT_CERT_NONE, 0);
  c = client_conn(client_ctx(1, NULL, NULL, NULL), "localhost");
  CHECK(handshake(c, &s) == TLS_OK);
  tls_conn_free(c);
  server_free(&s);

  CHECK(setenv("SSL_CERT_FILE", cert("other-ca.crt"), 1) == 0);
  server_init(&s, "server", CLIENT_CERT_NONE, 0);
  c = client_conn(client_ctx(1, NULL, NULL, NULL), "localhost");
  CHECK(handshake(c, &s) == TLS_ERR);
  CHECK_HAS(tls_conn_error(c), "unable to get local issuer certificate");
  tls_conn_free(c);
  server_free(&s);
}

static void expect_ctx_error(const char *ca, const char *crt,
                             const char *key, const char *part)
{
  tls_config cfg;
  tls_ctx *ctx = (tls_ctx *)&cfg;  /* must come back NULL */
  char err[256];

  memset(&cfg, 0, sizeof cfg);
  cfg.verify = 1;
  cfg.ca_file = ca;
  cfg.cert_file = crt;
  cfg.key_file = key;
  CHECK(tls_ctx_new(&ctx, &cfg, err, sizeof err) == TLS_ERR);
  CHECK(ctx == NULL);
  printf("%s\n", err);
  CHECK_HAS(err, part);
  CHECK(ERR_peek_error() == 0);
}

/* CERTDIR/enc.key: client.key under a passphrase, written here so that
 * no test ever waits at a passphrase prompt. */
static const char *enc_key(void)
{
  const char *path = cert("enc.key");
  EVP_PKEY *pkey;
  BIO *in, *out;

  in = BIO_new_file(cert("client.key"), "r");
  CHECK(in != NULL);
  pkey = PEM_read_bio_PrivateKey(in, NULL, NULL, NULL);
  CHECK(pkey != NULL);
  out = BIO_new_file(path, "w");
  CHECK(out != NULL);
  CHECK(PEM_write_bio_PKCS8PrivateKey(out, pkey, EVP_aes_128_cbc(), "pw", 2,
                                      NULL, NULL) == 1);
  BIO_free(in);
  BIO_free(out);
  EVP_PKEY_free(pkey);
  return path;
}

static void case_ctx_errors(void)
{
  char tiny[8];
  tls_config cfg;
  tls_ctx *ctx;

  expect_ctx_error("/nonexistent/ca.crt", NULL, NULL,
                   "ssl: cannot load CA file /nonexistent/ca.crt: "
                   "No such file or directory");
  expect_ctx_error(cert("ca.key"), NULL, NULL, "ssl: cannot load CA file ");
  expect_ctx_error(certdir, NULL, NULL, "Is a directory");
  expect_ctx_error(cert("ca.crt"), "/nonexistent/c.crt", cert("client.key"),
                   "ssl: cannot load certificate /nonexistent/c.crt: "
                   "No such file or directory");
  expect_ctx_error(cert("ca.crt"), cert("client.key"), cert("client.key"),
                   "no PEM certificate in it");
  expect_ctx_error(cert("ca.crt"), cert("client.crt"), "/nonexistent/k",
                   "ssl: cannot load key /nonexistent/k: No such file");
  expect_ctx_error(cert("ca.crt"), cert("client.crt"), cert("client.crt"),
                   "no PEM private key");
  expect_ctx_error(cert("ca.crt"), cert("client.crt"), enc_key(),
                   "the key is encrypted");
  expect_ctx_error(cert("ca.crt"), cert("client.crt"), cert("server.key"),
                   "ssl: certificate and key do not match");
  expect_ctx_error(cert("ca.crt"), cert("client.crt"), NULL,
                   "no PEM private key");
  expect_ctx_error(cert("ca.crt"), NULL, cert("client.key"),
                   "without a certificate");

  /* A short error buffer truncates, never overflows. */
  memset(&cfg, 0, sizeof cfg);
  cfg.ca_file = "/nonexistent";
  CHECK(tls_ctx_new(&ctx, &cfg, tiny, sizeof tiny) == TLS_ERR);
  CHECK(strcmp(tiny, "ssl: ca") == 0);
  CHECK(tls_ctx_new(&ctx, &cfg, NULL, 0) == TLS_ERR);

  /* Counting: a context outlives its creator's reference while sessions
   * use it (ASan/valgrind would catch a use after free here). */
  ctx = client_ctx(1, cert("ca.crt"), cert("client.crt"),
                   cert("client.key"));
  tls_ctx_ref(ctx);
  tls_ctx_unref(ctx);
  tls_ctx_unref(ctx);
  tls_ctx_unref(NULL);
  tls_conn_free(NULL);
}

/* --- bulk data ---------------------------------------------------------- */

#define BULK (16u << 20)

/* The byte at offset i of a stream: varied, so a dropped or repeated
 * chunk does not line up by chance. */
static unsigned char pattern(size_t i, unsigned seed)
{
  unsigned x = (unsigned)i * 2654435761u + seed;

  x ^= x >> 15;
  return (unsigned char)(x ^ (x >> 7) ^ (unsigned)(i >> 12));
}

static void fill(char *buf, size_t off, size_t n, unsigned seed)
{
  size_t i;

  for (i = 0; i < n; i++)
    buf[i] = (char)pattern(off + i, seed);
}

static void verify_bytes(const char *buf, size_t off, size_t n,
                         unsigned seed)
{
  size_t i;

  for (i = 0; i < n; i++)
    if ((unsigned char)buf[i] != pattern(off + i, seed)) {
      fprintf(stderr, "byte %zu differs\n", off + i);
      exit(1);
    }
}

/* Counts KeyUpdate messages the server receives. */
static void count_key_updates(int write_p, int version, int content_type,
                              const void *buf, size_t len, SSL *ssl,
                              void *arg)
{
  (void)version; (void)ssl;
  if (!write_p && content_type == SSL3_RT_HANDSHAKE && len > 0
      && ((const unsigned char *)buf)[0] == SSL3_MT_KEY_UPDATE)
    ++*(int *)arg;
}

/* 16 MB each way at once, in uneven chunks, with the server sending key
 * updates (which need a reply from the client) along the way. */
static void case_bulk(void)
{
  static const size_t caps[] = {1, 4093, 16384, 100000};
  static char wbuf[262144], rbuf[100000];
  size_t c_sent = 0, c_recv = 0, s_sent = 0, s_recv = 0, n, chunk, k = 0;
  int updates = 0, answers = 0, rc, r, rounds = 0;
  server s;
  tls_conn *c;

  server_init(&s, "server", CLIENT_CERT_NONE, 0);
  SSL_set_msg_callback(s.ssl, count_key_updates);
  SSL_set_msg_callback_arg(s.ssl, &answers);
  c = client_conn(client_ctx(1, cert("ca.crt"), NULL, NULL), "localhost");
  CHECK(handshake(c, &s) == TLS_OK);
  while (c_recv < BULK || s_recv < BULK) {
    CHECK(++rounds < 100000);
    if (c_sent < BULK) {
      chunk = 1 + (c_sent * 7 + 12345) % sizeof wbuf;
      if (chunk > BULK - c_sent)
        chunk = BULK - c_sent;
      fill(wbuf, c_sent, chunk, 1);
      CHECK(tls_conn_write(c, wbuf, chunk) == TLS_OK);
      c_sent += chunk;
    }
    if (s_sent < BULK) {
      if (s_sent >= (size_t)(updates + 1) * (BULK / 4) && updates < 3) {
        CHECK(SSL_key_update(s.ssl, SSL_KEY_UPDATE_REQUESTED) == 1);
        updates++;
      }
      chunk = 1 + (s_sent * 13 + 777) % sizeof wbuf;
      if (chunk > BULK - s_sent)
        chunk = BULK - s_sent;
      fill(wbuf, s_sent, chunk, 2);
      CHECK(SSL_write_ex(s.ssl, wbuf, chunk, &n) == 1 && n == chunk);
      s_sent += chunk;
    }
    to_server(c, &s);
    while ((r = SSL_read_ex(s.ssl, rbuf, sizeof rbuf, &n)) == 1) {
      verify_bytes(rbuf, s_recv, n, 1);
      s_recv += n;
    }
    CHECK(SSL_get_error(s.ssl, r) == SSL_ERROR_WANT_READ);
    to_client(&s, c);
    while ((rc = tls_conn_read(c, rbuf, caps[k++ % 4], &n)) == TLS_OK) {
      CHECK(n > 0);
      verify_bytes(rbuf, c_recv, n, 2);
      c_recv += n;
    }
    CHECK(rc == TLS_WANT);
    CHECK(ERR_peek_error() == 0);
  }
  CHECK(c_sent == BULK && s_sent == BULK && c_recv == BULK
        && s_recv == BULK && updates == 3);
  /* The client answered each requested key update with its own. */
  CHECK(answers == 3);
  tls_conn_free(c);
  server_free(&s);
}

/* --- against redis-server ----------------------------------------------- */

static int tls_port(void)
{
  char path[1024];
  FILE *f;
  int plain = 0, tls = 0;

  CHECK(redisdir != NULL);
  snprintf(path, sizeof path, "%s/ports", redisdir);
  f = fopen(path, "r");
  if (f == NULL) {
    fprintf(stderr, "%s: %s (did the redis fixture start?)\n", path,
            strerror(errno));
    exit(1);
  }
  CHECK(fscanf(f, "%d %d", &plain, &tls) == 2);
  fclose(f);
  CHECK(tls > 0 && tls < 65536);
  return tls;
}

static int sock_connect(int port)
{
  struct sockaddr_in sa;
  int fd = socket(AF_INET, SOCK_STREAM, 0);

  CHECK(fd >= 0);
  memset(&sa, 0, sizeof sa);
  sa.sin_family = AF_INET;
  sa.sin_port = htons((unsigned short)port);
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
    fprintf(stderr, "connect 127.0.0.1:%d: %s\n", port, strerror(errno));
    exit(1);
  }
  return fd;
}

/* Sends what the session queued. A peer that hung up is not this
 * function's failure: the next read reports it. */
static void sock_flush(int fd, tls_conn *c)
{
  const char *p;
  size_t len;
  ssize_t w;

  while ((p = tls_conn_out(c, &len)) != NULL) {
    w = send(fd, p, len, MSG_NOSIGNAL);
    if (w < 0) {
      if (errno == EINTR)
        continue;
      tls_conn_out_consume(c, len);
      return;
    }
    tls_conn_out_consume(c, (size_t)w);
  }
}

/* Waits (5 s at most) for bytes and feeds them; 0 when the peer closed. */
static int sock_fill(int fd, tls_conn *c)
{
  struct pollfd pfd;
  char buf[16384];
  ssize_t r;

  pfd.fd = fd;
  pfd.events = POLLIN;
  pfd.revents = 0;
  if (poll(&pfd, 1, 5000) != 1) {
    fprintf(stderr, "no reply from redis-server in 5 s\n");
    exit(1);
  }
  r = recv(fd, buf, sizeof buf, 0);
  if (r <= 0)
    return 0;
  CHECK(tls_conn_feed(c, buf, (size_t)r) == TLS_OK);
  return 1;
}

/* Connects, sends PING, and returns the reply's first line (or the error
 * text) in reply. Returns the last tls code. */
static int redis_ping(const char *crt, const char *key, char *reply,
                      size_t cap)
{
  static const char ping[] = "*1\r\n$4\r\nPING\r\n";
  tls_conn *c;
  size_t got = 0, n;
  int fd, rc;

  fd = sock_connect(tls_port());
  c = client_conn(client_ctx(1, cert("ca.crt"), crt, key), "127.0.0.1");
  while ((rc = tls_conn_handshake(c)) == TLS_WANT) {
    sock_flush(fd, c);
    if (!sock_fill(fd, c))
      break;
  }
  if (rc == TLS_OK) {
    CHECK(tls_conn_write(c, ping, sizeof ping - 1) == TLS_OK);
    sock_flush(fd, c);
    while (got < cap - 1) {
      rc = tls_conn_read(c, reply + got, cap - 1 - got, &n);
      sock_flush(fd, c);
      if (rc == TLS_OK) {
        got += n;
        reply[got] = '\0';
        if (strstr(reply, "\r\n") != NULL)
          break;
      } else if (rc != TLS_WANT || !sock_fill(fd, c)) {
        break;
      }
    }
  }
  if (rc == TLS_OK) {
    CHECK(tls_conn_shutdown(c) == TLS_OK);
    sock_flush(fd, c);
  } else if (rc == TLS_WANT) {
    snprintf(reply, cap, "connection closed");
  } else if (rc == TLS_EOF) {
    snprintf(reply, cap, "close_notify");
  } else {
    snprintf(reply, cap, "%s", tls_conn_error(c));
  }
  tls_conn_free(c);
  close(fd);
  return rc;
}

static void case_redis(void)
{
  char reply[256];

  CHECK(redis_ping(NULL, NULL, reply, sizeof reply) == TLS_OK);
  CHECK(strcmp(reply, "+PONG\r\n") == 0);
}

static void case_redis_mtls(void)
{
  char reply[256];
  int rc;

  rc = redis_ping(NULL, NULL, reply, sizeof reply);
  printf("without a client certificate: %s\n", reply);
  CHECK(rc != TLS_OK);
  CHECK(strstr(reply, "PONG") == NULL);
  CHECK(redis_ping(cert("client.crt"), cert("client.key"), reply,
                   sizeof reply) == TLS_OK);
  CHECK(strcmp(reply, "+PONG\r\n") == 0);
}

/* --- main ----------------------------------------------------------------- */

static const struct {
  const char *name;
  void (*fn)(void);
} cases[] = {
  {"handshake", case_handshake},
  {"ip", case_ip},
  {"tls12", case_tls12},
  {"wrong_ca", case_wrong_ca},
  {"expired", case_expired},
  {"wrong_name", case_wrong_name},
  {"no_verify", case_no_verify},
  {"client_cert", case_client_cert},
  {"garbage", case_garbage},
  {"truncated", case_truncated},
  {"close_notify", case_close_notify},
  {"cert_file_env", case_cert_file_env},
  {"ctx_errors", case_ctx_errors},
  {"bulk", case_bulk},
  {"redis", case_redis},
  {"redis_mtls", case_redis_mtls},
};

int main(int argc, char **argv)
{
  size_t i;

  if (argc < 3) {
    fprintf(stderr, "usage: %s CASE CERTDIR [REDISDIR]\n", argv[0]);
    return 2;
  }
  certdir = argv[2];
  redisdir = argc > 3 ? argv[3] : NULL;
  for (i = 0; i < sizeof cases / sizeof cases[0]; i++)
    if (strcmp(argv[1], cases[i].name) == 0) {
      cases[i].fn();
      printf("ok %s\n", cases[i].name);
      return 0;
    }
  fprintf(stderr, "unknown case %s\n", argv[1]);
  return 2;
}
