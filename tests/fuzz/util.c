/* util.c - helpers of the fuzz harnesses (see fuzz.h). */
#include "fuzz.h"

#include <dirent.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

char *fuzz_cstr(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);
    if (!s) abort();
    memcpy(s, data, size);
    s[size] = '\0';
    return s;
}

static char dir[64];

/* At exit: the folder and what the harness wrote there go. */
static void fuzz_cleanup(void)
{
    DIR *d = opendir(dir);
    if (d) {
        struct dirent *x;
        while ((x = readdir(d)))
            if (strcmp(x->d_name, ".") && strcmp(x->d_name, "..")) unlinkat(dirfd(d), x->d_name, 0);
        closedir(d);
    }
    rmdir(dir);
}

/* One private folder per process, made on first use. */
static const char *fuzz_dir(void)
{
    if (!dir[0]) {
        snprintf(dir, sizeof dir, "%s/calpa-fuzz.XXXXXX", access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp");
        if (!mkdtemp(dir)) abort();
        atexit(fuzz_cleanup);
    }
    return dir;
}

const char *fuzz_file(const char *name, const uint8_t *data, size_t size)
{
    static char path[128];
    snprintf(path, sizeof path, "%s/%s", fuzz_dir(), name);
    FILE *f = fopen(path, "wb");
    if (!f) abort();
    if (size && fwrite(data, 1, size, f) != size) abort();
    if (fclose(f) != 0) abort();
    return path;
}

FILE *fuzz_sink(void)
{
    static FILE *f;
    fuzz_dir();
    if (!f) f = fopen("/dev/null", "w");
    if (!f) abort();
    return f;
}
