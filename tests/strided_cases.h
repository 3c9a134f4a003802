/* strided_cases.h - the strided walks (backend.h) the kernel tests run:
 * permutes, boxes out of and into a larger tensor, broadcasts, reductions
 * over inner, outer and several dims, a scalar, an empty sum; and a naive
 * reference that decodes every (output, reduced) index pair on its own.
 * Included by test_exec_kernels.c (CPU loops vs the reference) and
 * test_cuda.c (GPU vs CPU). */
#ifndef CALPA_STRIDED_CASES_H
#define CALPA_STRIDED_CASES_H

#include <stdint.h>
#include <string.h>

#include "backend.h"

/* Case i (0, 1, ...): the walk and the elements x and y must hold; 0 past the last. */
static inline int strided_case(int i, Strided *w, int64_t *nx, int64_t *ny)
{
    memset(w, 0, sizeof *w);
    switch (i) {
    case 0: /* permute (2,3,4) -> (4,2,3) */
        *w = (Strided){.nd = 3, .dim = {4, 2, 3}, .sx = {1, 12, 4}, .sy = {6, 3, 1}};
        *nx = *ny = 24;
        return 1;
    case 1: /* a (2,3) box at (1,2) out of a (5,6) matrix */
        *w = (Strided){.nd = 2, .dim = {2, 3}, .sx = {6, 1}, .sy = {3, 1}};
        *nx = 30, *ny = 6; /* the caller offsets x by 1 * 6 + 2 */
        return 1;
    case 2: /* the same box written into the matrix (y strided) */
        *w = (Strided){.nd = 2, .dim = {2, 3}, .sx = {3, 1}, .sy = {6, 1}};
        *nx = 6, *ny = 30;
        return 1;
    case 3: /* sum over the middle dim of (3,4,5) */
        *w = (Strided){.nd = 2, .dim = {3, 5}, .sx = {20, 1}, .sy = {5, 1}, .nr = 1, .rdim = {4}, .sr = {5}};
        *nx = 60, *ny = 15;
        return 1;
    case 4: /* sum over the first and last dims of (3,4,5) */
        *w = (Strided){.nd = 1, .dim = {4}, .sx = {5}, .sy = {1}, .nr = 2, .rdim = {3, 5}, .sr = {20, 1}};
        *nx = 60, *ny = 4;
        return 1;
    case 5: /* broadcast a row of 4 over 3 rows */
        *w = (Strided){.nd = 2, .dim = {3, 4}, .sx = {0, 1}, .sy = {4, 1}};
        *nx = 4, *ny = 12;
        return 1;
    case 6: /* a bias gradient: sum the 300 rows of (300, 70), 70 outputs (a partial block) */
        *w = (Strided){.nd = 1, .dim = {70}, .sx = {1}, .sy = {1}, .nr = 1, .rdim = {300}, .sr = {70}};
        *nx = 21000, *ny = 70;
        return 1;
    case 7: /* a scalar */
        *nx = *ny = 1;
        return 1;
    case 8: /* an empty sum: zeros */
        *w = (Strided){.nd = 1, .dim = {5}, .sx = {1}, .sy = {1}, .nr = 1, .rdim = {0}, .sr = {5}};
        *nx = 1, *ny = 5;
        return 1;
    case 9: /* everything to a scalar: (7, 9) */
        *w = (Strided){.nr = 2, .rdim = {7, 9}, .sr = {9, 1}};
        *nx = 63, *ny = 1;
        return 1;
    case 10: /* attention's permute (b,s,n,d) -> (b,n,s,d), 2 x 33 x 4 x 8 */
        *w = (Strided){.nd = 4, .dim = {2, 4, 33, 8}, .sx = {33 * 32, 8, 32, 1},
                       .sy = {4 * 33 * 8, 33 * 8, 8, 1}};
        *nx = *ny = 2 * 33 * 4 * 8;
        return 1;
    default: return 0;
    }
}

/* Case 1 reads x at an offset (its box starts at element 8 of the matrix). */
static inline int64_t strided_case_xoff(int i) { return i == 1 ? 8 : 0; }
static inline int64_t strided_case_yoff(int i) { return i == 2 ? 8 : 0; }

/* The reference: zero the walked outputs (unless accumulating), then add
 * x at every (output, reduced) pair, each index decoded from scratch. */
static inline void strided_ref(const float *x, float *y, const Strided *w, int accumulate)
{
    int64_t nout = 1, nred = 1;
    for (int a = 0; a < w->nd; a++) nout *= w->dim[a];
    for (int a = 0; a < w->nr; a++) nred *= w->rdim[a];
    for (int64_t i = 0; i < nout; i++) {
        int64_t q = i, ox = 0, oy = 0;
        for (int a = w->nd - 1; a >= 0; a--) {
            ox += (q % w->dim[a]) * w->sx[a], oy += (q % w->dim[a]) * w->sy[a];
            q /= w->dim[a];
        }
        double sum = accumulate ? y[oy] : 0;
        for (int64_t r = 0; r < nred; r++) {
            int64_t qr = r, o = ox;
            for (int a = w->nr - 1; a >= 0; a--) {
                o += (qr % w->rdim[a]) * w->sr[a];
                qr /= w->rdim[a];
            }
            sum += x[o];
        }
        y[oy] = (float)sum;
    }
}

#endif
