/* Monomial SLAF kernels for one floating type.
 *
 * monomial.c includes this file once per type, with REAL set to the element type
 * and FN(name) adding the type's suffix to each function name.
 *
 * Every kernel views its input x as (n, c, s): n samples, c features (the dim
 * that owns a coefficient row) and s positions per feature (H * W for images, 1
 * for dense layers). x must be contiguous. The "rows" kernels serve s > 1: a row
 * of s values shares one coefficient row, and the inner loops run along it. The
 * "lanes" kernels serve s == 1: each thread takes a chunk of LANES features and
 * runs down all samples, with one coefficient per lane.
 *
 * Inner loops handle chunks of LANES values. Each chunk function is inlined into
 * one copy per degree up to 8 (DEGREE_SWITCH), so the loop over powers unrolls
 * and the compiler can keep the chunk's partial sums in vector registers. Their
 * arrays have a fixed size, because with variable-length arrays GCC 12 kept them
 * in memory and the backward kernel ran slower in one measurement.
 * Other degrees run the same code with a runtime degree. Sums are kept per lane
 * in REAL and moved into double every FLUSH chunks, so float32 inputs lose
 * little precision over long rows.
 */

/* Per-lane minimum and maximum: a chunk loop widens lo[b] and hi[b] as it
 * reads x, and RANGE_FOLD merges the lanes into *low and *high at the end. */
#define RANGE_LANES(REAL_T)              \
    REAL_T lo[LANES], hi[LANES];         \
    for (int b = 0; b < LANES; ++b) {    \
        lo[b] = *low;                    \
        hi[b] = *high;                   \
    }
#define RANGE_UPDATE(b, v)                \
    lo[b] = (v) < lo[b] ? (v) : lo[b];    \
    hi[b] = (v) > hi[b] ? (v) : hi[b];
#define RANGE_FOLD()                                          \
    for (int b = 0; b < LANES; ++b) {                         \
        *low = lo[b] < *low ? lo[b] : *low;                   \
        *high = hi[b] > *high ? hi[b] : *high;                \
    }

/* ---- Horner evaluation: out = sum_{i=0..degree} p_i x^i ---- */

/* One row of s values with coefficients cf[0..degree]. It widens *low and *high
 * to the row's range, and with accumulate set adds the polynomial to out. */
ALWAYS_INLINE void FN(eval_row_k)(const REAL *restrict x, REAL *restrict out,
                                  int64_t s, const REAL *restrict cf, REAL *low,
                                  REAL *high, int accumulate,
                                  const int64_t degree) {
    RANGE_LANES(REAL)
    int64_t start = 0;
    for (; start + LANES <= s; start += LANES)
        for (int b = 0; b < LANES; ++b) {
            REAL v = x[start + b], a = cf[degree];
            RANGE_UPDATE(b, v)
            for (int64_t i = degree - 1; i >= 0; --i) a = a * v + cf[i];
            out[start + b] = accumulate ? out[start + b] + a : a;
        }
    for (int64_t k = start; k < s; ++k) {
        REAL v = x[k], a = cf[degree];
        RANGE_UPDATE(0, v)
        for (int64_t i = degree - 1; i >= 0; --i) a = a * v + cf[i];
        out[k] = accumulate ? out[k] + a : a;
    }
    RANGE_FOLD()
}

static void FN(eval_row)(const REAL *x, REAL *out, int64_t s, const REAL *cf,
                         REAL *low, REAL *high, int accumulate, int64_t degree) {
#define CALL(k) FN(eval_row_k)(x, out, s, cf, low, high, accumulate, k)
    DEGREE_SWITCH(degree, CALL)
#undef CALL
}

/* Features [start, start + width) of all n samples, with the coefficients of
 * feature f in poly[row, 0..degree], row = f (or 0 when rows == 1). The chunk's
 * coefficients are gathered into lanes once. width <= LANES. */
ALWAYS_INLINE void FN(eval_lanes_k)(const REAL *restrict x, REAL *restrict out,
                                    int64_t n, int64_t c, int64_t start,
                                    int64_t width, const REAL *restrict poly,
                                    int64_t rows, REAL *low, REAL *high,
                                    int accumulate, const int64_t degree) {
    RANGE_LANES(REAL)
    REAL cf[2 * MAX_TERMS][LANES];
    for (int64_t i = 0; i <= degree; ++i)
        for (int b = 0; b < LANES; ++b)
            cf[i][b] = b < width
                           ? poly[(rows == 1 ? 0 : start + b) * (degree + 1) + i]
                           : 0;
    for (int64_t row = 0; row < n; ++row) {
        const REAL *xs = x + row * c + start;
        REAL *os = out + row * c + start;
        if (width == LANES) {
            for (int b = 0; b < LANES; ++b) {
                REAL v = xs[b], a = cf[degree][b];
                RANGE_UPDATE(b, v)
                for (int64_t i = degree - 1; i >= 0; --i) a = a * v + cf[i][b];
                os[b] = accumulate ? os[b] + a : a;
            }
        } else {
            for (int64_t b = 0; b < width; ++b) {
                REAL v = xs[b], a = cf[degree][b];
                RANGE_UPDATE(b, v)
                for (int64_t i = degree - 1; i >= 0; --i) a = a * v + cf[i][b];
                os[b] = accumulate ? os[b] + a : a;
            }
        }
    }
    RANGE_FOLD() /* unused lanes still contain the initial *low and *high */
}

static void FN(eval_lanes)(const REAL *x, REAL *out, int64_t n, int64_t c,
                           int64_t start, int64_t width, const REAL *poly,
                           int64_t rows, REAL *low, REAL *high, int accumulate,
                           int64_t degree) {
#define CALL(k)                                                               \
    FN(eval_lanes_k)(x, out, n, c, start, width, poly, rows, low, high,       \
                     accumulate, k)
    DEGREE_SWITCH(degree, CALL)
#undef CALL
}

/* out = sum_{i=0..degree} poly[row, i] * x^i with s > 1, or out += that sum
 * when accumulate is set. poly is (rows, degree + 1) with rows = c or 1. When
 * low_out is not NULL, *low_out and *high_out are lowered and raised to the
 * minimum and maximum of x. */
void FN(poly_eval_rows)(const REAL *restrict x, const REAL *restrict poly,
                        int64_t rows, int64_t degree, int64_t n, int64_t c,
                        int64_t s, REAL *restrict out, int accumulate,
                        REAL *low_out, REAL *high_out, int threads) {
    int track = low_out != NULL;
    REAL low = track ? *low_out : 0, high = track ? *high_out : 0;
#pragma omp parallel for num_threads(threads) schedule(static) \
    reduction(min : low) reduction(max : high)
    for (int64_t r = 0; r < n * c; ++r) {
        const REAL *cf = poly + (rows == 1 ? 0 : r % c) * (degree + 1);
        FN(eval_row)(x + r * s, out + r * s, s, cf, &low, &high, accumulate,
                     degree);
    }
    if (track) {
        *low_out = low;
        *high_out = high;
    }
}

/* The same with s == 1: x and out are (n, c). */
void FN(poly_eval_lanes)(const REAL *restrict x, const REAL *restrict poly,
                         int64_t rows, int64_t degree, int64_t n, int64_t c,
                         REAL *restrict out, int accumulate, REAL *low_out,
                         REAL *high_out, int threads) {
    int64_t chunks = (c + LANES - 1) / LANES;
    int track = low_out != NULL;
    REAL low = track ? *low_out : 0, high = track ? *high_out : 0;
#pragma omp parallel for num_threads(threads) schedule(static) \
    reduction(min : low) reduction(max : high)
    for (int64_t chunk = 0; chunk < chunks; ++chunk) {
        int64_t start = chunk * LANES;
        int64_t width = c - start < LANES ? c - start : LANES;
        FN(eval_lanes)(x, out, n, c, start, width, poly, rows, &low, &high,
                       accumulate, degree);
    }
    if (track) {
        *low_out = low;
        *high_out = high;
    }
}

/* ---- Backward of f = b + sum_{j=1..terms} c_j x^j ---- */

/* One row: grad_x = g * sum_i sl[i] x^i (sl contains the coefficients of df/dx)
 * and partial[j] = sum over the row of g * x^j, j = 0..terms. */
ALWAYS_INLINE void FN(grad_row_k)(const REAL *restrict x, const REAL *restrict g,
                                  REAL *restrict grad_x, int64_t s,
                                  const REAL *restrict sl,
                                  double *restrict partial, const int64_t terms) {
    REAL acc[MAX_TERMS + 1][LANES];
    double total[MAX_TERMS + 1];
    for (int64_t j = 0; j <= terms; ++j) {
        total[j] = 0.0;
        for (int b = 0; b < LANES; ++b) acc[j][b] = 0;
    }
    int64_t start = 0, chunks = 0;
    for (; start + LANES <= s; start += LANES) {
        for (int b = 0; b < LANES; ++b) {
            REAL v = x[start + b], w = g[start + b], d = sl[terms - 1];
            for (int64_t i = terms - 2; i >= 0; --i) d = d * v + sl[i];
            grad_x[start + b] = d * w;
            acc[0][b] += w;
            for (int64_t j = 1; j <= terms; ++j) {
                w *= v;
                acc[j][b] += w;
            }
        }
        if (++chunks % FLUSH == 0)
            for (int64_t j = 0; j <= terms; ++j)
                for (int b = 0; b < LANES; ++b) {
                    total[j] += acc[j][b];
                    acc[j][b] = 0;
                }
    }
    for (int64_t k = start; k < s; ++k) {
        REAL v = x[k], w = g[k], d = sl[terms - 1];
        for (int64_t i = terms - 2; i >= 0; --i) d = d * v + sl[i];
        grad_x[k] = d * w;
        total[0] += w;
        for (int64_t j = 1; j <= terms; ++j) {
            w *= v;
            total[j] += w;
        }
    }
    for (int64_t j = 0; j <= terms; ++j) {
        double sum = total[j];
        for (int b = 0; b < LANES; ++b) sum += acc[j][b];
        partial[j] = sum;
    }
}

static void FN(grad_row)(const REAL *x, const REAL *g, REAL *grad_x, int64_t s,
                         const REAL *sl, double *partial, int64_t terms) {
#define CALL(k) FN(grad_row_k)(x, g, grad_x, s, sl, partial, k)
    DEGREE_SWITCH(terms, CALL)
#undef CALL
}

/* Features [start, start + width) of all n samples: grad_x as in grad_row_k,
 * with f = sum_j coef[row, j - 1] x^j and row = feature (or 0 when rows == 1),
 * and sums[f, j] = sum over samples of g * x^j. width <= LANES. */
ALWAYS_INLINE void FN(grad_lanes_k)(const REAL *restrict x, const REAL *restrict g,
                                    REAL *restrict grad_x, int64_t n, int64_t c,
                                    int64_t start, int64_t width,
                                    const REAL *restrict coef, int64_t rows,
                                    double *restrict sums, const int64_t terms) {
    REAL acc[MAX_TERMS + 1][LANES];
    double total[MAX_TERMS + 1][LANES];
    for (int64_t j = 0; j <= terms; ++j)
        for (int b = 0; b < LANES; ++b) {
            acc[j][b] = 0;
            total[j][b] = 0.0;
        }
    REAL sl[MAX_TERMS][LANES];
    for (int64_t i = 0; i < terms; ++i)
        for (int b = 0; b < LANES; ++b)
            sl[i][b] = b < width
                           ? (i + 1) * coef[(rows == 1 ? 0 : start + b) * terms + i]
                           : 0;
    for (int64_t row = 0; row < n; ++row) {
        const REAL *xs = x + row * c + start;
        const REAL *gs = g + row * c + start;
        REAL *os = grad_x + row * c + start;
        if (width == LANES) {
            for (int b = 0; b < LANES; ++b) {
                REAL v = xs[b], w = gs[b], d = sl[terms - 1][b];
                for (int64_t i = terms - 2; i >= 0; --i) d = d * v + sl[i][b];
                os[b] = d * w;
                acc[0][b] += w;
                for (int64_t j = 1; j <= terms; ++j) {
                    w *= v;
                    acc[j][b] += w;
                }
            }
        } else {
            for (int64_t b = 0; b < width; ++b) {
                REAL v = xs[b], w = gs[b], d = sl[terms - 1][b];
                for (int64_t i = terms - 2; i >= 0; --i) d = d * v + sl[i][b];
                os[b] = d * w;
                acc[0][b] += w;
                for (int64_t j = 1; j <= terms; ++j) {
                    w *= v;
                    acc[j][b] += w;
                }
            }
        }
        if ((row + 1) % FLUSH == 0)
            for (int64_t j = 0; j <= terms; ++j)
                for (int b = 0; b < LANES; ++b) {
                    total[j][b] += acc[j][b];
                    acc[j][b] = 0;
                }
    }
    for (int64_t b = 0; b < width; ++b)
        for (int64_t j = 0; j <= terms; ++j)
            sums[(start + b) * (terms + 1) + j] = total[j][b] + acc[j][b];
}

static void FN(grad_lanes)(const REAL *x, const REAL *g, REAL *grad_x, int64_t n,
                           int64_t c, int64_t start, int64_t width,
                           const REAL *coef, int64_t rows, double *sums,
                           int64_t terms) {
#define CALL(k) \
    FN(grad_lanes_k)(x, g, grad_x, n, c, start, width, coef, rows, sums, k)
    DEGREE_SWITCH(terms, CALL)
#undef CALL
}

/* Reduces partial (parts, c, terms + 1) over parts, and over features when
 * rows == 1, into grad_bias (rows) from column 0 and grad_coef (rows, terms). */
static void FN(finish_grad)(const double *partial, int64_t parts, int64_t c,
                            int64_t rows, int64_t terms, REAL *grad_coef,
                            REAL *grad_bias) {
    double shared[MAX_TERMS + 1] = {0};
    for (int64_t f = 0; f < c; ++f) {
        double sum[MAX_TERMS + 1] = {0};
        for (int64_t p = 0; p < parts; ++p)
            for (int64_t j = 0; j <= terms; ++j)
                sum[j] += partial[(p * c + f) * (terms + 1) + j];
        for (int64_t j = 0; j <= terms; ++j) shared[j] += sum[j];
        if (rows != 1) {
            grad_bias[f] = (REAL)sum[0];
            for (int64_t j = 1; j <= terms; ++j)
                grad_coef[f * terms + j - 1] = (REAL)sum[j];
        }
    }
    if (rows == 1) {
        grad_bias[0] = (REAL)shared[0];
        for (int64_t j = 1; j <= terms; ++j) grad_coef[j - 1] = (REAL)shared[j];
    }
}

/* Backward of f = b + sum_{j=1..terms} coef[row, j - 1] x^j for s > 1, where
 * coef is (rows, terms) and rows = c or 1, given g = dL/df. Writes
 * grad_x = g * df/dx, grad_coef (rows, terms) and grad_bias (rows). Returns 0,
 * or 1 when the scratch buffer cannot be allocated. */
int FN(poly_grad_rows)(const REAL *restrict x, const REAL *restrict g,
                       const REAL *restrict coef, int64_t rows, int64_t terms,
                       int64_t n, int64_t c, int64_t s, REAL *restrict grad_x,
                       REAL *restrict grad_coef, REAL *restrict grad_bias,
                       int threads) {
    double *partial = malloc((size_t)(n * c * (terms + 1)) * sizeof(double));
    if (partial == NULL) return 1;
#pragma omp parallel for num_threads(threads) schedule(static)
    for (int64_t r = 0; r < n * c; ++r) {
        const REAL *row = coef + (rows == 1 ? 0 : r % c) * terms;
        REAL sl[MAX_TERMS];  /* df/dx = sum_i sl[i] x^i */
        for (int64_t i = 0; i < terms; ++i) sl[i] = (i + 1) * row[i];
        FN(grad_row)(x + r * s, g + r * s, grad_x + r * s, s, sl,
                     partial + r * (terms + 1), terms);
    }
    FN(finish_grad)(partial, n, c, rows, terms, grad_coef, grad_bias);
    free(partial);
    return 0;
}

/* The same for s == 1: x, g and grad_x are (n, c). */
int FN(poly_grad_lanes)(const REAL *restrict x, const REAL *restrict g,
                        const REAL *restrict coef, int64_t rows, int64_t terms,
                        int64_t n, int64_t c, REAL *restrict grad_x,
                        REAL *restrict grad_coef, REAL *restrict grad_bias,
                        int threads) {
    double *sums = malloc((size_t)(c * (terms + 1)) * sizeof(double));
    if (sums == NULL) return 1;
    int64_t chunks = (c + LANES - 1) / LANES;
#pragma omp parallel for num_threads(threads) schedule(static)
    for (int64_t chunk = 0; chunk < chunks; ++chunk) {
        int64_t start = chunk * LANES;
        int64_t width = c - start < LANES ? c - start : LANES;
        FN(grad_lanes)(x, g, grad_x, n, c, start, width, coef, rows, sums, terms);
    }
    FN(finish_grad)(sums, 1, c, rows, terms, grad_coef, grad_bias);
    free(sums);
    return 0;
}

/* ---- Moments of the powers, for the normalized routine ---- */

ALWAYS_INLINE void FN(powers_row_k)(const REAL *restrict x, int64_t s,
                                    double *restrict partial, REAL *low,
                                    REAL *high, const int64_t count) {
    RANGE_LANES(REAL)
    REAL acc[2 * MAX_TERMS][LANES];
    double total[2 * MAX_TERMS];
    for (int64_t j = 0; j < count; ++j) {
        total[j] = 0.0;
        for (int b = 0; b < LANES; ++b) acc[j][b] = 0;
    }
    int64_t start = 0, chunks = 0;
    for (; start + LANES <= s; start += LANES) {
        for (int b = 0; b < LANES; ++b) {
            REAL v = x[start + b], w = v;
            RANGE_UPDATE(b, v)
            acc[0][b] += w;
            for (int64_t j = 1; j < count; ++j) {
                w *= v;
                acc[j][b] += w;
            }
        }
        if (++chunks % FLUSH == 0)
            for (int64_t j = 0; j < count; ++j)
                for (int b = 0; b < LANES; ++b) {
                    total[j] += acc[j][b];
                    acc[j][b] = 0;
                }
    }
    for (int64_t k = start; k < s; ++k) {
        REAL v = x[k], w = v;
        RANGE_UPDATE(0, v)
        total[0] += w;
        for (int64_t j = 1; j < count; ++j) {
            w *= v;
            total[j] += w;
        }
    }
    for (int64_t j = 0; j < count; ++j) {
        double sum = total[j];
        for (int b = 0; b < LANES; ++b) sum += acc[j][b];
        partial[j] = sum;
    }
    RANGE_FOLD()
}

static void FN(powers_row)(const REAL *x, int64_t s, double *partial, REAL *low,
                           REAL *high, int64_t count) {
#define CALL(k) FN(powers_row_k)(x, s, partial, low, high, k)
    DEGREE_SWITCH(count, CALL)
#undef CALL
}

ALWAYS_INLINE void FN(powers_lanes_k)(const REAL *restrict x, int64_t n, int64_t c,
                                      int64_t start, int64_t width,
                                      double *restrict sums, REAL *low,
                                      REAL *high, const int64_t count) {
    RANGE_LANES(REAL)
    REAL acc[2 * MAX_TERMS][LANES];
    double total[2 * MAX_TERMS][LANES];
    for (int64_t j = 0; j < count; ++j)
        for (int b = 0; b < LANES; ++b) {
            acc[j][b] = 0;
            total[j][b] = 0.0;
        }
    for (int64_t row = 0; row < n; ++row) {
        const REAL *xs = x + row * c + start;
        if (width == LANES) {
            for (int b = 0; b < LANES; ++b) {
                REAL v = xs[b], w = v;
                RANGE_UPDATE(b, v)
                acc[0][b] += w;
                for (int64_t j = 1; j < count; ++j) {
                    w *= v;
                    acc[j][b] += w;
                }
            }
        } else {
            for (int64_t b = 0; b < width; ++b) {
                REAL v = xs[b], w = v;
                RANGE_UPDATE(b, v)
                acc[0][b] += w;
                for (int64_t j = 1; j < count; ++j) {
                    w *= v;
                    acc[j][b] += w;
                }
            }
        }
        if ((row + 1) % FLUSH == 0)
            for (int64_t j = 0; j < count; ++j)
                for (int b = 0; b < LANES; ++b) {
                    total[j][b] += acc[j][b];
                    acc[j][b] = 0;
                }
    }
    for (int64_t b = 0; b < width; ++b)
        for (int64_t j = 0; j < count; ++j)
            sums[(start + b) * count + j] = total[j][b] + acc[j][b];
    RANGE_FOLD()
}

static void FN(powers_lanes)(const REAL *x, int64_t n, int64_t c, int64_t start,
                             int64_t width, double *sums, REAL *low, REAL *high,
                             int64_t count) {
#define CALL(k) FN(powers_lanes_k)(x, n, c, start, width, sums, low, high, k)
    DEGREE_SWITCH(count, CALL)
#undef CALL
}

/* Turns power sums partial (parts, c, 2 * degree), summed over parts, into the
 * biased mean and variance (c, degree) of x^j, j = 1..degree, over count values
 * per feature: var_j = E[x^(2j)] - E[x^j]^2, clamped at 0. */
static void FN(finish_moments)(const double *partial, int64_t parts, int64_t c,
                               int64_t degree, double count, REAL *mean,
                               REAL *variance) {
    int64_t powers = 2 * degree;
    for (int64_t f = 0; f < c; ++f) {
        double sum[2 * MAX_TERMS] = {0};
        for (int64_t p = 0; p < parts; ++p)
            for (int64_t j = 0; j < powers; ++j)
                sum[j] += partial[(p * c + f) * powers + j];
        for (int64_t j = 0; j < degree; ++j) {
            double mu = sum[j] / count, var = sum[2 * j + 1] / count - mu * mu;
            mean[f * degree + j] = (REAL)mu;
            variance[f * degree + j] = (REAL)(var > 0 ? var : 0);
        }
    }
}

/* Batch mean and variance (c, degree) of every power x^j, j = 1..degree, per
 * feature for s > 1 (over n * s values). low_out and high_out as in
 * poly_eval_rows. Returns 0, or 1 when the scratch buffer cannot be allocated. */
int FN(moments_rows)(const REAL *restrict x, int64_t degree, int64_t n,
                     int64_t c, int64_t s, REAL *restrict mean,
                     REAL *restrict variance, REAL *low_out, REAL *high_out,
                     int threads) {
    int64_t count = 2 * degree;
    double *partial = malloc((size_t)(n * c * count) * sizeof(double));
    if (partial == NULL) return 1;
    int track = low_out != NULL;
    REAL low = track ? *low_out : 0, high = track ? *high_out : 0;
#pragma omp parallel for num_threads(threads) schedule(static) \
    reduction(min : low) reduction(max : high)
    for (int64_t r = 0; r < n * c; ++r) {
        FN(powers_row)(x + r * s, s, partial + r * count, &low, &high, count);
    }
    if (track) {
        *low_out = low;
        *high_out = high;
    }
    FN(finish_moments)(partial, n, c, degree, (double)(n * s), mean, variance);
    free(partial);
    return 0;
}

/* The same for s == 1 (over n values). */
int FN(moments_lanes)(const REAL *restrict x, int64_t degree, int64_t n,
                      int64_t c, REAL *restrict mean, REAL *restrict variance,
                      REAL *low_out, REAL *high_out, int threads) {
    int64_t count = 2 * degree;
    double *sums = malloc((size_t)(c * count) * sizeof(double));
    if (sums == NULL) return 1;
    int64_t chunks = (c + LANES - 1) / LANES;
    int track = low_out != NULL;
    REAL low = track ? *low_out : 0, high = track ? *high_out : 0;
#pragma omp parallel for num_threads(threads) schedule(static) \
    reduction(min : low) reduction(max : high)
    for (int64_t chunk = 0; chunk < chunks; ++chunk) {
        int64_t start = chunk * LANES;
        int64_t width = c - start < LANES ? c - start : LANES;
        FN(powers_lanes)(x, n, c, start, width, sums, &low, &high, count);
    }
    if (track) {
        *low_out = low;
        *high_out = high;
    }
    FN(finish_moments)(sums, 1, c, degree, (double)n, mean, variance);
    free(sums);
    return 0;
}
