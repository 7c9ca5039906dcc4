/* TLS contexts and certificates (src/net/tls.c): the server context built from rabbitmq.conf's
 * ssl_options.* keys, OpenSSL's errors as one log line, and the user name SASL EXTERNAL takes
 * from a verified client certificate (rabbitmq_auth_mechanism_ssl). Nothing here touches a
 * connection: the AMQP listeners use it (src/net/conn_tls.c), and so can the management
 * listener's HTTPS (management.ssl.*). */
#ifndef WARREN_TLS_H
#define WARREN_TLS_H

#include <stddef.h>

struct conf;
struct ssl_ctx_st; /* OpenSSL's SSL_CTX */
struct ssl_st;     /* OpenSSL's SSL */

/* A server context from conf's ssl_options: certificate chain, key (decrypted with
 * ssl_options.password), CA file, verify / fail_if_no_peer_cert / depth, versions (TLS 1.2 and
 * 1.3 by default), ciphers and honor_cipher_order. Returns it (the caller owns one reference:
 * SSL_CTX_free), or NULL with err set to a line naming the key, the file and OpenSSL's reason,
 * e.g. "ssl_options.keyfile /etc/warren/key.pem: cannot load it: bad decrypt". */
struct ssl_ctx_st *tls_server_ctx_new(const struct conf *conf, char *err, size_t errlen);

/* The context of the connections between a cluster's nodes (both ends) from conf's
 * distribution.ssl_options: certificate, key, CA file; TLS 1.2 at least; each end's
 * certificate required and checked against the CA. Returns it (the caller's reference), or
 * NULL: with err set on a failure, "" when no certificate is configured (plain TCP). */
struct ssl_ctx_st *tls_node_ctx_new(const struct conf *conf, char *err, size_t errlen);

/* Drains OpenSSL's error queue of this thread into buf as one line, the reasons separated by
 * "; " ("" if the queue was empty). Returns buf. */
const char *tls_errors(char *buf, size_t cap);

/* EXTERNAL's user name for the peer of ssl, as RabbitMQ's rabbit_ssl:peer_cert_auth_name
 * finds it per ssl_cert_login_from: the subject as an RFC 4514 string in RabbitMQ's format
 * ("CN=client,O=Example,C=GB": the last RDN first, its attribute names, its escapes), the
 * subject's common names joined with ",", or one of the subject alternative names
 * (ssl_cert_login_san_type, ssl_cert_login_san_index). Returns 0 with the name in out, or -1
 * with why set to RabbitMQ's refusal: "connection peer presented no TLS (x.509)
 * certificate", "TLS configuration is unsafe" (verify_none), "no name found". */
int tls_peer_login_name(struct ssl_st *ssl, const struct conf *conf, char *out, size_t cap,
                        char *why, size_t whylen);

#endif
