/*
 * replay.c - the main of a harness built as a plain test (no libFuzzer):
 * runs LLVMFuzzerTestOneInput on every file of tests/fuzz/corpus/NAME and
 * tests/fuzz/regress/NAME (or on the files and folders given), so the
 * seeds and every crash ever found stay fixed under the normal and the
 * sanitizer builds.  Exit 0 when all ran; a finding aborts as it would
 * under the fuzzer.
 */
#include <dirent.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fuzz.h"

#ifndef FUZZ_NAME
#error "build with -DFUZZ_NAME=\"harness\""
#endif

static int run_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "fuzz_%s: cannot open %s\n", FUZZ_NAME, path);
        return -1;
    }
    size_t cap = 4096, n = 0, r;
    uint8_t *buf = malloc(cap);
    while (buf && (r = fread(buf + n, 1, cap - n, f)) > 0)
        if ((n += r) == cap) buf = realloc(buf, cap *= 2);
    fclose(f);
    if (!buf) abort();
    /* the input in a block of exactly its size, as libFuzzer passes it,
     * so AddressSanitizer sees reads past its end */
    uint8_t *exact = malloc(n ? n : 1);
    if (!exact) abort();
    memcpy(exact, buf, n);
    free(buf);
    LLVMFuzzerTestOneInput(exact, n);
    free(exact);
    return 1;
}

/* Files of dir in name order (so runs are repeatable); -1 if dir is unreadable. */
static int run_dir(const char *dir)
{
    struct dirent **ents;
    int n = scandir(dir, &ents, NULL, alphasort), done = 0;
    if (n < 0) return -1;
    for (int i = 0; i < n; i++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", dir, ents[i]->d_name);
        struct stat sb;
        if (ents[i]->d_name[0] != '.' && stat(path, &sb) == 0 && S_ISREG(sb.st_mode) &&
            run_file(path) > 0)
            done++;
        free(ents[i]);
    }
    free(ents);
    return done;
}

int main(int argc, char **argv)
{
    char cwd[4096];
    if (!getcwd(cwd, sizeof cwd)) return 1;
    int total = 0;
    if (argc > 1) {
        for (int i = 1; i < argc; i++) {
            char path[8192];
            snprintf(path, sizeof path, "%s%s%s", argv[i][0] == '/' ? "" : cwd,
                     argv[i][0] == '/' ? "" : "/", argv[i]);
            struct stat sb;
            int n = stat(path, &sb) == 0 && S_ISDIR(sb.st_mode) ? run_dir(path) : run_file(path);
            if (n < 0) return 2;
            total += n;
        }
    } else {
        const char *sub[2] = {"corpus", "regress"};
        for (int k = 0; k < 2; k++) {
            char path[8192];
            snprintf(path, sizeof path, "%s/tests/fuzz/%s/%s", cwd, sub[k], FUZZ_NAME);
            int n = run_dir(path);
            if (n < 0 && k == 0) {
                fprintf(stderr, "fuzz_%s: no seed corpus at %s (run from the repository root)\n",
                        FUZZ_NAME, path);
                return 1;
            }
            if (n > 0) total += n;
        }
    }
    printf("fuzz_%s: %d inputs replayed, no finding\n", FUZZ_NAME, total);
    return 0;
}
