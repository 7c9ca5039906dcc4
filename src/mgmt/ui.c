/* The web dashboard's static files (src/mgmt/ui/, compiled in as ui_assets.c): GET and HEAD of
 * any path outside /api on the management ports, without login as RabbitMQ serves its UI (the
 * page's scripts log in to the API with basic auth). Paths are looked up in the compiled table
 * as they arrive, never decoded nor mapped to the file system: "..", "%2e" or a NUL can only
 * miss (404). Every reply carries headers that keep the pages from being framed, sniffed or
 * made to load anything from elsewhere. */
#include "config.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "mgmt_int.h"
#include "warren/mgmt_ui.h"

/* Only our own scripts, styles and API: no inline script, no other origin, never in a frame. */
#define UI_CSP                                                                                     \
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "              \
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "                 \
    "frame-ancestors 'none'"

bool
mgmt_ui_wants(struct evhttp_request *req)
{
    enum evhttp_cmd_type cmd = evhttp_request_get_command(req);
    if (cmd != EVHTTP_REQ_GET && cmd != EVHTTP_REQ_HEAD)
        return false;
    const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
    const char *path = uri != NULL ? evhttp_uri_get_path(uri) : NULL;
    return path != NULL && !(strncmp(path, "/api", 4) == 0 && (path[4] == '/' || path[4] == '\0'));
}

/* The asset served at path ("/" is the index), or NULL. */
static const struct mgmt_ui_asset *
ui_find(const char *path)
{
    if (strcmp(path, "/") == 0)
        path = "/index.html";
    for (const struct mgmt_ui_asset *a = mgmt_ui_assets; a->path != NULL; a++)
        if (strcmp(a->path, path) == 0)
            return a;
    return NULL;
}

/* Whether an If-None-Match header (a list of quoted tags, or "*") names etag. */
static bool
ui_etag_matches(const char *header, const char *etag)
{
    if (header == NULL)
        return false;
    if (strcmp(header, "*") == 0)
        return true;
    size_t len = strlen(etag);
    for (const char *p = strstr(header, etag); p != NULL; p = strstr(p + 1, etag))
        if ((p == header || p[-1] == ' ' || p[-1] == ',' || p[-1] == '/') &&
            (p[len] == '\0' || p[len] == ',' || p[len] == ' '))
            return true;
    return false;
}

int
mgmt_ui_answer(struct evhttp_request *req, struct evbuffer *buf)
{
    struct evkeyvalq *out = evhttp_request_get_output_headers(req);
    evhttp_add_header(out, "X-Content-Type-Options", "nosniff");
    evhttp_add_header(out, "X-Frame-Options", "DENY");
    evhttp_add_header(out, "Referrer-Policy", "no-referrer");
    evhttp_add_header(out, "Content-Security-Policy", UI_CSP);
    const char *path = evhttp_uri_get_path(evhttp_request_get_evhttp_uri(req));
    const struct mgmt_ui_asset *a = ui_find(path);
    if (a == NULL) {
        static const char text[] = "Not Found\n";
        evhttp_add_header(out, "Content-Type", "text/plain; charset=utf-8");
        evhttp_add_header(out, "Cache-Control", "no-cache");
        if (evhttp_request_get_command(req) == EVHTTP_REQ_HEAD)
            evhttp_add_header(out, "Content-Length", "10");
        else
            evbuffer_add(buf, text, sizeof(text) - 1);
        return 404;
    }
    /* Revalidated on every use (no-cache) but sent again only when changed (the ETag): a new
     * broker's pages are picked up at once, an unchanged one costs a 304. */
    evhttp_add_header(out, "Cache-Control", "no-cache");
    evhttp_add_header(out, "ETag", a->etag);
    const char *inm = evhttp_find_header(evhttp_request_get_input_headers(req), "If-None-Match");
    if (ui_etag_matches(inm, a->etag))
        return 304;
    evhttp_add_header(out, "Content-Type", a->type);
    if (evhttp_request_get_command(req) == EVHTTP_REQ_HEAD) {
        /* evhttp sends no body for HEAD and then no length either: say what GET would send. */
        char len[24];
        snprintf(len, sizeof(len), "%zu", a->len);
        evhttp_add_header(out, "Content-Length", len);
    } else {
        /* The bytes are static: referenced, not copied. */
        if (evbuffer_add_reference(buf, a->data, a->len, NULL, NULL) < 0)
            return 500;
    }
    return 200;
}
