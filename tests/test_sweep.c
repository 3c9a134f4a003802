/* test_sweep.c - suites end to end on a tiny GPT: the TSV has the documented
 * columns, an impossible case becomes a row and the sweep goes on, --resume
 * reuses finished rows, -j1, -j2 and two "ranks" give the same file (but for
 * the wall-clock column), bad suite files name the file, case and key, and
 * the plot writes a PNG and an SVG (checked by their headers, not pixels). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "jsonio.h"
#include "plot.h"
#include "sweep.h"

#define TINY "gpt:hidden=128,layers=2,heads=4,seq=64,vocab=512"

static const char SUITE[] =
    "{\"name\": \"tiny\", \"cluster\": \"p3.16xlarge\", \"methods\": [\"alpa\", \"data\"],\n"
    " \"options\": {\"recompute\": \"full\", \"micro_batches\": 2},\n"
    " \"plot\": {\"type\": \"bars\", \"y\": \"pflops\", \"linear\": \"alpa\"},\n"
    " \"cases\": [\n"
    "  {\"model\": \"" TINY "\", \"devices\": 1, \"global_batch\": 8},\n"
    "  {\"model\": \"" TINY "\", \"devices\": 2, \"global_batch\": 8,\n"
    "   \"method_options\": {\"data\": {\"micro_batches\": 1}}},\n"
    "  {\"name\": \"too-big\", \"model\": \"gpt-39b\", \"devices\": 4, \"global_batch\": 8,\n"
    "   \"methods\": [\"data\"]}]}\n";

typedef struct {
    char dir[64];
    char suite[128];
} Tmp;

static void tmp_make(Tmp *t, const char *text)
{
    snprintf(t->dir, sizeof t->dir, "/tmp/calpa-sweep-XXXXXX");
    assert_non_null(mkdtemp(t->dir));
    snprintf(t->suite, sizeof t->suite, "%s/suite.json", t->dir);
    Err e;
    assert_int_equal(write_text_atomic(t->suite, text, &e), CALPA_OK);
}

static void tmp_free(Tmp *t)
{
    char cmd[160];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", t->dir);
    assert_int_equal(system(cmd), 0);
}

/* Writes text as a suite file in a fresh directory and loads it. */
static void suite_tmp(Tmp *t, const char *text, Suite *s)
{
    tmp_make(t, text);
    Err e;
    if (suite_load(t->suite, s, &e) != CALPA_OK) fail_msg("%s", e.msg);
}

static char *slurp(const char *path)
{
    char *s = NULL;
    size_t n;
    Err e;
    assert_int_equal(file_read_all(path, &s, &n, &e), CALPA_OK);
    return s;
}

/* The file without its last column (plan_time_s, wall clock). */
static char *strip_last(const char *text)
{
    char *o = malloc(strlen(text) + 1), *w = o;
    const char *line = text;
    while (*line) {
        const char *nl = strchr(line, '\n');
        size_t len = nl ? (size_t)(nl - line) : strlen(line);
        const char *tab = line + len;
        while (tab > line && *tab != '\t') tab--;
        memcpy(w, line, (size_t)(tab - line));
        w += tab - line;
        *w++ = '\n';
        line += len + (nl ? 1 : 0);
    }
    *w = 0;
    return o;
}

static CalpaStatus run(const Suite *s, const char *out, int jobs, int resume, int rank, int size,
                       int *skipped, int *bad)
{
    SweepOptions o = {.out = out, .jobs = jobs, .resume = resume, .rank = rank, .size = size};
    Err e;
    CalpaStatus st = sweep_run(s, &o, skipped, bad, &e);
    if (st) fprintf(stderr, "%s\n", e.msg);
    return st;
}

static void test_suite_load(void **state)
{
    (void)state;
    Tmp t;
    Suite s;
    suite_tmp(&t, SUITE, &s);
    assert_string_equal(s.name, "tiny");
    assert_int_equal(s.n_cases, 3);
    assert_int_equal(suite_njobs(&s), 5);
    assert_int_equal(s.cases[0].devices, 1);
    assert_int_equal(s.cases[1].devices, 2);
    assert_string_equal(s.cases[1].cluster, "p3.16xlarge:devices_per_node=2");
    assert_string_equal(s.cases[0].name, TINY "@1");
    assert_string_equal(s.cases[2].methods[0], "data");
    int ci, mi;
    suite_job(&s, 3, &ci, &mi);
    assert_int_equal(ci, 1);
    assert_int_equal(mi, 1);
    assert_int_equal(sweep_ncols(), 18);
    assert_int_equal(sweep_col("suite"), 0);
    assert_int_equal(sweep_col("plan_time_s"), 17);
    suite_free(&s);
    tmp_free(&t);
}

static void test_end_to_end_resume_parallel(void **state)
{
    (void)state;
    Tmp t;
    Suite s;
    suite_tmp(&t, SUITE, &s);
    char out1[160], out2[160], out3[160], part[180];
    snprintf(out1, sizeof out1, "%s/j1.tsv", t.dir);
    snprintf(out2, sizeof out2, "%s/j2.tsv", t.dir);
    snprintf(out3, sizeof out3, "%s/ranks.tsv", t.dir);
    int skipped, bad;
    assert_int_equal(run(&s, out1, 0, 0, 0, 1, &skipped, &bad), CALPA_OK); /* in process */
    assert_int_equal(skipped, 0);
    assert_int_equal(bad, 1);
    Tsv tsv;
    Err e;
    assert_int_equal(tsv_read(out1, &tsv, &e), CALPA_OK);
    assert_int_equal(tsv.ncols, 18);
    assert_int_equal(tsv.nrows, 5);
    const char *need[] = {"suite", "case", "method", "devices", "model", "params",
                          "global_batch", "micro_batches", "stages", "iteration_time_s",
                          "samples_per_s", "tflops_per_device", "pflops", "peak_memory_bytes",
                          "fits_memory", "plan_time_s"};
    for (size_t i = 0; i < sizeof need / sizeof *need; i++) assert_true(tsv_col(&tsv, need[i]) >= 0);
    int cst = tsv_col(&tsv, "status"), cfit = tsv_col(&tsv, "fits_memory"),
        cit = tsv_col(&tsv, "iteration_time_s");
    for (int r = 0; r < 4; r++) {
        assert_string_equal(tsv.rows[r][cst], "ok");
        assert_string_equal(tsv.rows[r][cfit], "1");
        assert_true(atof(tsv.rows[r][cit]) > 0);
    }
    /* the impossible case: recorded, not fitting, the sweep went on */
    assert_string_equal(tsv.rows[4][1], "too-big");
    assert_string_not_equal(tsv.rows[4][cst], "ok");
    assert_string_equal(tsv.rows[4][cfit], "0");
    assert_string_equal(tsv.rows[3][tsv_col(&tsv, "micro_batches")], "1");
    tsv_free(&tsv);
    assert_int_equal(access(out1, F_OK), 0);
    snprintf(part, sizeof part, "%s.partial", out1);
    assert_int_equal(access(part, F_OK), -1);

    /* -j2 gives the same file but for the wall-clock column */
    assert_int_equal(run(&s, out2, 2, 0, 0, 1, &skipped, &bad), CALPA_OK);
    char *a = slurp(out1), *b = slurp(out2);
    char *sa = strip_last(a), *sb = strip_last(b);
    assert_string_equal(sa, sb);
    free(b);
    free(sb);

    /* two ranks: rank 1 first (streams and marks done), then rank 0 merges */
    assert_int_equal(run(&s, out3, 1, 0, 1, 2, &skipped, &bad), CALPA_OK);
    assert_int_equal(access(out3, F_OK), -1);
    assert_int_equal(run(&s, out3, 1, 0, 0, 2, &skipped, &bad), CALPA_OK);
    b = slurp(out3);
    sb = strip_last(b);
    assert_string_equal(sa, sb);
    free(b);
    free(sb);

    /* an interrupted run: the stream holds the header, 2 rows and half a line */
    char *nl = a;
    for (int k = 0; k < 3; k++) nl = strchr(nl, '\n') + 1;
    FILE *f = fopen(part, "w");
    assert_non_null(f);
    fwrite(a, 1, (size_t)(nl - a), f);
    fputs("tiny\tgpt", f);
    fclose(f);
    unlink(out1);
    assert_int_equal(run(&s, out1, 1, 1, 0, 1, &skipped, &bad), CALPA_OK);
    assert_int_equal(skipped, 2);
    b = slurp(out1);
    sb = strip_last(b);
    assert_string_equal(sa, sb);
    /* the reused rows are kept byte for byte, wall clock included */
    assert_memory_equal(a, b, (size_t)(nl - a));
    free(b);
    free(sb);
    /* resuming a finished file plans nothing */
    assert_int_equal(run(&s, out1, 1, 1, 0, 1, &skipped, &bad), CALPA_OK);
    assert_int_equal(skipped, 5);
    free(a);
    free(sa);

    /* the plot: a PNG and an SVG, with a reference overlay */
    if (plot_have_gnuplot()) {
        char ref[160], png[160], svg[160];
        snprintf(ref, sizeof ref, "%s/ref.tsv", t.dir);
        snprintf(png, sizeof png, "%s/fig.png", t.dir);
        snprintf(svg, sizeof svg, "%s/fig.svg", t.dir);
        assert_int_equal(write_text_atomic(ref, "method\tdevices\tpflops\nalpa\t1\t0.001\n"
                                           "alpa\t2\t0.002", &e), CALPA_OK);
        assert_int_equal(sweep_plot(&s, out1, ref, png, &e), CALPA_OK);
        assert_int_equal(sweep_plot(&s, out1, NULL, svg, &e), CALPA_OK);
        char *p = slurp(png);
        assert_memory_equal(p, "\x89PNG\r\n\x1a\n", 8);
        free(p);
        p = slurp(svg);
        assert_non_null(strstr(p, "<svg"));
        assert_non_null(strstr(p, "</svg>"));
        free(p);
        /* a reference without the plot's columns */
        assert_int_equal(write_text_atomic(ref, "method\tgpus\tpflops\nalpa\t1\t1", &e), CALPA_OK);
        assert_int_equal(sweep_plot(&s, out1, ref, png, &e), CALPA_EINPUT);
        assert_non_null(strstr(e.msg, "ref.tsv"));
        assert_int_equal(sweep_plot(&s, out1, NULL, "x.pdf", &e), CALPA_EINPUT);
    }
    suite_free(&s);
    tmp_free(&t);
}

/* Each bad suite is rejected with a message naming the file and where. */
static void test_bad_suites(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        const char *needle;
    } BAD[] = {
        {"{\"cases\": [{\"model\": \"gpt-350m\", \"methods\": [\"alpa\"], \"modell\": 1}]}",
         "cases[0].modell"},
        {"{\"methods\": [\"alpa\"], \"cases\": [{\"model\": \"gpt-350m\"}, {\"devices\": 2}]}",
         "cases[1].model"},
        {"{\"methods\": [\"alpa\"], \"cases\": [{\"model\": \"gpt-350m\"}, "
         "{\"name\": \"b\", \"model\": \"gpt-350m\", \"methods\": [\"nope\"]}]}", "cases[1].methods[0]"},
        {"{\"methods\": [\"alpa\"], \"cases\": [{\"model\": \"gpt-nope\"}]}", "cases[0].model"},
        {"{\"methods\": [\"alpa\"], \"cases\": [{\"model\": \"gpt-350m\", \"devices\": 12}]}",
         "cases[0].devices"},
        {"{\"methods\": [\"alpa\"], \"cases\": [{\"model\": \"gpt-350m\", "
         "\"options\": {\"recompute\": \"some\"}}]}", "cases[0].options.recompute"},
        {"{\"methods\": [\"alpa\"], \"cases\": [{\"model\": \"gpt-350m\", "
         "\"options\": {\"micro_batches\": 1.5}}]}", "micro_batches"},
        {"{\"methods\": [\"alpa\"], \"options\": {\"tpp\": 2}, \"cases\": [{\"model\": \"gpt-350m\"}]}",
         "tpp"},
        {"{\"methods\": [\"alpa\"], \"cases\": []}", "cases"},
        {"{\"methods\": [\"alpa\"], \"options\": {\"prefer_reduce_scatter\": 1}, "
         "\"cases\": [{\"model\": \"gpt-350m\"}]}", "prefer_reduce_scatter"},
        {"{\"methods\": [\"alpa\"], \"cases\": [{\"model\": \"gpt-350m\"}, {\"model\": \"gpt-350m\"}]}",
         "cases[1].name"},
        {"{\"methods\": [\"alpa\"], \"plot\": {\"y\": \"speed\"}, \"cases\": [{\"model\": \"gpt-350m\"}]}",
         "plot.y"},
        {"{\"cases\": [{\"model\": \"gpt-350m\"}]}", "cases[0].methods"},
        {"{\"methods\": [\"alpa\"], \"cases\": [{\"model\": \"gpt-350m\"}]", "line"},
    };
    for (size_t i = 0; i < sizeof BAD / sizeof *BAD; i++) {
        Tmp t;
        tmp_make(&t, BAD[i].text);
        Suite s;
        Err e = {{0}};
        assert_int_equal(suite_load(t.suite, &s, &e), CALPA_EINPUT);
        if (!strstr(e.msg, BAD[i].needle) || !strstr(e.msg, t.suite))
            fail_msg("bad suite %zu: message '%s' lacks '%s' or the file", i, e.msg, BAD[i].needle);
        tmp_free(&t);
    }
    char buf[256];
    Err e;
    assert_int_equal(suite_find("no-such-suite", NULL, buf, sizeof buf, &e), CALPA_EINPUT);
    assert_non_null(strstr(e.msg, "no-such-suite"));
}

/* A suite option reaches the planner: prefer_reduce_scatter shards the
 * update of a data-parallel ILP plan, so its peak memory drops. */
static double peak_of(const char *opt)
{
    char text[512];
    snprintf(text, sizeof text,
             "{\"methods\": [\"intra-only\"], \"options\": {\"micro_batches\": 1, "
             "\"prefer_reduce_scatter\": %s}, \"cases\": [{\"model\": \"" TINY
             "\", \"devices\": 2, \"global_batch\": 8}]}", opt);
    Tmp t;
    Suite s;
    suite_tmp(&t, text, &s);
    char *row = NULL;
    sweep_run_job(&s, 0, &row);
    assert_non_null(row);
    const char *f = row;
    for (int i = 0; i < sweep_col("peak_memory_bytes"); i++) f = strchr(f, '\t') + 1;
    double v = atof(f);
    free(row);
    suite_free(&s);
    tmp_free(&t);
    return v;
}

static void test_option_reaches_planner(void **state)
{
    (void)state;
    double off = peak_of("false"), on = peak_of("true");
    if (!(on > 0 && on < off)) fail_msg("peak memory with reduce-scatter %g, without %g", on, off);
}

/* A worker killed mid-job (as the OOM killer does) becomes an error row
 * naming the signal; the sweep goes on with a fresh worker, -j 1 included. */
static void test_killed_worker_is_a_row(void **state)
{
    (void)state;
    Tmp t;
    Suite s;
    suite_tmp(&t, SUITE, &s);
    char out[128];
    snprintf(out, sizeof out, "%s/killed.tsv", t.dir);
    setenv("CALPA_SWEEP_KILL", TINY "@1 alpa", 1);
    int skipped, bad;
    CalpaStatus st = run(&s, out, 1, 0, 0, 1, &skipped, &bad);
    unsetenv("CALPA_SWEEP_KILL");
    assert_int_equal(st, CALPA_OK);
    assert_int_equal(bad, 2); /* the killed job and the impossible case */
    char *text = slurp(out);
    assert_non_null(strstr(text, "error\tthe worker process died (signal 9)"));
    int rows = 0;
    for (const char *p = text; (p = strchr(p, '\n')); p++) rows++;
    assert_int_equal(rows, 1 + suite_njobs(&s));
    free(text);
    suite_free(&s);
    tmp_free(&t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_suite_load),
        cmocka_unit_test(test_end_to_end_resume_parallel),
        cmocka_unit_test(test_bad_suites),
        cmocka_unit_test(test_option_reaches_planner),
        cmocka_unit_test(test_killed_worker_is_a_row),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
