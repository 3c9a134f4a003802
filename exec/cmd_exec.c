/*
 * cmd_exec.c - `calpa exec PLAN`: runs a plan file for real, one MPI rank
 * per device (a 1-device plan runs without mpirun), on the CPU or CUDA backend.
 * The plan is lowered exactly as `calpa sim` lowers it (unfolded: every
 * device its own program) and exec/runtime.c interprets the programs.
 * --check repeats the steps unsharded on rank 0 and compares the loss and
 * every updated weight; --json / --timeline report the measured times.
 *
 * Every rank reads and validates the plan itself, so bad input (missing
 * file, other version, device count != world size) exits 2 on every rank
 * before any communication; a failure mid-run aborts the whole job
 * (MPI_Abort) after printing the failing rank's message.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if CALPA_HAVE_MPI
#include <mpi.h>
#endif

#include "cli.h"
#include "commands.h"
#include "cuda.h"
#include "jsonio.h"
#include "runtime.h"
#include "simplan.h"
#include "trace.h"

static const char USAGE[] =
    "usage: calpa exec PLAN [--backend cpu|cuda] [--steps K] [--warmup W] [--check]\n"
    "                  [--seed S] [--lr X] [--timeline out.json] [--json]\n"
    "\n"
    "Runs plan file PLAN (from 'calpa plan -o') for real: one process per device,\n"
    "launched with 'mpirun -np N bin/calpa exec PLAN' (N = the plan's devices; a\n"
    "1-device plan runs without mpirun). Every rank holds only its shards, runs\n"
    "its stage's operators, the collectives and the sends the lowering placed\n"
    "(the same programs 'calpa sim' times), then the optimizer. float32.\n"
    "\n"
    "  --backend B       cpu: OpenBLAS + MPI (default); cuda: one GPU per rank,\n"
    "                    cuBLAS + CUDA kernels + NCCL (exit 1 if not built or no GPU)\n"
    "  --steps K         timed training steps (default 3)\n"
    "  --warmup W        untimed steps first (default 1)\n"
    "  --check           also run the steps unsharded on rank 0 and compare the\n"
    "                    loss and every updated weight, and every rank's copy of\n"
    "                    it (relative error <= 1e-4; on a GPU, a bf16 model's\n"
    "                    GEMMs in bf16 math: 5e-2, fp16: 1e-2);\n"
    "                    exit 1 on any failure\n"
    "  --seed S          weights and data seed (default 1)\n"
    "  --lr X            learning rate (default 0.05)\n"
    "  --timeline F      measured Chrome trace (the simulator's layout; task ids join)\n"
    "  --json            one JSON object (rank 0)\n"
    "\n"
    "A NaN or Inf in a gradient or the loss stops the run (exit 1) naming the\n"
    "step and the tensor; a rank that fails aborts the whole job (MPI_Abort).\n"
    "Tests inject faults with CALPA_FAULT=fail|kill|nan|inf[:rank=R,step=S,\n"
    "task=T,tensor=NAME] (exec/runtime.h).\n"
    "\n"
    "Exit codes: 0 ran (and --check passed), 1 the run or the check failed,\n"
    "2 bad usage or input (plan missing or of another version, device count\n"
    "different from the MPI world size).\n";

#define CHECK_TOL 1e-4

/* The check's tolerance: float32 math 1e-4; a backend running a half-
 * precision model's GEMMs in its precision (the CUDA backend; the CPU keeps
 * float32) rounds every GEMM input to 8 (bf16) or 11 (fp16) significant bits. */
static double check_tol(const Backend *be, const Graph *g)
{
    int math = exec_gemm_math(g);
    if (strcmp(be->name, "cuda") || math == GEMM_MATH_F32) return CHECK_TOL;
    return math == GEMM_MATH_BF16 ? 5e-2 : 1e-2;
}
#define ADAM_FLOOR 1e-2 /* of the largest first moment: see the check */

typedef struct {
    const char *plan, *timeline, *corrupt, *backend;
    int steps, warmup, check, json, fail_rank;
    uint64_t seed;
    double lr;
} ExecArgs;

static double max_abs(const float *a, int64_t n)
{
    double m = 0;
    for (int64_t i = 0; i < n; i++) m = fmax(m, fabs(a[i]));
    return m;
}

/* The largest difference relative to b's largest element, or to scale_min when
 * that is smaller. */
static double rel_err(const float *a, const float *b, int64_t n, double scale_min)
{
    double d = 0;
    for (int64_t i = 0; i < n; i++) d = fmax(d, fabs((double)a[i] - b[i]));
    return d / fmax(max_abs(b, n), scale_min);
}

static const char *check_str(int check) { return check < 0 ? "skipped" : check ? "passed" : "failed"; }

/* Rank 0 writes the measured timeline: every rank's tasks of the last timed
 * step (start and duration, so slices on one stream never overlap). */
static CalpaStatus write_timeline(ExecCtx *c, const Lowered *l, const char *path, Err *e)
{
    const Backend *be = c->be;
    Trace tr;
    if (c->rank == 0) trace_init(&tr);
    for (int r = 0; r < c->nranks; r++) {
        const Program *p = NULL;
        for (int i = 0; i < l->n_prog; i++)
            if (l->prog[i].device == r) p = &l->prog[i];
        int n = p->n_task;
        float *buf = xcalloc((size_t)(2 * n + 1), sizeof(float));
        if (r == c->rank)
            for (int i = 0; i < n; i++) {
                buf[2 * i] = (float)c->task_start_s[i];
                buf[2 * i + 1] = (float)c->task_last_s[i];
            }
        if (r != 0 && c->rank == r) be->wait(be->send(buf, 2 * n, 0, 29999));
        if (r != 0 && c->rank == 0) be->recv(buf, 2 * n, r, 29999);
        if (c->rank == 0) {
            char name[64];
            snprintf(name, sizeof name, "device %d (stage %d)", r, p->stage);
            trace_process(&tr, r, name);
            for (int s = 0; s < STREAM_COUNT; s++) trace_thread(&tr, r, s, stream_name(s));
            for (int i = 0; i < n; i++) {
                const Task *tk = &p->task[i];
                /* names as the simulator's timeline (sim/report.c) writes them */
                char nm[128];
                const char *kind;
                if (tk->kind == TASK_COMPUTE) {
                    snprintf(nm, sizeof nm, "%s", tk->op >= 0 ? c->g->op[tk->op].name : "-");
                    kind = tk->op >= 0 ? op_type_name(c->g->op[tk->op].type) : "compute";
                } else if (tk->kind == TASK_COLL) {
                    snprintf(nm, sizeof nm, "%s %s", coll_kind_name(tk->coll),
                             tk->tensor >= 0 ? c->g->t[tk->tensor].name : "grads");
                    kind = coll_kind_name(tk->coll);
                } else {
                    snprintf(nm, sizeof nm, "%s %s%d", tk->kind == TASK_SEND ? "send" : "recv",
                             tk->tensor >= 0 ? c->g->t[tk->tensor].name : "mb", tk->mb);
                    kind = tk->kind == TASK_SEND ? "send" : "recv";
                }
                const char *cat = tk->kind == TASK_COMPUTE ? "compute" : comm_kind_name(tk->comm);
                cJSON *args = cJSON_CreateObject();
                cJSON_AddStringToObject(args, "kind", kind);
                if (tk->mb >= 0) cJSON_AddNumberToObject(args, "mb", tk->mb);
                if (tk->kind != TASK_COMPUTE) cJSON_AddNumberToObject(args, "bytes", tk->bytes);
                trace_slice(&tr, r, tk->stream, nm, cat, (int64_t)(buf[2 * i] * 1e12),
                            (int64_t)(buf[2 * i + 1] * 1e12), tk->id, args);
            }
        }
        free(buf);
    }
    CalpaStatus st = CALPA_OK;
    if (c->rank == 0) {
        st = trace_write(&tr, path, e);
        trace_free(&tr);
    }
    return st;
}

/* Per operator kind / collective kind seconds per step on this rank, summed over its tasks. */
static cJSON *times_json(const ExecCtx *c)
{
    double op_s[OP_COUNT] = {0}, coll_s[COLL_COUNT] = {0}, p2p_s = 0;
    int ts = c->timed_steps ? c->timed_steps : 1;
    for (int i = 0; i < c->prog->n_task; i++) {
        const Task *tk = &c->prog->task[i];
        double s = c->task_s[i] / ts;
        if (tk->kind == TASK_COMPUTE && tk->op >= 0) op_s[c->g->op[tk->op].type] += s;
        else if (tk->kind == TASK_COLL) coll_s[tk->coll] += s;
        else p2p_s += s;
    }
    cJSON *j = cJSON_CreateObject(), *o = cJSON_AddObjectToObject(j, "operators");
    for (int k = 0; k < OP_COUNT; k++)
        if (op_s[k] > 0) cJSON_AddNumberToObject(o, op_type_name(k), op_s[k]);
    cJSON *cc = cJSON_AddObjectToObject(j, "collectives");
    for (int k = 0; k < COLL_COUNT; k++)
        if (coll_s[k] > 0) cJSON_AddNumberToObject(cc, coll_kind_name(k), coll_s[k]);
    cJSON_AddNumberToObject(j, "send_recv", p2p_s);
    return j;
}

static int run(const ExecArgs *a, const Backend *be)
{
    int rank, size;
    be->world(&rank, &size);
    Err e = {{0}};
    Plan plan;
    CalpaStatus st = plan_read(a->plan, &plan, &e);
    if (st) return cli_err(st, &e);
    SimPlan sp;
    memset(&sp, 0, sizeof sp);
    Lowered l;
    memset(&l, 0, sizeof l);
    ExecCtx c;
    memset(&c, 0, sizeof c);
    int rc = 0;
    if ((st = simplan_from_plan(&plan, a->plan, &sp, &e)) || (st = simplan_lower(&sp, 0, &l, &e)) ||
        (st = exec_ctx_init(&c, be, &sp.g, &l, sp.spec.zero, 0, a->seed, (float)a->lr, &e))) {
        rc = cli_err(st, &e);
        goto out;
    }
    /* the fault-injection hook of the tests (runtime.h) */
    const char *fault = getenv("CALPA_FAULT");
    if (fault && *fault && (st = exec_fault_parse(fault, &c.fault, &e))) {
        rc = cli_err(st, &e);
        goto out;
    }
    if (a->corrupt && rank == size - 1 && !exec_corrupt(&c, a->corrupt, 1.0f)) {
        rc = cli_fail(2, "--corrupt: rank %d holds no tensor named '%s'", rank, a->corrupt);
        be->abort(2);
        goto out;
    }
    int total = a->warmup + a->steps;
    double *loss = xcalloc((size_t)total + 1, sizeof(double)), iter_s = 0;
    /* Adam turns any nonzero gradient into a step of about the learning
     * rate, so a gradient that vanishes in exact arithmetic (noise whose
     * sign depends on the summation order) moves its weight differently in
     * the sharded and the unsharded run, and the runs drift apart step by
     * step.  Under Adam --check therefore compares each weight's first
     * moment after the first step, (1 - beta1) times its gradient, with the
     * reference's, and the weights at the end for replica agreement only.
     * mom[w]: weight w's moment tensor + 1; snap[w]: its gathered value. */
    int *mom = xcalloc((size_t)sp.g.n_t + 1, sizeof(int)), adam = 0;
    float **snap = xcalloc((size_t)sp.g.n_t + 1, sizeof(float *));
    double *snap_rep = xcalloc((size_t)sp.g.n_t + 1, sizeof(double));
    for (int o = 0; o < sp.g.n_op; o++)
        if (sp.g.op[o].type == OP_ADAM) mom[sp.g.op[o].in[0]] = sp.g.op[o].in[2] + 1, adam = 1;
    for (int s = 0; s < total; s++) {
        if (a->fail_rank == rank && s == total / 2) {
            fprintf(stderr, "calpa: rank %d: failing on purpose (--fail-rank) at step %d\n", rank, s);
            be->abort(1);
            rc = 1;
            break;
        }
        be->barrier();
        double t0 = be->wtime();
        st = exec_step(&c, s >= a->warmup, &loss[s], &e);
        if (st) {
            fprintf(stderr, "calpa: rank %d: %s\n", rank, e.msg);
            be->abort(st);
            rc = st;
            break;
        }
        be->barrier();
        if (s >= a->warmup) iter_s += be->wtime() - t0;
        if (s == 0 && a->check && adam) /* outside the measured time */
            for (int t = 0; t < sp.g.n_t; t++)
                if (mom[t]) exec_gather_weight(&c, mom[t] - 1, &snap[t], &snap_rep[t]);
    }
    if (rc) {
        free(loss);
        for (int t = 0; t < sp.g.n_t; t++) free(snap[t]);
        free(snap), free(snap_rep), free(mom);
        goto out;
    }
    iter_s /= a->steps > 0 ? a->steps : 1;
    /* --check: the weights back on rank 0, against the unsharded reference */
    int check = -1;
    cJSON *checks = cJSON_CreateArray();
    if (a->check) {
        ExecCtx ref;
        memset(&ref, 0, sizeof ref);
        double *rloss = xcalloc((size_t)total + 1, sizeof(double));
        float **ref_snap = xcalloc((size_t)sp.g.n_t + 1, sizeof(float *));
        if (rank == 0) {
            /* the reference always runs on the CPU: a GPU run is checked against it */
            st = exec_ctx_init(&ref, backend_cpu(), &sp.g, NULL, 0, l.micro, a->seed, (float)a->lr, &e);
            for (int s = 0; s < total && !st; s++) {
                st = exec_step(&ref, 0, &rloss[s], &e);
                for (int t = 0; s == 0 && !st && t < sp.g.n_t; t++) /* Adam: its first moments now */
                    if (mom[t]) {
                        int64_t n = tensor_numel(&sp.g.t[t]);
                        ref_snap[t] = xmalloc(sizeof(float) * (size_t)(n + 1));
                        memcpy(ref_snap[t], ref.pers[mom[t] - 1].p, sizeof(float) * (size_t)n);
                    }
            }
            if (st) {
                fprintf(stderr, "calpa: reference run: %s\n", e.msg);
                be->abort(1);
            }
        }
        check = 1;
        int ls = adam ? 0 : total - 1; /* the step whose loss is compared */
        double tol = check_tol(be, &sp.g);
        double le = fabs(loss[ls] - rloss[ls]) / fmax(fabs(rloss[ls]), 1e-12);
        if (rank == 0) {
            int ok = le <= tol;
            check &= ok;
            if (!a->json)
                printf("check  %-28s rel err %.2e  %s (loss %.6f vs %.6f unsharded%s)\n", "loss", le,
                       ok ? "pass" : "FAIL", loss[ls], rloss[ls], adam ? ", first step" : "");
            cJSON *o = cJSON_CreateObject();
            cJSON_AddStringToObject(o, "tensor", "loss");
            cJSON_AddNumberToObject(o, "rel_err", le);
            cJSON_AddBoolToObject(o, "passed", ok);
            cJSON_AddItemToArray(checks, o);
        }
        double mmax = 0; /* the largest first moment: the floor of each one's scale */
        for (int t = 0; rank == 0 && t < sp.g.n_t; t++)
            if (ref_snap[t]) mmax = fmax(mmax, max_abs(ref_snap[t], tensor_numel(&sp.g.t[t])));
        for (int t = 0; t < sp.g.n_t; t++) {
            const Tensor *T = &sp.g.t[t];
            if (T->kind != TK_WEIGHT || T->alias >= 0) continue;
            float *full = NULL;
            double rep = 0;
            exec_gather_weight(&c, t, &full, &rep);
            if (rank == 0) {
                int64_t n = tensor_numel(T);
                double r = rep;
                if (!mom[t]) r = fmax(r, rel_err(full, ref.pers[t].p, n, 1e-12));
                else if (snap[t] && ref_snap[t])
                    r = fmax(r, fmax(snap_rep[t], rel_err(snap[t], ref_snap[t], n,
                                                          fmax(ADAM_FLOOR * mmax, 1e-30))));
                int ok = r <= tol;
                check &= ok;
                if (!a->json)
                    printf("check  %-28s rel err %.2e  %s%s\n", T->name, r, ok ? "pass" : "FAIL",
                           mom[t] ? " (Adam: first moment after step 1)" : "");
                cJSON *o = cJSON_CreateObject();
                cJSON_AddStringToObject(o, "tensor", T->name);
                if (mom[t]) cJSON_AddStringToObject(o, "compared", "first_moment_step1");
                cJSON_AddNumberToObject(o, "rel_err", r);
                cJSON_AddBoolToObject(o, "passed", ok);
                cJSON_AddItemToArray(checks, o);
            }
            free(full);
        }
        for (int t = 0; t < sp.g.n_t; t++) free(ref_snap[t]);
        free(ref_snap);
        if (rank == 0) exec_ctx_free(&ref);
        free(rloss);
        float f = (float)check; /* rank 0's verdict to every rank */
        if (be->comm_world()) {
            if (rank != 0) f = 0;
            be->all_reduce(&f, 1, be->comm_world());
        }
        check = f > 0.5f;
    }
    /* peak memory: the largest over ranks */
    float *peaks = xcalloc((size_t)size, sizeof(float)), mine = (float)c.peak_bytes;
    be->all_gather(&mine, peaks, 1, be->comm_world());
    double peak = 0;
    for (int r = 0; r < size; r++) peak = fmax(peak, peaks[r]);
    free(peaks);
    if (a->timeline && (st = write_timeline(&c, &l, a->timeline, &e))) rc = cli_err(st, &e);
    if (rank == 0 && !rc) {
        if (a->json) {
            cJSON *j = cJSON_CreateObject();
            cJSON_AddStringToObject(j, "plan", a->plan);
            cJSON_AddStringToObject(j, "backend", be->name);
            if (a->timeline) cJSON_AddStringToObject(j, "timeline", a->timeline); /* calibrate reads it */
            cJSON_AddNumberToObject(j, "ranks", size);
            cJSON_AddNumberToObject(j, "steps", a->steps);
            cJSON_AddNumberToObject(j, "warmup", a->warmup);
            cJSON_AddNumberToObject(j, "loss", loss[total - 1]);
            cJSON_AddNumberToObject(j, "iteration_time_s", iter_s);
            cJSON_AddNumberToObject(j, "samples_per_s", sp.samples_per_iteration / iter_s);
            cJSON_AddNumberToObject(j, "peak_memory_bytes", peak);
            cJSON_AddStringToObject(j, "check", check_str(check));
            if (a->check) cJSON_AddNumberToObject(j, "check_tolerance", check_tol(be, &sp.g));
            cJSON_AddItemToObject(j, "checks", checks);
            checks = NULL;
            cJSON_AddItemToObject(j, "rank0_times_s", times_json(&c));
            json_print(stdout, j);
            cJSON_Delete(j);
        } else {
            char b1[32], b2[32];
            printf("exec           %s on %d rank%s (%s backend), %d steps after %d warm-up\n", a->plan,
                   size, size > 1 ? "s" : "", be->name, a->steps, a->warmup);
            printf("loss           %.6f (last step)\n", loss[total - 1]);
            printf("iteration      %s, %.1f samples/s\n", fmt_time(iter_s, b1, sizeof b1),
                   sp.samples_per_iteration / iter_s);
            printf("peak memory    %s (largest rank)\n", fmt_bytes(peak, b2, sizeof b2));
            printf("check          %s\n", check_str(check));
        }
    }
    cJSON_Delete(checks);
    free(loss);
    for (int t = 0; t < sp.g.n_t; t++) free(snap[t]);
    free(snap), free(snap_rep), free(mom);
    if (check == 0) rc = 1;
out:
    exec_ctx_free(&c);
    lower_free(&l);
    simplan_free(&sp);
    plan_free(&plan);
    return rc;
}

int cmd_exec(int argc, char **argv)
{
    static const struct option OPTS[] = {
        {"backend", required_argument, NULL, 'b'}, {"steps", required_argument, NULL, 's'},
        {"warmup", required_argument, NULL, 'w'},  {"check", no_argument, NULL, 'c'},
        {"seed", required_argument, NULL, 'S'},    {"lr", required_argument, NULL, 'l'},
        {"timeline", required_argument, NULL, 't'}, {"json", no_argument, NULL, 'j'},
        {"corrupt", required_argument, NULL, 'X'}, {"fail-rank", required_argument, NULL, 'F'},
        {"help", no_argument, NULL, 'h'},          {NULL, 0, NULL, 0}};
    ExecArgs a = {.steps = 3, .warmup = 1, .seed = 1, .lr = 0.05, .fail_rank = -1};
    int64_t v;
    int ch;
    cli_reset_getopt();
    while ((ch = getopt_long(argc, argv, "h", OPTS, NULL)) != -1) {
        switch (ch) {
        case 'b':
            if (strcmp(optarg, "cpu") && strcmp(optarg, "cuda"))
                return cli_fail(2, "--backend %s: not one of cpu|cuda", optarg);
            a.backend = optarg;
            break;
        case 's': if (cli_int("steps", optarg, 1, 1000000, &v)) return 2; a.steps = (int)v; break;
        case 'w': if (cli_int("warmup", optarg, 0, 1000000, &v)) return 2; a.warmup = (int)v; break;
        case 'S': if (cli_int("seed", optarg, 0, INT64_MAX, &v)) return 2; a.seed = (uint64_t)v; break;
        case 'F': if (cli_int("fail-rank", optarg, 0, 1 << 20, &v)) return 2; a.fail_rank = (int)v; break;
        case 'l': if (cli_double("lr", optarg, 0, 100, &a.lr)) return 2; break;
        case 'c': a.check = 1; break;
        case 'j': a.json = 1; break;
        case 't': a.timeline = optarg; break;
        case 'X': a.corrupt = optarg; break;
        case 'h':
            fputs(USAGE, stdout);
            printf("\nThis build: %s.\n", CALPA_HAVE_MPI ? "MPI on (mpirun -np N)"
                                                          : "MPI off (NO_MPI=1): 1-device plans only");
            return 0;
        default: return cli_usage_error(USAGE, NULL);
        }
    }
    if (optind + 1 != argc) return cli_usage_error(USAGE, optind >= argc ? "missing PLAN" : "one PLAN only");
    a.plan = argv[optind];
#if CALPA_HAVE_MPI
    int init = 0;
    MPI_Initialized(&init);
    if (!init) MPI_Init(NULL, NULL);
#endif
    int rc;
    const Backend *be = backend_cpu();
    char why[256] = "";
    if (a.backend && !strcmp(a.backend, "cuda") && !(be = backend_cuda(why, sizeof why)))
        rc = cli_fail(1, "--backend cuda: %s", why); /* every rank says why, no rank hangs */
    else
        rc = run(&a, be);
#if CALPA_HAVE_MPI
    MPI_Finalize();
#endif
    return rc;
}
