/* The web dashboard's files as compiled into the binary: src/mgmt/ui_assets.c is generated at
 * build time by src/mgmt/gen_ui_assets.sh from src/mgmt/ui/ and served by src/mgmt/ui.c. */
#ifndef WARREN_MGMT_UI_H
#define WARREN_MGMT_UI_H

#include <stddef.h>

struct mgmt_ui_asset {
    const char *path; /* as served: "/index.html", "/js/app.js" */
    const char *type; /* Content-Type */
    const char *etag; /* quoted: "\"crc-size\"" */
    const unsigned char *data;
    size_t len;
};

/* Every file, ended by an entry whose path is NULL. */
extern const struct mgmt_ui_asset mgmt_ui_assets[];

#endif
