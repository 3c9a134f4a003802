/*
 * fuzz.h - what the fuzz harnesses share.  Each tests/fuzz/fuzz_NAME.c
 * defines LLVMFuzzerTestOneInput for one reader of outside input; it is
 * built twice: with libFuzzer (make fuzz, clang, build/fuzz) and, linked
 * with replay.c, as a plain test binary that replays the seed corpus and
 * every checked-in crash (tests/fuzz/{corpus,regress}/NAME) in make test.
 *
 * A harness must never write outside its temporary folder, and treats
 * every status the reader returns as fine: only crashes, sanitizer
 * reports, CHECK aborts, hangs and broken round trips are findings.
 */
#ifndef CALPA_FUZZ_H
#define CALPA_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* data as a NUL-terminated heap string (caller frees); NULs inside cut it. */
char *fuzz_cstr(const uint8_t *data, size_t size);

/* Writes data to "<private temp dir>/<name>" and returns that path (static
 * storage, valid until the next call); the folder goes at exit. */
const char *fuzz_file(const char *name, const uint8_t *data, size_t size);

/* A FILE for output nobody reads (the print paths run, nothing shows). */
FILE *fuzz_sink(void);

/* Aborts with msg when cond is false: a property a reader must keep
 * (round trips), which libFuzzer then reports as a crash. */
#define FUZZ_ASSERT(cond, msg)                                                         \
    do {                                                                               \
        if (!(cond)) {                                                                 \
            fprintf(stderr, "fuzz: %s:%d: %s (%s)\n", __FILE__, __LINE__, #cond, msg); \
            abort();                                                                   \
        }                                                                              \
    } while (0)

#endif
