/* Fused CPU kernels for the monomial SLAF, built by slaf_cli.nn.native.
 *
 * Each kernel makes one pass over its input, where the PyTorch ops behind the
 * eager fast path make one pass per degree. slaf_cli.nn.native compiles this file
 * with the system C compiler on first use and calls it through ctypes. It needs
 * no PyTorch headers. See monomial_body.h for the layout and the loops.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#define LANES 16 /* values per chunk of the inner loops */
#define FLUSH 16 /* chunks (or samples) summed per lane before moving to double */
#define MAX_TERMS 16 /* the highest degree, also checked in Python */

#define ALWAYS_INLINE static inline __attribute__((always_inline))

/* Calls CALL(k) with k a literal for 1..8, so the compiler specialises each.
 * Only float32 gets these copies, because float64 serves tests and checks, and
 * copies for both types made a GCC 12 build take 28 s instead of 16 s. */
#define SPECIALIZED_SWITCH(k, CALL) \
    switch (k) {                    \
    case 1: CALL(1); break;         \
    case 2: CALL(2); break;         \
    case 3: CALL(3); break;         \
    case 4: CALL(4); break;         \
    case 5: CALL(5); break;         \
    case 6: CALL(6); break;         \
    case 7: CALL(7); break;         \
    case 8: CALL(8); break;         \
    default: CALL(k); break;        \
    }
#define GENERIC_CALL(k, CALL) CALL(k);

#define REAL float
#define FN(name) name##_f32
#define DEGREE_SWITCH SPECIALIZED_SWITCH
#include "monomial_body.h"
#undef REAL
#undef FN
#undef DEGREE_SWITCH

#define REAL double
#define FN(name) name##_f64
#define DEGREE_SWITCH GENERIC_CALL
#include "monomial_body.h"
#undef REAL
#undef FN
#undef DEGREE_SWITCH
