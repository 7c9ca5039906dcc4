/* TLS contexts and certificates: the server context made from rabbitmq.conf's ssl_options.*
 * keys, OpenSSL's errors drained into one line (nginx ngx_ssl_error), and the user name SASL
 * EXTERNAL takes from a client certificate, formatted as RabbitMQ's rabbit_ssl and
 * rabbit_cert_info do so that users made for RabbitMQ log in unchanged.
 *
 * A context is immutable once made and reference-counted by OpenSSL: every connection's SSL
 * holds one, so a new context (SIGHUP) serves new handshakes while open connections keep the
 * one they started with until they close. */
#include "config.h"

#include "warren/tls.h"

#include <arpa/inet.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "warren/conf.h"
#include "warren/log.h"

/* OpenSSL reads this much ciphertext per read(2) when it can (read-ahead): four full records,
 * so a stream of large bodies costs a system call per 64 KiB rather than two per 16 KiB
 * record (its header, then the rest). Released while the connection is idle
 * (SSL_MODE_RELEASE_BUFFERS), so idle connections do not hold it. */
#define TLS_READ_BUFFER (64u << 10)
/* The session-id context: OpenSSL refuses to resume sessions of a verifying server without
 * one. */
static const unsigned char tls_session_ctx[] = "warren-amqps";

const char *
tls_errors(char *buf, size_t cap)
{
    size_t n = 0;
    const char *data;
    int flags;
    unsigned long e;
    buf[0] = '\0';
    while ((e = ERR_get_error_all(NULL, NULL, NULL, &data, &flags)) != 0) {
        const char *reason =
            ERR_SYSTEM_ERROR(e) ? strerror(ERR_GET_REASON(e)) : ERR_reason_error_string(e);
        char code[32];
        if (reason == NULL) {
            snprintf(code, sizeof(code), "error %08lX", e);
            reason = code;
        }
        if (n < cap && strstr(buf, reason) == NULL) /* the same reason once */
            n += (size_t)snprintf(buf + n, cap - n, "%s%s", n ? "; " : "", reason);
        if (n < cap && (flags & ERR_TXT_STRING) && data != NULL && *data != '\0' &&
            strstr(buf, data) == NULL)
            n += (size_t)snprintf(buf + n, cap - n, " (%s)", data);
    }
    return buf;
}

/* Fails a context: err gets "<what>: <OpenSSL's reasons>". Returns NULL. */
static struct ssl_ctx_st *
tls_fail(SSL_CTX *ctx, char *err, size_t errlen, const char *what)
{
    char why[512];
    tls_errors(why, sizeof(why));
    snprintf(err, errlen, "%s: %s", what, why[0] != '\0' ? why : "unknown error");
    SSL_CTX_free(ctx);
    return NULL;
}

/* The passphrase callback: userdata is ssl_options.password (never a prompt on a terminal). */
static int
tls_password_cb(char *buf, int size, int rwflag, void *userdata)
{
    const char *pw = userdata;
    if (pw == NULL)
        return 0;
    size_t n = strlen(pw);
    if (n > (size_t)size)
        return 0;
    memcpy(buf, pw, n);
    return (int)n;
}

/* ssl_options.versions: OpenSSL takes a lowest and a highest version; versions left out in
 * between are switched off one by one. 0, or -1 with err set. */
static int
tls_set_versions(SSL_CTX *ctx, const struct conf *conf, char *err, size_t errlen)
{
    static const struct {
        const char *name;
        int version;
        uint64_t off;
    } versions[] = {
        {"tlsv1", TLS1_VERSION, SSL_OP_NO_TLSv1},
        {"tlsv1.1", TLS1_1_VERSION, SSL_OP_NO_TLSv1_1},
        {"tlsv1.2", TLS1_2_VERSION, SSL_OP_NO_TLSv1_2},
        {"tlsv1.3", TLS1_3_VERSION, SSL_OP_NO_TLSv1_3},
    };
    int lo = -1, hi = -1;
    for (int i = 0; i < 4; i++) {
        if (!conf_list_has(&conf->ssl_versions, versions[i].name))
            continue;
        lo = lo < 0 ? i : lo;
        hi = i;
    }
    if (lo < 0) {
        snprintf(err, errlen, "ssl_options.versions lists no TLS version");
        return -1;
    }
    if (!SSL_CTX_set_min_proto_version(ctx, versions[lo].version) ||
        !SSL_CTX_set_max_proto_version(ctx, versions[hi].version)) {
        snprintf(err, errlen, "ssl_options.versions: OpenSSL refused the range %s..%s",
                 versions[lo].name, versions[hi].name);
        return -1;
    }
    for (int i = lo + 1; i < hi; i++)
        if (!conf_list_has(&conf->ssl_versions, versions[i].name))
            SSL_CTX_set_options(ctx, versions[i].off);
    return 0;
}

/* ssl_options.ciphers: TLS 1.3 suites (their names start with TLS_) go to
 * SSL_CTX_set_ciphersuites, the others to SSL_CTX_set_cipher_list, each in the listed order;
 * a kind not listed keeps OpenSSL's defaults. 0, or -1 with err set. */
static int
tls_set_ciphers(SSL_CTX *ctx, const struct conf *conf, char *err, size_t errlen)
{
    char v13[2048] = "", v12[4096] = "";
    size_t n13 = 0, n12 = 0;
    for (unsigned i = 0; i < conf->ssl_ciphers.n; i++) {
        const char *name = conf->ssl_ciphers.items[i];
        if (strncmp(name, "TLS_", 4) == 0)
            n13 += (size_t)snprintf(v13 + n13, sizeof(v13) - n13, "%s%s", n13 ? ":" : "", name);
        else
            n12 += (size_t)snprintf(v12 + n12, sizeof(v12) - n12, "%s%s", n12 ? ":" : "", name);
        if (n13 >= sizeof(v13) || n12 >= sizeof(v12)) {
            snprintf(err, errlen, "ssl_options.ciphers: too long a list");
            return -1;
        }
    }
    /* OpenSSL's reason ("no cipher match") says no more than this. */
    if ((n13 > 0 && !SSL_CTX_set_ciphersuites(ctx, v13)) ||
        (n12 > 0 && !SSL_CTX_set_cipher_list(ctx, v12))) {
        ERR_clear_error();
        snprintf(err, errlen, "ssl_options.ciphers: OpenSSL knows none of %s",
                 n13 > 0 && !SSL_CTX_set_ciphersuites(ctx, v13) ? v13 : v12);
        return -1;
    }
    return 0;
}

/* Loads into ctx the certificate chain, its key (decrypted with password, NULL: none) and the
 * CA certificates (cacertfile NULL: none), named in err by their keys (prefix, then certfile
 * and so on). 0, or -1 with ctx freed and err set. */
static int
tls_load_identity(SSL_CTX *ctx, const char *prefix, const char *certfile, const char *keyfile,
                  const char *password, const char *cacertfile, char *err, size_t errlen)
{
    char what[4200];
    SSL_CTX_set_default_passwd_cb(ctx, tls_password_cb);
    SSL_CTX_set_default_passwd_cb_userdata(ctx, (void *)password);
    if (SSL_CTX_use_certificate_chain_file(ctx, certfile) != 1) {
        snprintf(what, sizeof(what), "%scertfile %s: cannot load it", prefix, certfile);
        tls_fail(ctx, err, errlen, what);
        return -1;
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, keyfile, SSL_FILETYPE_PEM) != 1) {
        snprintf(what, sizeof(what), "%skeyfile %s: cannot load it", prefix, keyfile);
        tls_fail(ctx, err, errlen, what);
        return -1;
    }
    /* (OpenSSL checked that it is the certificate's key: "key values mismatch".) The
     * passphrase is not needed again: the context keeps no pointer into conf. */
    SSL_CTX_set_default_passwd_cb_userdata(ctx, NULL);
    if (cacertfile != NULL) {
        STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(cacertfile);
        if (SSL_CTX_load_verify_locations(ctx, cacertfile, NULL) != 1 || names == NULL) {
            sk_X509_NAME_pop_free(names, X509_NAME_free);
            snprintf(what, sizeof(what), "%scacertfile %s: cannot load it", prefix, cacertfile);
            tls_fail(ctx, err, errlen, what);
            return -1;
        }
        /* Named in the certificate request, so that clients pick a certificate it issued. */
        SSL_CTX_set_client_CA_list(ctx, names);
    }
    return 0;
}

struct ssl_ctx_st *
tls_node_ctx_new(const struct conf *conf, char *err, size_t errlen)
{
    if (conf->distribution_ssl_certfile == NULL) {
        if (errlen > 0)
            err[0] = '\0';
        return NULL;
    }
    if (conf->distribution_ssl_keyfile == NULL || conf->distribution_ssl_cacertfile == NULL) {
        snprintf(err, errlen,
                 "distribution.ssl_options.certfile needs distribution.ssl_options.keyfile and "
                 "distribution.ssl_options.cacertfile (the other nodes' certificates are "
                 "checked against it)");
        return NULL;
    }
    ERR_clear_error();
    SSL_CTX *ctx = SSL_CTX_new(TLS_method()); /* a node connects and accepts */
    if (ctx == NULL)
        return tls_fail(ctx, err, errlen, "cannot create a TLS context");
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION);
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
    if (tls_load_identity(ctx, "distribution.ssl_options.", conf->distribution_ssl_certfile,
                          conf->distribution_ssl_keyfile, conf->distribution_ssl_password,
                          conf->distribution_ssl_cacertfile, err, errlen) < 0)
        return NULL;
    /* Both ends present a certificate of the cluster's CA, and check the other's. */
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
    SSL_CTX_set_session_id_context(ctx, tls_session_ctx, sizeof(tls_session_ctx) - 1);
    SSL_CTX_set_num_tickets(ctx, 0); /* connections last: nothing to resume */
    return ctx;
}

struct ssl_ctx_st *
tls_server_ctx_new(const struct conf *conf, char *err, size_t errlen)
{
    if (conf->ssl_certfile == NULL || conf->ssl_keyfile == NULL) {
        snprintf(err, errlen, "TLS listeners need ssl_options.certfile and ssl_options.keyfile");
        return NULL;
    }
    if (conf->ssl_verify == CONF_VERIFY_PEER && conf->ssl_cacertfile == NULL) {
        snprintf(err, errlen,
                 "ssl_options.verify = verify_peer needs ssl_options.cacertfile "
                 "(the CA certificates client certificates are checked against)");
        return NULL;
    }
    ERR_clear_error();
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (ctx == NULL)
        return tls_fail(ctx, err, errlen, "cannot create a TLS context");
    /* Clients that close without close_notify are common (and harmless for AMQP, whose
     * connection.close says the stream is complete); renegotiation is an attack surface
     * nobody needs; compression leaks secrets (CRIME). */
    SSL_CTX_set_options(
        ctx, SSL_OP_IGNORE_UNEXPECTED_EOF | SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION |
                 (conf->ssl_honor_cipher_order ? SSL_OP_CIPHER_SERVER_PREFERENCE : 0));
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
    SSL_CTX_set_read_ahead(ctx, 1);
    SSL_CTX_set_default_read_buffer_len(ctx, TLS_READ_BUFFER);
    if (tls_set_versions(ctx, conf, err, errlen) < 0 ||
        tls_set_ciphers(ctx, conf, err, errlen) < 0) {
        SSL_CTX_free(ctx);
        return NULL;
    }
    if (tls_load_identity(ctx, "ssl_options.", conf->ssl_certfile, conf->ssl_keyfile,
                          conf->ssl_password, conf->ssl_cacertfile, err, errlen) < 0)
        return NULL;
    int mode = SSL_VERIFY_NONE;
    if (conf->ssl_verify == CONF_VERIFY_PEER)
        mode = SSL_VERIFY_PEER |
               (conf->ssl_fail_if_no_peer_cert ? SSL_VERIFY_FAIL_IF_NO_PEER_CERT : 0);
    SSL_CTX_set_verify(ctx, mode, NULL);
    /* Erlang's depth and OpenSSL's count the same thing: CA certificates between the peer's
     * and the trust anchor. */
    SSL_CTX_set_verify_depth(ctx, (int)conf->ssl_depth);
    SSL_CTX_set_session_id_context(ctx, tls_session_ctx, sizeof(tls_session_ctx) - 1);
    /* No TLS 1.3 session tickets, as Erlang's ssl (RabbitMQ) by default: AMQP clients keep
     * their connections and do not resume sessions, and two tickets per handshake cost 5-10%
     * of its broker CPU (warren-perf --churn). */
    SSL_CTX_set_num_tickets(ctx, 0);
    return ctx;
}

/* ---- EXTERNAL's user name ---- */

/* Appends the n bytes of s to out (at *len, cap bytes, NUL kept), escaped as RabbitMQ's
 * rabbit_cert_info:escape_rdn_value does (RFC 4514, and every byte outside 32..125 as \XX).
 * Returns false if out is full. */
static bool
tls_dn_escape(char *out, size_t cap, size_t *len, const unsigned char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = s[i];
        char tmp[4];
        int k;
        if ((i == 0 && (ch == ' ' || ch == '#')) || (i == n - 1 && ch == ' ') ||
            (ch != '\0' && strchr("\"+,;<>\\", ch) != NULL))
            k = snprintf(tmp, sizeof(tmp), "\\%c", ch);
        else if (ch < 32 || ch >= 126)
            k = snprintf(tmp, sizeof(tmp), "\\%02X", ch);
        else
            k = snprintf(tmp, sizeof(tmp), "%c", ch);
        if (*len + (size_t)k >= cap)
            return false;
        memcpy(out + *len, tmp, (size_t)k + 1);
        *len += (size_t)k;
    }
    return true;
}

/* RabbitMQ's attribute names (rabbit_cert_info:format_rdn); others are dotted OIDs. */
static const char *
tls_dn_attr_name(int nid)
{
    switch (nid) {
    case NID_surname:
        return "SN";
    case NID_givenName:
        return "GIVENNAME";
    case NID_initials:
        return "INITIALS";
    case NID_generationQualifier:
        return "GENERATIONQUALIFIER";
    case NID_commonName:
        return "CN";
    case NID_localityName:
        return "L";
    case NID_stateOrProvinceName:
        return "ST";
    case NID_organizationName:
        return "O";
    case NID_organizationalUnitName:
        return "OU";
    case NID_title:
        return "TITLE";
    case NID_countryName:
        return "C";
    case NID_serialNumber:
        return "SERIALNUMBER";
    case NID_pseudonym:
        return "PSEUDONYM";
    case NID_domainComponent:
        return "DC";
    case NID_pkcs9_emailAddress:
        return "EMAILADDRESS";
    case NID_streetAddress:
        return "STREET";
    case NID_userId:
        return "UID";
    default:
        return NULL;
    }
}

/* Appends "NAME=escaped value" for entry e. Returns false if out is full or the value cannot
 * be converted to UTF-8. */
static bool
tls_dn_append_entry(char *out, size_t cap, size_t *len, const X509_NAME_ENTRY *e)
{
    const ASN1_OBJECT *obj = X509_NAME_ENTRY_get_object(e);
    const char *name = tls_dn_attr_name(OBJ_obj2nid(obj));
    char oid[128];
    if (name == NULL) {
        OBJ_obj2txt(oid, sizeof(oid), obj, 1);
        name = oid;
    }
    unsigned char *utf8 = NULL;
    int n = ASN1_STRING_to_UTF8(&utf8, X509_NAME_ENTRY_get_data(e));
    if (n < 0)
        return false;
    int k = snprintf(out + *len, cap - *len, "%s=", name);
    bool ok = k > 0 && *len + (size_t)k < cap;
    if (ok) {
        *len += (size_t)k;
        ok = tls_dn_escape(out, cap, len, utf8, (size_t)n);
    }
    OPENSSL_free(utf8);
    return ok;
}

/* The subject as RabbitMQ's rabbit_cert_info:subject writes it: RDNs last first, joined by
 * ",", the attributes of a multi-valued RDN joined by "+". 0, or -1 if it does not fit. */
static int
tls_subject_dn(const X509_NAME *subj, char *out, size_t cap)
{
    int count = X509_NAME_entry_count(subj);
    size_t len = 0;
    out[0] = '\0';
    if (count == 0)
        return 0;
    int last_set = X509_NAME_ENTRY_set(X509_NAME_get_entry(subj, count - 1));
    for (int set = last_set; set >= 0; set--) {
        bool first_in_set = true;
        for (int i = 0; i < count; i++) {
            const X509_NAME_ENTRY *e = X509_NAME_get_entry(subj, i);
            if (X509_NAME_ENTRY_set(e) != set)
                continue;
            const char *sep = first_in_set ? (set == last_set ? "" : ",") : "+";
            if (len + strlen(sep) >= cap)
                return -1;
            strcpy(out + len, sep);
            len += strlen(sep);
            if (!tls_dn_append_entry(out, cap, &len, e))
                return -1;
            first_in_set = false;
        }
    }
    return 0;
}

/* The subject's common names in their order, joined with "," (not escaped, as RabbitMQ).
 * 1 if there were any, 0 if none, -1 if they do not fit. */
static int
tls_subject_cns(const X509_NAME *subj, char *out, size_t cap)
{
    size_t len = 0;
    int found = 0;
    out[0] = '\0';
    for (int i = -1; (i = X509_NAME_get_index_by_NID(subj, NID_commonName, i)) >= 0;) {
        unsigned char *utf8 = NULL;
        int n = ASN1_STRING_to_UTF8(&utf8, X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subj, i)));
        if (n < 0)
            return -1;
        int k = snprintf(out + len, cap - len, "%s%.*s", found ? "," : "", n, utf8);
        OPENSSL_free(utf8);
        if (k < 0 || len + (size_t)k >= cap)
            return -1;
        len += (size_t)k;
        found = 1;
    }
    return found;
}

/* The index-th subject alternative name of the configured type, as text. 1 if found, 0 if
 * not, -1 if it does not fit. */
static int
tls_subject_alt_name(X509 *cert, const struct conf *conf, char *out, size_t cap)
{
    static const int types[] = {
        [CONF_SAN_DNS] = GEN_DNS,
        [CONF_SAN_IP] = GEN_IPADD,
        [CONF_SAN_EMAIL] = GEN_EMAIL,
        [CONF_SAN_URI] = GEN_URI,
        [CONF_SAN_OTHER_NAME] = GEN_OTHERNAME,
    };
    GENERAL_NAMES *names = X509_get_ext_d2i(cert, NID_subject_alt_name, NULL, NULL);
    int want = types[conf->ssl_cert_login_san_type], rc = 0;
    uint32_t seen = 0;
    for (int i = 0; names != NULL && i < sk_GENERAL_NAME_num(names); i++) {
        const GENERAL_NAME *g = sk_GENERAL_NAME_value(names, i);
        if (g->type != want || seen++ != conf->ssl_cert_login_san_index)
            continue;
        const ASN1_STRING *s = NULL;
        if (want == GEN_IPADD) {
            /* The address as text (RabbitMQ passes on its raw bytes). */
            int af = g->d.iPAddress->length == 4 ? AF_INET : AF_INET6;
            rc = g->d.iPAddress->length == 4 || g->d.iPAddress->length == 16;
            if (rc && inet_ntop(af, g->d.iPAddress->data, out, (socklen_t)cap) == NULL)
                rc = -1;
            break;
        }
        if (want == GEN_OTHERNAME) {
            /* The value when it is a string (RabbitMQ: its bytes, with a UTF8String's tag and
             * length stripped). */
            const ASN1_TYPE *v = g->d.otherName->value;
            if (v->type == V_ASN1_UTF8STRING || v->type == V_ASN1_IA5STRING ||
                v->type == V_ASN1_PRINTABLESTRING)
                s = v->value.asn1_string;
        } else {
            s = g->d.ia5; /* dNSName, rfc822Name, uniformResourceIdentifier */
        }
        if (s == NULL)
            break;
        rc = ASN1_STRING_length(s) < (int)cap ? 1 : -1;
        if (rc == 1) {
            memcpy(out, ASN1_STRING_get0_data(s), (size_t)ASN1_STRING_length(s));
            out[ASN1_STRING_length(s)] = '\0';
        }
        break;
    }
    GENERAL_NAMES_free(names);
    return rc;
}

int
tls_peer_login_name(struct ssl_st *ssl, const struct conf *conf, char *out, size_t cap, char *why,
                    size_t whylen)
{
    X509 *cert = SSL_get0_peer_certificate(ssl);
    if (cert == NULL) {
        snprintf(why, whylen, "connection peer presented no TLS (x.509) certificate");
        return -1;
    }
    if (conf->ssl_verify != CONF_VERIFY_PEER) {
        log_msg(LOG_WARNING, "TLS peer verification (authentication) is disabled, "
                             "ssl_options.verify value used: verify_none");
        snprintf(why, whylen, "TLS configuration is unsafe");
        return -1;
    }
    const X509_NAME *subj = X509_get_subject_name(cert);
    int rc;
    switch (conf->ssl_cert_login_from) {
    case CONF_CERT_LOGIN_DN:
        rc = tls_subject_dn(subj, out, cap) == 0 ? 1 : -1;
        break;
    case CONF_CERT_LOGIN_CN:
        rc = tls_subject_cns(subj, out, cap);
        break;
    default:
        rc = tls_subject_alt_name(cert, conf, out, cap);
        break;
    }
    if (rc == 1)
        return 0;
    snprintf(why, whylen, rc == 0 ? "no name found" : "the name in the certificate is too long");
    return -1;
}
