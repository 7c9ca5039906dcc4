/* Replays inputs through the fuzz target without libFuzzer, so `make check` runs every corpus
 * file and every kept crasher with the normal compiler (rabbitmq-c fuzz/input/). Arguments are
 * files or directories; with none, it reads $srcdir/REPLAY_CORPUS and $srcdir/REPLAY_CRASHERS
 * (tests/fuzz/corpus and tests/fuzz/crashers unless the build defines them; $srcdir is set by
 * automake's test harness). Exits non-zero if an input cannot be read or the corpus is empty;
 * a failing check in the target aborts. */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The directories replayed when no argument is given, under $srcdir: each target's replay
 * program names its own (the frame fuzzer's are the defaults). */
#ifndef REPLAY_CORPUS
#define REPLAY_CORPUS "tests/fuzz/corpus"
#endif
#ifndef REPLAY_CRASHERS
#define REPLAY_CRASHERS "tests/fuzz/crashers"
#endif

static int
replay_file(const char *path)
{
    FILE *fp = fopen(path, "rb");
    uint8_t *buf = NULL;
    size_t len = 0, cap = 0, n;

    if (fp == NULL) {
        fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
        return -1;
    }
    for (;;) {
        if (len == cap) {
            uint8_t *nb;
            cap = cap != 0 ? cap * 2 : 65536;
            nb = realloc(buf, cap);
            if (nb == NULL) {
                fprintf(stderr, "replay: %s: out of memory\n", path);
                free(buf);
                fclose(fp);
                return -1;
            }
            buf = nb;
        }
        n = fread(buf + len, 1, cap - len, fp);
        len += n;
        if (n == 0)
            break;
    }
    if (ferror(fp)) {
        fprintf(stderr, "replay: %s: read error\n", path);
        free(buf);
        fclose(fp);
        return -1;
    }
    fclose(fp);
    LLVMFuzzerTestOneInput(buf, len);
    free(buf);
    return 0;
}

static int
name_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Replays one file, or every regular file of a directory (sorted; README* and dotfiles are
 * skipped). Returns the number of inputs replayed, or -1. */
static int
replay_path(const char *path)
{
    struct stat st;
    struct dirent *de;
    char **names = NULL, *full;
    size_t count = 0, cap = 0;
    int done = 0;
    DIR *d;

    if (stat(path, &st) < 0) {
        fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
        return -1;
    }
    if (!S_ISDIR(st.st_mode))
        return replay_file(path) < 0 ? -1 : 1;
    if ((d = opendir(path)) == NULL) {
        fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
        return -1;
    }
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.' || strncmp(de->d_name, "README", 6) == 0)
            continue;
        if (count == cap) {
            char **nn;
            cap = cap != 0 ? cap * 2 : 64;
            nn = realloc(names, cap * sizeof *names);
            if (nn == NULL)
                goto fail;
            names = nn;
        }
        if ((names[count] = strdup(de->d_name)) == NULL)
            goto fail;
        count++;
    }
    closedir(d);
    d = NULL;
    if (count > 0)
        qsort(names, count, sizeof *names, name_cmp);
    for (size_t i = 0; i < count; i++) {
        size_t len = strlen(path) + strlen(names[i]) + 2;
        if ((full = malloc(len)) == NULL)
            goto fail;
        snprintf(full, len, "%s/%s", path, names[i]);
        if (stat(full, &st) == 0 && S_ISREG(st.st_mode)) {
            if (replay_file(full) < 0) {
                free(full);
                goto fail;
            }
            done++;
        }
        free(full);
    }
    for (size_t i = 0; i < count; i++)
        free(names[i]);
    free(names);
    return done;
fail:
    if (d != NULL)
        closedir(d);
    for (size_t i = 0; i < count; i++)
        free(names[i]);
    free(names);
    return -1;
}

int
main(int argc, char **argv)
{
    const char *srcdir = getenv("srcdir");
    char corpus[4096], crashers[4096];
    int n, total = 0;

    if (argc > 1) {
        for (int i = 1; i < argc; i++) {
            if ((n = replay_path(argv[i])) < 0)
                return 1;
            total += n;
        }
        printf("replay: %d inputs, no failures\n", total);
        return 0;
    }
    if (srcdir == NULL)
        srcdir = ".";
    snprintf(corpus, sizeof corpus, "%s/" REPLAY_CORPUS, srcdir);
    snprintf(crashers, sizeof crashers, "%s/" REPLAY_CRASHERS, srcdir);
    if ((n = replay_path(corpus)) < 0)
        return 1;
    if (n == 0) {
        fprintf(stderr, "replay: %s holds no inputs\n", corpus);
        return 1;
    }
    total = n;
    if ((n = replay_path(crashers)) < 0)
        return 1;
    printf("replay: %d corpus inputs and %d crashers, no failures\n", total, n);
    return 0;
}
