/* Compiled inner loops of the per-frame analysis (cv_reader.kernels is the Python side).
 *
 * Why C: on short, small clips the numpy versions of these loops cost more than decoding the clip. Their work per
 * pixel is a few operations, so numpy pays in temporaries (a bilinear warp makes eight full-size arrays) and in
 * holding the GIL between calls; here each is one pass over the data with the GIL released, so the pipeline's
 * helper thread runs beside the decoder. Every result is the same number the numpy version computes: the same
 * float32 operations in the same order (no fused multiply-add, see setup.py), and integer sums.
 *
 * Only the buffer protocol is used (no numpy headers), so building needs nothing beyond a C compiler. With GCC or
 * Clang on x86-64, mc_error's rows (AVX2 intrinsics) and block_match's loops (an AVX2 copy the compiler vectorises)
 * are also built for AVX2 and taken where the CPU has it; elsewhere the plain loops run, with the same results.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#if defined(__GNUC__) && defined(__x86_64__)
#include <immintrin.h>
#define CV_AVX2_BUILT 1
#else
#define CV_AVX2_BUILT 0
#endif

/* Whether mc_error, block_match and box_mean take their AVX2 code: set at import where the CPU has AVX2
 * (`set_simd` turns it off, for tests and comparisons). The same float32 operations lane by lane as the scalar
 * loops (box_mean: the same integer sums), so the same numbers. */
static int use_avx2 = 0;

#if CV_AVX2_BUILT
static int
cpu_has_avx2(void)
{
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2");
}
#endif

/* Bumped whenever a signature or a result changes: cv_reader.kernels refuses a stale build. */
#define KERNELS_VERSION 11

/* A buffer of the given struct format ("f", "B", "i"), `ndim` dimensions, C-contiguous unless `strided_rows`
 * (then only the last axis must be contiguous). Sets a Python error and returns -1 on mismatch. */
static int
get_array(PyObject *obj, Py_buffer *view, const char *format, int ndim, int writable, int strided_rows,
          const char *name)
{
    int flags = PyBUF_FORMAT | (strided_rows ? PyBUF_STRIDES : PyBUF_C_CONTIGUOUS) | (writable ? PyBUF_WRITABLE : 0);
    if (PyObject_GetBuffer(obj, view, flags) < 0) {
        PyErr_Format(PyExc_ValueError, "%s: expected a %s%s buffer", name, strided_rows ? "" : "C-contiguous ",
                     writable ? "writable " : "");
        return -1;
    }
    const char *got = view->format ? view->format : "B";
    if (got[0] == '<' || got[0] == '=' || got[0] == '@') {
        got++;
    }
    if (strcmp(got, format) != 0 || view->ndim != ndim) {
        PyErr_Format(PyExc_ValueError, "%s: expected format %s with %d dimensions, got %s with %d", name, format, ndim,
                     view->format ? view->format : "B", view->ndim);
        PyBuffer_Release(view);
        return -1;
    }
    if (strided_rows && view->strides[ndim - 1] != view->itemsize) {
        PyErr_Format(PyExc_ValueError, "%s: the last axis must be contiguous", name);
        PyBuffer_Release(view);
        return -1;
    }
    return 0;
}

/* A sequence of buffers of one format and shape (the candidate reference planes, the frames of the mosaics). */
typedef struct {
    PyObject *seq;
    Py_buffer *views;
    const void **data;
    Py_ssize_t count, held;
} ArrayList;

/* Acquire every item of `obj` as get_array would, all of shape `shape` (`ndim` entries; an entry -1 is set to that
 * of the first item; NULL: any shapes). Sets a Python error (`mismatch` for a shape that differs) and returns -1 on
 * failure; either way `list` is then released by release_array_list, which needs it zeroed first. */
static int
get_array_list(PyObject *obj, ArrayList *list, const char *format, int ndim, Py_ssize_t *shape, const char *name,
               const char *mismatch)
{
    list->seq = PySequence_Fast(obj, "expected a sequence of arrays");
    if (list->seq == NULL) {
        return -1;
    }
    list->count = PySequence_Fast_GET_SIZE(list->seq);
    list->views = PyMem_Calloc((size_t)(list->count > 0 ? list->count : 1), sizeof(Py_buffer));
    list->data = PyMem_Calloc((size_t)(list->count > 0 ? list->count : 1), sizeof(void *));
    if (list->views == NULL || list->data == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    for (; list->held < list->count; list->held++) {
        Py_buffer *view = &list->views[list->held];
        if (get_array(PySequence_Fast_GET_ITEM(list->seq, list->held), view, format, ndim, 0, 0, name) < 0) {
            return -1;
        }
        for (int d = 0; shape != NULL && d < ndim; d++) {
            if (shape[d] < 0 && list->held == 0) {
                shape[d] = view->shape[d];
            }
            if (view->shape[d] != shape[d]) {
                PyBuffer_Release(view);
                PyErr_SetString(PyExc_ValueError, mismatch);
                return -1;
            }
        }
        list->data[list->held] = view->buf;
    }
    return 0;
}

static void
release_array_list(ArrayList *list)
{
    for (Py_ssize_t k = 0; k < list->held; k++) {
        PyBuffer_Release(&list->views[k]);
    }
    PyMem_Free(list->views);
    PyMem_Free(list->data);
    Py_XDECREF(list->seq);
}

/* The block means of box_mean for one sample type: integer row sums (exact in any order), then float(sum) * scale. */
#define BOX_MEAN_LOOPS(SAMPLE_T, SUM_T)                                                                              \
    do {                                                                                                             \
        SUM_T *sums = rows;                                                                                          \
        for (Py_ssize_t i = 0; i < oh; i++) {                                                                        \
            /* rows first: whole rows add at vector speed, then the columns of one row of sums */                    \
            const unsigned char *row = src + i * factor * stride;                                                    \
            float *line = dst + i * ow;                                                                              \
            for (Py_ssize_t x = 0; x < span; x++) {                                                                  \
                sums[x] = ((const SAMPLE_T *)row)[x];                                                                \
            }                                                                                                        \
            for (int dy = 1; dy < factor; dy++) {                                                                    \
                row += stride;                                                                                       \
                for (Py_ssize_t x = 0; x < span; x++) {                                                              \
                    sums[x] += ((const SAMPLE_T *)row)[x];                                                           \
                }                                                                                                    \
            }                                                                                                        \
            if (factor == 4) {                                                                                       \
                for (Py_ssize_t j = 0; j < ow; j++) {                                                                \
                    const SUM_T *s4 = sums + 4 * j;                                                                  \
                    line[j] = (float)((s4[0] + s4[1]) + (s4[2] + s4[3])) * scale;                                    \
                }                                                                                                    \
            } else if (factor == 2) {                                                                                \
                for (Py_ssize_t j = 0; j < ow; j++) {                                                                \
                    line[j] = (float)(sums[2 * j] + sums[2 * j + 1]) * scale;                                        \
                }                                                                                                    \
            } else {                                                                                                 \
                for (Py_ssize_t j = 0; j < ow; j++) {                                                                \
                    uint32_t acc = 0;                                                                                \
                    for (int dx = 0; dx < factor; dx++) {                                                            \
                        acc += sums[j * factor + dx];                                                                \
                    }                                                                                                \
                    line[j] = (float)acc * scale;                                                                    \
                }                                                                                                    \
            }                                                                                                        \
        }                                                                                                            \
    } while (0)

#if CV_AVX2_BUILT
/* Output row `line` of box_mean for a uint8 plane and factor 2, 4 or 8 (the decoding thread's work luma of frames
 * below 720p: the largest cost of that thread after the decode), 8 or 16 outputs at a time; returns how many it
 * wrote (the caller sums the rest). Byte pairs summed with maddubs, the factor rows added as int16 (at most
 * 8 x 510), then (factor 4, 8) adjacent sums added again as int32: the same integer sums as the scalar loops, so the
 * same float32 products. 852x480 at factor 4: 32 -> 11 us a frame, 640x360 18 -> 3.4 us (hot caches). */
__attribute__((target("avx2"))) static Py_ssize_t
box_mean_row_avx2(const unsigned char *row, Py_ssize_t stride, int factor, Py_ssize_t ow, float scale, float *line)
{
    const __m256i ones8 = _mm256_set1_epi8(1), ones16 = _mm256_set1_epi16(1);
    const __m256 vscale = _mm256_set1_ps(scale);
    Py_ssize_t j = 0;
#define PAIR_SUMS(ptr) _mm256_maddubs_epi16(_mm256_loadu_si256((const __m256i *)(ptr)), ones8)
    if (factor == 2) {
        for (; j + 16 <= ow; j += 16) {
            const unsigned char *p = row + 2 * j;
            __m256i s = _mm256_add_epi16(PAIR_SUMS(p), PAIR_SUMS(p + stride));
            __m256i lo = _mm256_cvtepi16_epi32(_mm256_castsi256_si128(s));
            __m256i hi = _mm256_cvtepi16_epi32(_mm256_extracti128_si256(s, 1));
            _mm256_storeu_ps(line + j, _mm256_mul_ps(_mm256_cvtepi32_ps(lo), vscale));
            _mm256_storeu_ps(line + j + 8, _mm256_mul_ps(_mm256_cvtepi32_ps(hi), vscale));
        }
    } else if (factor == 4) {
        for (; j + 8 <= ow; j += 8) {
            const unsigned char *p = row + 4 * j;
            __m256i s = PAIR_SUMS(p);
            for (int dy = 1; dy < 4; dy++) {
                s = _mm256_add_epi16(s, PAIR_SUMS(p + dy * stride));
            }
            __m256i sums = _mm256_madd_epi16(s, ones16);
            _mm256_storeu_ps(line + j, _mm256_mul_ps(_mm256_cvtepi32_ps(sums), vscale));
        }
    } else if (factor == 8) {
        for (; j + 8 <= ow; j += 8) {
            const unsigned char *p = row + 8 * j;
            __m256i a = PAIR_SUMS(p), b = PAIR_SUMS(p + 32);
            for (int dy = 1; dy < 8; dy++) {
                a = _mm256_add_epi16(a, PAIR_SUMS(p + dy * stride));
                b = _mm256_add_epi16(b, PAIR_SUMS(p + dy * stride + 32));
            }
            /* 4-column sums of a (outputs 0-3) and b (4-7), added in pairs within each 128-bit lane:
             * 0 1 4 5 | 2 3 6 7 */
            __m256i sums = _mm256_hadd_epi32(_mm256_madd_epi16(a, ones16), _mm256_madd_epi16(b, ones16));
            sums = _mm256_permute4x64_epi64(sums, _MM_SHUFFLE(3, 1, 2, 0));
            _mm256_storeu_ps(line + j, _mm256_mul_ps(_mm256_cvtepi32_ps(sums), vscale));
        }
    }
#undef PAIR_SUMS
    return j;
}
#endif

/* box_mean(plane, factor, out): out[i, j] = float(sum of the factor x factor block (i, j) of the plane)
 * * float32(1 / factor^2), trailing rows and columns that do not fill a block dropped; as
 * residual.box_sums(plane, f).astype(float32) * float32(1 / f^2). `plane` [H, W], uint8 (factor <= 256: uint16 row
 * sums hold 256 rows of 255) or uint16 (factor <= 16: sums of up to 256 x 65535 stay below 2^24, exact in float32
 * as numpy's float32 sums are), may have padded rows (a decoded frame's line size); out is float32 [H // f, W // f]. */
static PyObject *
box_mean(PyObject *self, PyObject *args)
{
    PyObject *plane_obj, *out_obj;
    int factor, wide;
    if (!PyArg_ParseTuple(args, "OipO", &plane_obj, &factor, &wide, &out_obj)) {
        return NULL;
    }
    if (factor < 1 || factor > (wide ? 16 : 256)) {
        PyErr_SetString(PyExc_ValueError, "factor must be in [1, 256] (uint8) or [1, 16] (uint16)");
        return NULL;
    }
    Py_buffer plane, out;
    if (get_array(plane_obj, &plane, wide ? "H" : "B", 2, 0, 1, "plane") < 0) {
        return NULL;
    }
    if (get_array(out_obj, &out, "f", 2, 1, 0, "out") < 0) {
        PyBuffer_Release(&plane);
        return NULL;
    }
    Py_ssize_t oh = plane.shape[0] / factor, ow = plane.shape[1] / factor, stride = plane.strides[0];
    if (out.shape[0] != oh || out.shape[1] != ow) {
        PyErr_SetString(PyExc_ValueError, "out must be [H // factor, W // factor]");
        PyBuffer_Release(&plane);
        PyBuffer_Release(&out);
        return NULL;
    }
    void *rows = ow > 0 ? malloc((wide ? sizeof(uint32_t) : sizeof(uint16_t)) * (size_t)(ow * factor)) : NULL;
    if (ow > 0 && rows == NULL) {
        PyBuffer_Release(&plane);
        PyBuffer_Release(&out);
        return PyErr_NoMemory();
    }
    /* numpy: np.float32(1.0 / (f * f)), a double rounded to float32 */
    const float scale = (float)(1.0 / ((double)factor * (double)factor));
    const unsigned char *src = plane.buf;
    float *dst = out.buf;
    const Py_ssize_t span = ow * factor;
    Py_BEGIN_ALLOW_THREADS
#if CV_AVX2_BUILT
    if (use_avx2 && !wide && (factor == 2 || factor == 4 || factor == 8)) {
        for (Py_ssize_t i = 0; i < oh; i++) {
            const unsigned char *row = src + i * factor * stride;
            float *line = dst + i * ow;
            for (Py_ssize_t j = box_mean_row_avx2(row, stride, factor, ow, scale, line); j < ow; j++) {
                uint32_t acc = 0; /* the outputs past the last whole vector */
                for (int dy = 0; dy < factor; dy++) {
                    for (int dx = 0; dx < factor; dx++) {
                        acc += row[dy * stride + j * factor + dx];
                    }
                }
                line[j] = (float)acc * scale;
            }
        }
    } else
#endif
        if (wide) {
        BOX_MEAN_LOOPS(uint16_t, uint32_t);
    } else {
        BOX_MEAN_LOOPS(unsigned char, uint16_t);
    }
    Py_END_ALLOW_THREADS
    free(rows);
    PyBuffer_Release(&plane);
    PyBuffer_Release(&out);
    Py_RETURN_NONE;
}

/* Clamp a sample coordinate to [0, last] (np.clip: maximum, then minimum). */
static inline float
clamp(float v, float last)
{
    v = v < 0.0f ? 0.0f : v;
    return v > last ? last : v;
}

/* The bilinear sample at column x + dx between rows r0 and r1 (fraction fy) compared with now[x], with the
 * arithmetic of residual._warp_plan + residual._apply_warp (the column clamped to the frame, edge-padded taps: the
 * +1 tap of the last column is itself); `best` keeps the smaller error. */
static inline void
tap_error(const float *r0, const float *r1, const float *now, float *best, Py_ssize_t w, Py_ssize_t x, float dx,
          float fy)
{
    float xs = clamp((float)x + dx, (float)(w - 1));
    Py_ssize_t ix = (Py_ssize_t)xs;
    float fx = xs - (float)ix;
    Py_ssize_t ix1 = ix + 1 < w ? ix + 1 : ix;
    float top = r0[ix];
    float step = r0[ix1] - top;
    step *= fx;
    top += step;
    float bottom = r1[ix];
    step = r1[ix1] - bottom;
    step *= fx;
    bottom += step;
    bottom -= top;
    bottom *= fy;
    top += bottom;
    float err = fabsf(now[x] - top);
    best[x] = err < best[x] ? err : best[x];
}

/* The rows and fraction of sample row y + dy, clamped to the frame (the +1 row of the last row is itself). */
static inline const float *
tap_rows(const float *ref, Py_ssize_t h, Py_ssize_t w, Py_ssize_t y, float dy, const float **r1, float *fy)
{
    /* the coordinates are clamped non-negative: truncation is the floor (and needs no libm call) */
    float ys = clamp((float)y + dy, (float)(h - 1));
    Py_ssize_t iy = (Py_ssize_t)ys;
    *fy = ys - (float)iy;
    const float *r0 = ref + iy * w;
    *r1 = iy + 1 < h ? r0 + w : r0;
    return r0;
}

/* The prediction error of one row segment [x0, x1) of work row `y` from one reference with one vector (dx, dy) in
 * work pixels (`tap_error` for each pixel); `best` keeps the smaller error. */
static inline void
segment_error(const float *ref, const float *now, float *best, Py_ssize_t h, Py_ssize_t w, Py_ssize_t y,
              Py_ssize_t x0, Py_ssize_t x1, float dx, float dy)
{
    const float *r1;
    float fy;
    const float *r0 = tap_rows(ref, h, w, y, dy, &r1, &fy);
    if (fy == 0.0f && dx == (float)(Py_ssize_t)dx) {
        /* A whole-pixel vector (a third of the blocks are at rest): both fractions are 0, and the bilinear
         * arithmetic gives the tap itself exactly (t + (u - t) * 0 is t for finite values). */
        for (Py_ssize_t x = x0; x < x1; x++) {
            Py_ssize_t ix = (Py_ssize_t)clamp((float)x + dx, (float)(w - 1));
            float err = fabsf(now[x] - r0[ix]);
            best[x] = err < best[x] ? err : best[x];
        }
        return;
    }
    for (Py_ssize_t x = x0; x < x1; x++) {
        tap_error(r0, r1, now, best, w, x, dx, fy);
    }
}

#if CV_AVX2_BUILT
/* np.clip of 8 lanes as `clamp` does it (v < 0 -> 0, then v > last -> last; a -0 stays -0, as there). */
__attribute__((target("avx2"))) static inline __m256
clamp8(__m256 v, __m256 last)
{
    v = _mm256_blendv_ps(v, _mm256_setzero_ps(), _mm256_cmp_ps(v, _mm256_setzero_ps(), _CMP_LT_OQ));
    return _mm256_blendv_ps(v, last, _mm256_cmp_ps(v, last, _CMP_GT_OQ));
}

/* `tap_error` for the pixels of work row `y` whose block carries a vector, 8 at a time: per pixel its vector
 * (dxs, dys: already divided by the factor; 0 where `hs` is 0) and whether it has one (hs: -1 or 0). Each lane runs
 * the scalar steps in the same order (separate multiplies and adds: no fused multiply-add), the taps gathered. */
__attribute__((target("avx2"))) static void
row_error_avx2(const float *ref, const float *now, float *best, Py_ssize_t h, Py_ssize_t w, Py_ssize_t y,
               const float *dxs, const float *dys, const int32_t *hs)
{
    const __m256 last_x = _mm256_set1_ps((float)(w - 1)), last_y = _mm256_set1_ps((float)(h - 1));
    const __m256 row_y = _mm256_set1_ps((float)y);
    const __m256 magnitude = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
    const __m256i width = _mm256_set1_epi32((int)w), width_1 = _mm256_set1_epi32((int)(w - 1));
    const __m256i height_1 = _mm256_set1_epi32((int)(h - 1));
    const __m256i lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    Py_ssize_t x = 0;
    for (; x + 8 <= w; x += 8) {
        __m256i has = _mm256_loadu_si256((const __m256i *)(hs + x));
        if (_mm256_testz_si256(has, has)) {
            continue;
        }
        __m256 xs = _mm256_cvtepi32_ps(_mm256_add_epi32(_mm256_set1_epi32((int)x), lanes));
        xs = clamp8(_mm256_add_ps(xs, _mm256_loadu_ps(dxs + x)), last_x);
        __m256 ys = clamp8(_mm256_add_ps(row_y, _mm256_loadu_ps(dys + x)), last_y);
        __m256i ix = _mm256_cvttps_epi32(xs), iy = _mm256_cvttps_epi32(ys); /* non-negative: the floor */
        __m256 fx = _mm256_sub_ps(xs, _mm256_cvtepi32_ps(ix)), fy = _mm256_sub_ps(ys, _mm256_cvtepi32_ps(iy));
        __m256i ix1 = _mm256_sub_epi32(ix, _mm256_cmpgt_epi32(width_1, ix)); /* ix + 1 where it is inside */
        __m256i row0 = _mm256_mullo_epi32(iy, width);
        __m256i row1 = _mm256_add_epi32(row0, _mm256_and_si256(_mm256_cmpgt_epi32(height_1, iy), width));
        __m256 top = _mm256_i32gather_ps(ref, _mm256_add_epi32(row0, ix), 4);
        __m256 step = _mm256_sub_ps(_mm256_i32gather_ps(ref, _mm256_add_epi32(row0, ix1), 4), top);
        top = _mm256_add_ps(top, _mm256_mul_ps(step, fx));
        __m256 bottom = _mm256_i32gather_ps(ref, _mm256_add_epi32(row1, ix), 4);
        step = _mm256_sub_ps(_mm256_i32gather_ps(ref, _mm256_add_epi32(row1, ix1), 4), bottom);
        bottom = _mm256_add_ps(bottom, _mm256_mul_ps(step, fx));
        bottom = _mm256_mul_ps(_mm256_sub_ps(bottom, top), fy);
        top = _mm256_add_ps(top, bottom);
        __m256 err = _mm256_and_ps(_mm256_sub_ps(_mm256_loadu_ps(now + x), top), magnitude);
        __m256 kept = _mm256_loadu_ps(best + x);
        __m256 take = _mm256_and_ps(_mm256_cmp_ps(err, kept, _CMP_LT_OQ), _mm256_castsi256_ps(has));
        _mm256_storeu_ps(best + x, _mm256_blendv_ps(kept, err, take));
    }
    for (; x < w; x++) {
        if (hs[x]) {
            const float *r1;
            float fy;
            const float *r0 = tap_rows(ref, h, w, y, dys[x], &r1, &fy);
            tap_error(r0, r1, now, best, w, x, dxs[x], fy);
        }
    }
}
#endif

/* mc_error(cur, field, has, block, factor, refs, candidates, difference, out) -> bool
 *
 * The motion-compensated prediction error of residual.mc_residual: for each frame n and work pixel (y, x), the
 * smallest |cur - bilinear(ref, y + dy, x + dx)| over the candidate references of each direction whose block
 * carries a vector; where none does, |cur - refs[difference[n]]| (the intra fallback "difference"), or +inf when
 * difference[n] is -1. Returns whether any +inf is left.
 *   cur        float32 [B, H, W] work luma
 *   field      float32 [B, hb, wb, 4] vectors (L0_x, L0_y, L1_x, L1_y) in full-resolution pixels, one per `block`
 *              work pixels (the grid is edge-replicated where it does not reach the border, cropped where it
 *              goes past it)
 *   has        uint8 [B, hb, wb, 2] which directions carry a vector
 *   factor     work pixels per full-resolution pixel (the vectors are divided by it, in float32)
 *   refs       a sequence of float32 [H, W] work luma planes (candidate references)
 *   candidates int32 [B, 2, K] indices into refs per frame and direction, -1 after the last
 *   difference int32 [B] index into refs of the plane that intra pixels are compared with, or -1
 *   out        float32 [B, H, W] */
static PyObject *
mc_error(PyObject *self, PyObject *args)
{
    PyObject *cur_obj, *field_obj, *has_obj, *refs_obj, *cand_obj, *diff_obj, *out_obj;
    int block;
    float factor;
    if (!PyArg_ParseTuple(args, "OOOifOOOO", &cur_obj, &field_obj, &has_obj, &block, &factor, &refs_obj, &cand_obj,
                          &diff_obj, &out_obj)) {
        return NULL;
    }
    if (block < 1 || !(factor > 0.0f)) {
        PyErr_SetString(PyExc_ValueError, "block and factor must be positive");
        return NULL;
    }
    Py_buffer cur, field, has, cand, diff, out;
    Py_buffer *views[6] = {&cur, &field, &has, &cand, &diff, &out};
    int held = 0;
    ArrayList refs = {0};
    PyObject *result = NULL;

    if (get_array(cur_obj, &cur, "f", 3, 0, 0, "cur") < 0) goto done;
    held++;
    if (get_array(field_obj, &field, "f", 4, 0, 0, "field") < 0) goto done;
    held++;
    if (get_array(has_obj, &has, "B", 4, 0, 0, "has") < 0) goto done;
    held++;
    if (get_array(cand_obj, &cand, "i", 3, 0, 0, "candidates") < 0) goto done;
    held++;
    if (get_array(diff_obj, &diff, "i", 1, 0, 0, "difference") < 0) goto done;
    held++;
    if (get_array(out_obj, &out, "f", 3, 1, 0, "out") < 0) goto done;
    held++;

    const Py_ssize_t count = cur.shape[0], h = cur.shape[1], w = cur.shape[2];
    const Py_ssize_t hb = field.shape[1], wb = field.shape[2], slots = cand.shape[2];
    if (field.shape[0] != count || field.shape[3] != 4 || hb < 1 || wb < 1 || has.shape[0] != count ||
        has.shape[1] != hb || has.shape[2] != wb || has.shape[3] != 2 || cand.shape[0] != count ||
        cand.shape[1] != 2 || diff.shape[0] != count || out.shape[0] != count || out.shape[1] != h ||
        out.shape[2] != w || h < 1 || w < 1) {
        PyErr_SetString(PyExc_ValueError, "mc_error: inconsistent shapes");
        goto done;
    }
    Py_ssize_t ref_shape[2] = {h, w};
    if (get_array_list(refs_obj, &refs, "f", 2, ref_shape, "refs[i]",
                       "mc_error: every reference must be [H, W] like cur") < 0) {
        goto done;
    }
    const Py_ssize_t num_refs = refs.count;
    const float **ref_data = (const float **)refs.data;
    const int32_t *cands = cand.buf, *diffs = diff.buf;
    for (Py_ssize_t k = 0; k < count * 2 * slots; k++) {
        if (cands[k] >= num_refs || cands[k] < -1) {
            PyErr_SetString(PyExc_IndexError, "mc_error: candidate index out of range");
            goto done;
        }
    }
    for (Py_ssize_t n = 0; n < count; n++) {
        if (diffs[n] >= num_refs || diffs[n] < -1) {
            PyErr_SetString(PyExc_IndexError, "mc_error: difference index out of range");
            goto done;
        }
    }
    int left = 0;

    const float *curs = cur.buf, *fields = field.buf;
    const unsigned char *hass = has.buf;
    float *outs = out.buf;
    /* The AVX2 rows read one vector per pixel: each used row of the vector grid spread over the work width. */
    const Py_ssize_t grid_rows = (h - 1) / block + 1 < hb ? (h - 1) / block + 1 : hb;
    float *spread = NULL;
#if CV_AVX2_BUILT
    if (use_avx2 && w >= 8) {
        spread = PyMem_Malloc(sizeof(float) * 3 * grid_rows * w);
        if (spread == NULL) {
            PyErr_NoMemory();
            goto done;
        }
    }
#endif
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t n = 0; n < count; n++) {
        float *best = outs + n * h * w;
        const float *now = curs + n * h * w;
        for (Py_ssize_t i = 0; i < h * w; i++) {
            best[i] = INFINITY;
        }
        for (int direction = 0; direction < 2; direction++) {
            const int32_t *list = cands + (n * 2 + direction) * slots;
#if CV_AVX2_BUILT
            if (spread != NULL) {
                if (slots == 0 || list[0] < 0) {
                    continue;
                }
                float *dxs = spread, *dys = spread + grid_rows * w;
                int32_t *hs = (int32_t *)(spread + 2 * grid_rows * w);
                for (Py_ssize_t by = 0; by < grid_rows; by++) {
                    const float *vrow = fields + ((n * hb + by) * wb) * 4 + 2 * direction;
                    const unsigned char *hrow = hass + ((n * hb + by) * wb) * 2 + direction;
                    /* the blocks of the scalar loop below: the last one reaches the right border */
                    for (Py_ssize_t bx = 0; bx < wb && bx * block < w; bx++) {
                        Py_ssize_t x0 = bx * block, x1 = bx == wb - 1 || x0 + block > w ? w : x0 + block;
                        int on = hrow[bx * 2] != 0;
                        /* numpy: (field / float32(f)); 0 where no vector (a valid tap, never read into `best`) */
                        float dx = on ? vrow[bx * 4] / factor : 0.0f, dy = on ? vrow[bx * 4 + 1] / factor : 0.0f;
                        for (Py_ssize_t x = x0; x < x1; x++) {
                            dxs[by * w + x] = dx;
                            dys[by * w + x] = dy;
                            hs[by * w + x] = on ? -1 : 0;
                        }
                    }
                }
                for (Py_ssize_t k = 0; k < slots && list[k] >= 0; k++) {
                    const float *ref = ref_data[list[k]];
                    for (Py_ssize_t y = 0; y < h; y++) {
                        Py_ssize_t by = y / block < grid_rows ? y / block : grid_rows - 1;
                        row_error_avx2(ref, now + y * w, best + y * w, h, w, y, dxs + by * w, dys + by * w,
                                       hs + by * w);
                    }
                }
                continue;
            }
#endif
            for (Py_ssize_t k = 0; k < slots && list[k] >= 0; k++) {
                const float *ref = ref_data[list[k]];
                for (Py_ssize_t y = 0; y < h; y++) {
                    Py_ssize_t by = y / block < hb ? y / block : hb - 1;
                    const float *vrow = fields + ((n * hb + by) * wb) * 4 + 2 * direction;
                    const unsigned char *hrow = hass + ((n * hb + by) * wb) * 2 + direction;
                    /* one vector per block of `block` work pixels; the last block reaches the right border */
                    for (Py_ssize_t bx = 0; bx < wb && bx * block < w; bx++) {
                        if (!hrow[bx * 2]) {
                            continue;
                        }
                        Py_ssize_t x0 = bx * block, x1 = bx == wb - 1 || x0 + block > w ? w : x0 + block;
                        /* numpy: (field / float32(f)) then float32(y) + dy */
                        segment_error(ref, now + y * w, best + y * w, h, w, y, x0, x1, vrow[bx * 4] / factor,
                                      vrow[bx * 4 + 1] / factor);
                    }
                }
            }
        }
        /* numpy: np.abs(cur - prev), float32 */
        const float *back = diffs[n] >= 0 ? ref_data[diffs[n]] : NULL;
        for (Py_ssize_t i = 0; i < h * w; i++) {
            if (best[i] == INFINITY) {
                if (back != NULL) {
                    best[i] = fabsf(now[i] - back[i]);
                } else {
                    left = 1;
                }
            }
        }
    }
    Py_END_ALLOW_THREADS
    PyMem_Free(spread);
    result = PyBool_FromLong(left);

done:
    release_array_list(&refs);
    for (int k = 0; k < held; k++) {
        PyBuffer_Release(views[k]);
    }
    return result;
}

/* The loops of block_match (below) over `count` frames, into `motions` and `residuals`; `padded`, `sums`, `best` and
 * `best_k` are its scratch rows. Inlined into a plain and an AVX2 copy: the compiler vectorises the contiguous row
 * loops 4 or 8 lanes wide, each lane the same float32 operations in the same order (sums are never reassociated
 * without -ffast-math), so both copies give the same numbers. */
static inline __attribute__((always_inline)) void
match_frames(const float *curs, const float *refs, const int32_t *shift, Py_ssize_t num, Py_ssize_t count,
             Py_ssize_t h, Py_ssize_t w, Py_ssize_t hr, Py_ssize_t wr, int block, int search, float zero_bias,
             float *padded, float *sums, float *best, Py_ssize_t *best_k, float *motions, float *residuals)
{
    const Py_ssize_t hb = h / block, wb = w / block;
    const Py_ssize_t ph = hb * block + 2 * search, pw = wb * block + 2 * search, width = wb * block;
    const float area = (float)(block * block), inverse = 1.0f / area;
    const int exact_inverse = ((block * block) & (block * block - 1)) == 0; /* a power of two */
    for (Py_ssize_t n = 0; n < count; n++) {
        const float *now = curs + n * h * w, *past = refs + n * hr * wr;
        for (Py_ssize_t y = 0; y < ph; y++) {
            Py_ssize_t yr = y - search;
            yr = yr < 0 ? 0 : (yr > hr - 1 ? hr - 1 : yr);
            for (Py_ssize_t x = 0; x < pw; x++) {
                Py_ssize_t xr = x - search;
                xr = xr < 0 ? 0 : (xr > wr - 1 ? wr - 1 : xr);
                padded[y * pw + x] = past[yr * wr + xr];
            }
        }
        for (Py_ssize_t i = 0; i < hb; i++) {
            for (Py_ssize_t j = 0; j < wb; j++) {
                best[j] = INFINITY;
                best_k[j] = 0;
            }
            for (Py_ssize_t k = 0; k < num; k++) {
                const Py_ssize_t dy = shift[2 * k], dx = shift[2 * k + 1];
                const float *row = now + i * block * w;
                const float *moved = padded + (i * block + search + dy) * pw + search + dx;
                for (Py_ssize_t x = 0; x < width; x++) {
                    sums[x] = fabsf(row[x] - moved[x]);
                }
                for (int r = 1; r < block; r++) {
                    row += w;
                    moved += pw;
                    for (Py_ssize_t x = 0; x < width; x++) {
                        sums[x] += fabsf(row[x] - moved[x]);
                    }
                }
                const float bias = dy == 0 && dx == 0 ? zero_bias : 0.0f;
                if (block == 4 && exact_inverse) {
                    /* the common case, written so the compiler vectorises it across blocks */
                    for (Py_ssize_t j = 0; j < wb; j++) {
                        const float *cols = sums + 4 * j;
                        float sad = (((cols[0] + cols[1]) + cols[2]) + cols[3]) * inverse - bias;
                        best_k[j] = sad < best[j] ? k : best_k[j];
                        best[j] = sad < best[j] ? sad : best[j];
                    }
                    continue;
                }
                for (Py_ssize_t j = 0; j < wb; j++) {
                    const float *cols = sums + j * block;
                    float total = cols[0];
                    for (int c = 1; c < block; c++) {
                        total += cols[c];
                    }
                    /* x * 2^-k is x / 2^k exactly; other areas divide as numpy does */
                    float sad = (exact_inverse ? total * inverse : total / area) - bias;
                    if (sad < best[j]) {
                        best[j] = sad;
                        best_k[j] = k;
                    }
                }
            }
            for (Py_ssize_t j = 0; j < wb; j++) {
                Py_ssize_t cell = (n * hb + i) * wb + j;
                motions[2 * cell] = (float)shift[2 * best_k[j] + 1];
                motions[2 * cell + 1] = (float)shift[2 * best_k[j]];
                residuals[cell] = best[j] > 0.0f ? best[j] : 0.0f;
            }
        }
    }
}

#define MATCH_FRAMES_ARGS                                                                                            \
    const float *curs, const float *refs, const int32_t *shift, Py_ssize_t num, Py_ssize_t count, Py_ssize_t h,     \
        Py_ssize_t w, Py_ssize_t hr, Py_ssize_t wr, int block, int search, float zero_bias, float *padded,          \
        float *sums, float *best, Py_ssize_t *best_k, float *motions, float *residuals
#define MATCH_FRAMES_NAMES                                                                                           \
    curs, refs, shift, num, count, h, w, hr, wr, block, search, zero_bias, padded, sums, best, best_k, motions,      \
        residuals

static void
match_frames_plain(MATCH_FRAMES_ARGS)
{
    match_frames(MATCH_FRAMES_NAMES);
}

#if CV_AVX2_BUILT
__attribute__((target("avx2"))) static void
match_frames_avx2(MATCH_FRAMES_ARGS)
{
    match_frames(MATCH_FRAMES_NAMES);
}
#endif

/* block_match(cur, ref, block, search, zero_bias, shifts, motion, residual)
 *
 * Full-search block matching of motion_estimation.estimate_motion: for each block x block block of each frame of
 * `cur` [B, H, W] (float32; blocks that do not fit are dropped), the mean absolute difference to `ref` [B, Hr, Wr]
 * (edge-replicated beyond its border) shifted by each (dy, dx) of `shifts` int32 [S, 2] (tried in that order: the
 * first minimum wins), the zero shift discounted by `zero_bias`.
 *   motion     float32 [B, H // block, W // block, 2] (dx, dy) of the best shift
 *   residual   float32 [B, H // block, W // block] its mean absolute difference, at least 0
 * Each block row of a frame is matched one shift at a time over its whole width, as numpy does: the absolute
 * differences of its first row, the next rows added (column sums), then each block's column sums added left to
 * right and divided by the area. The same float32 operations in the same order give the same numbers for any luma,
 * and the row loops are contiguous, so the compiler vectorises them. */
static PyObject *
block_match(PyObject *self, PyObject *args)
{
    PyObject *cur_obj, *ref_obj, *shifts_obj, *motion_obj, *residual_obj;
    int block, search;
    float zero_bias;
    if (!PyArg_ParseTuple(args, "OOiifOOO", &cur_obj, &ref_obj, &block, &search, &zero_bias, &shifts_obj,
                          &motion_obj, &residual_obj)) {
        return NULL;
    }
    if (block < 1 || search < 0) {
        PyErr_SetString(PyExc_ValueError, "block_match: block >= 1 and search >= 0");
        return NULL;
    }
    Py_buffer cur, ref, shifts, motion, residual;
    Py_buffer *views[5] = {&cur, &ref, &shifts, &motion, &residual};
    int held = 0;
    PyObject *result = NULL;
    float *padded = NULL, *sums = NULL, *best = NULL;
    Py_ssize_t *best_k = NULL;
    if (get_array(cur_obj, &cur, "f", 3, 0, 0, "cur") < 0) goto done;
    held++;
    if (get_array(ref_obj, &ref, "f", 3, 0, 0, "ref") < 0) goto done;
    held++;
    if (get_array(shifts_obj, &shifts, "i", 2, 0, 0, "shifts") < 0) goto done;
    held++;
    if (get_array(motion_obj, &motion, "f", 4, 1, 0, "motion") < 0) goto done;
    held++;
    if (get_array(residual_obj, &residual, "f", 3, 1, 0, "residual") < 0) goto done;
    held++;
    const Py_ssize_t count = cur.shape[0], h = cur.shape[1], w = cur.shape[2];
    const Py_ssize_t hr = ref.shape[1], wr = ref.shape[2], hb = h / block, wb = w / block, num = shifts.shape[0];
    if (ref.shape[0] != count || hr < 1 || wr < 1 || shifts.shape[1] != 2 || num < 1 || motion.shape[0] != count ||
        motion.shape[1] != hb || motion.shape[2] != wb || motion.shape[3] != 2 || residual.shape[0] != count ||
        residual.shape[1] != hb || residual.shape[2] != wb) {
        PyErr_SetString(PyExc_ValueError, "block_match: inconsistent shapes");
        goto done;
    }
    const int32_t *shift = shifts.buf;
    for (Py_ssize_t k = 0; k < num; k++) {
        if (shift[2 * k] < -search || shift[2 * k] > search || shift[2 * k + 1] < -search ||
            shift[2 * k + 1] > search) {
            PyErr_SetString(PyExc_ValueError, "block_match: a shift is longer than the search range");
            goto done;
        }
    }
    /* the reference with `search` replicated rows/columns on each side (every shifted read stays inside) */
    const Py_ssize_t ph = hb * block + 2 * search, pw = wb * block + 2 * search, width = wb * block;
    padded = PyMem_Malloc(sizeof(float) * (size_t)(ph * pw + 1));
    sums = PyMem_Malloc(sizeof(float) * (size_t)(width + 1));
    best = PyMem_Malloc(sizeof(float) * (size_t)(wb + 1));
    best_k = PyMem_Malloc(sizeof(Py_ssize_t) * (size_t)(wb + 1));
    if (padded == NULL || sums == NULL || best == NULL || best_k == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    const float *curs = cur.buf, *refs = ref.buf;
    float *motions = motion.buf, *residuals = residual.buf;
    Py_BEGIN_ALLOW_THREADS
#if CV_AVX2_BUILT
    if (use_avx2) {
        match_frames_avx2(MATCH_FRAMES_NAMES);
    } else
#endif
    {
        match_frames_plain(MATCH_FRAMES_NAMES);
    }
    Py_END_ALLOW_THREADS
    result = Py_None;
    Py_INCREF(result);
done:
    PyMem_Free(padded);
    PyMem_Free(sums);
    PyMem_Free(best);
    PyMem_Free(best_k);
    for (int k = 0; k < held; k++) {
        PyBuffer_Release(views[k]);
    }
    return result;
}

/* FFmpeg's AVMotionVector (libavutil/motion_vector.h) as PyAV's to_ndarray lays it out: 40 bytes, the fields read
 * here at these offsets (kernels.py checks the dtype before it hands records over as bytes). */
enum { MV_SIZE = 40, MV_SOURCE = 0, MV_W = 4, MV_H = 5, MV_DST_X = 10, MV_DST_Y = 12, MV_MOTION_X = 24,
       MV_MOTION_Y = 28, MV_SCALE = 32 };

static inline int32_t
mv_i32(const unsigned char *record, int offset)
{
    int32_t v;
    memcpy(&v, record + offset, sizeof v);
    return v;
}

static inline int32_t
mv_i16(const unsigned char *record, int offset)
{
    int16_t v;
    memcpy(&v, record + offset, sizeof v);
    return v;
}

static inline int32_t
floor_div(int32_t a, int32_t b) /* numpy's // of integers (b > 0) */
{
    const int32_t q = a / b;
    return q - ((a % b != 0) & (a < 0));
}

/* The frames' records, each a C-contiguous uint8 buffer of whole records (one per frame, empty for none). */
static int
get_record_list(PyObject *obj, ArrayList *list, const char *name)
{
    if (get_array_list(obj, list, "B", 1, NULL, name, NULL) < 0) { /* (any lengths) */
        return -1;
    }
    for (Py_ssize_t b = 0; b < list->count; b++) {
        if (list->views[b].shape[0] % MV_SIZE) {
            PyErr_Format(PyExc_ValueError, "%s: frame %zd is not whole 40-byte records", name, b);
            return -1;
        }
    }
    return 0;
}

/* mv_fields(records, field, has, block) -> bool
 *
 * motion_vectors.motion_fields from each frame's AVMotionVector records (`records`: a list of their bytes, frame b
 * the b-th): record i covers the block cells [dst_y // block - h // (2 block), + max(h // block, 1)) x (the same in
 * x) of its frame (clipped to the grid); `field` float32 [B, rows, cols, 4] gets its (motion_x, motion_y) /
 * max(motion_scale, 1) (computed in double, as numpy divides an int32 by a float32, then rounded to float32) in the
 * pair of its direction (source > 0: list 1), `has` uint8 [B, rows, cols, 2] a 1. Both must come in zeroed. Returns
 * False, leaving the outputs partly written, when two records of one frame and direction cover the same cell: the
 * codecs never do that, and the numpy version's order of writes decides such a cell, so the caller redoes the batch
 * with it. */
static PyObject *
mv_fields(PyObject *self, PyObject *args)
{
    PyObject *records_obj, *field_obj, *has_obj;
    int block;
    if (!PyArg_ParseTuple(args, "OOOi", &records_obj, &field_obj, &has_obj, &block)) {
        return NULL;
    }
    Py_buffer field_view, has_view;
    int held = 0;
    ArrayList records = {0};
    PyObject *result = NULL;
    if (get_array(field_obj, &field_view, "f", 4, 1, 0, "field") < 0) goto done;
    held++;
    if (get_array(has_obj, &has_view, "B", 4, 1, 0, "has") < 0) goto done;
    held++;
    if (get_record_list(records_obj, &records, "records") < 0) goto done;
    const Py_ssize_t count = field_view.shape[0], rows = field_view.shape[1], cols = field_view.shape[2];
    if (block < 1 || records.count != count || field_view.shape[3] != 4 || has_view.shape[0] != count ||
        has_view.shape[1] != rows || has_view.shape[2] != cols || has_view.shape[3] != 2) {
        PyErr_SetString(PyExc_ValueError,
                        "mv_fields: one record list per frame, field [B, rows, cols, 4], has [.., 2]");
        goto done;
    }
    float *field = field_view.buf;
    unsigned char *has = has_view.buf;
    int clean = 1;
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t b = 0; b < count && clean; b++) {
        const unsigned char *data = records.data[b];
        const Py_ssize_t num = records.views[b].shape[0] / MV_SIZE, base = b * rows * cols;
        for (Py_ssize_t i = 0; i < num && clean; i++) {
            const unsigned char *record = data + i * MV_SIZE;
            const int32_t w = record[MV_W], h = record[MV_H], direction = mv_i32(record, MV_SOURCE) > 0;
            const int32_t top = floor_div(mv_i16(record, MV_DST_Y), block) - h / (2 * block);
            const int32_t left = floor_div(mv_i16(record, MV_DST_X), block) - w / (2 * block);
            const int32_t size_h = h / block > 1 ? h / block : 1, size_w = w / block > 1 ? w / block : 1;
            uint16_t scale_bits;
            memcpy(&scale_bits, record + MV_SCALE, sizeof scale_bits);
            const float scale = (float)scale_bits > 1.0f ? (float)scale_bits : 1.0f;
            const float vx = (float)((double)mv_i32(record, MV_MOTION_X) / (double)scale);
            const float vy = (float)((double)mv_i32(record, MV_MOTION_Y) / (double)scale);
            Py_ssize_t r0 = top < 0 ? 0 : top, r1 = (Py_ssize_t)top + size_h;
            Py_ssize_t c0 = left < 0 ? 0 : left, c1 = (Py_ssize_t)left + size_w;
            r1 = r1 > rows ? rows : r1;
            c1 = c1 > cols ? cols : c1;
            for (Py_ssize_t r = r0; r < r1; r++) {
                for (Py_ssize_t c = c0; c < c1; c++) {
                    const Py_ssize_t cell = ((base + r * cols + c) << 1) + direction;
                    clean &= !has[cell];
                    has[cell] = 1;
                    field[2 * cell] = vx;
                    field[2 * cell + 1] = vy;
                }
            }
        }
    }
    Py_END_ALLOW_THREADS
    result = PyBool_FromLong(clean);
done:
    release_array_list(&records);
    if (held > 1) PyBuffer_Release(&has_view);
    if (held > 0) PyBuffer_Release(&field_view);
    return result;
}

/* mv_blocks(records) -> bytes: per frame (a list of its records' bytes, as mv_fields), 8 when every partition is
 * at least 8x8 with its top-left corner (dst - size / 2) on the 8-px grid, or when it has none, else 4
 * (motion_vectors.field_blocks). */
static PyObject *
mv_blocks(PyObject *self, PyObject *args)
{
    PyObject *records_obj;
    if (!PyArg_ParseTuple(args, "O", &records_obj)) {
        return NULL;
    }
    ArrayList records = {0};
    PyObject *result = NULL;
    if (get_record_list(records_obj, &records, "records") < 0) goto done;
    result = PyBytes_FromStringAndSize(NULL, records.count);
    if (result == NULL) goto done;
    char *blocks = PyBytes_AS_STRING(result);
    for (Py_ssize_t b = 0; b < records.count; b++) {
        const unsigned char *data = records.data[b];
        const Py_ssize_t num = records.views[b].shape[0] / MV_SIZE;
        int aligned = 1;
        for (Py_ssize_t i = 0; i < num && aligned; i++) {
            const unsigned char *record = data + i * MV_SIZE;
            const int32_t w = record[MV_W], h = record[MV_H];
            const int32_t left = mv_i16(record, MV_DST_X) - (w >> 1), top = mv_i16(record, MV_DST_Y) - (h >> 1);
            aligned = w >= 8 && h >= 8 && ((left | top) & 7) == 0;
        }
        blocks[b] = aligned ? 8 : 4;
    }
done:
    release_array_list(&records);
    return result;
}

/* mv_cover(records, mb_rows, mb_cols) -> (macroblocks, later): of one frame's records (bytes of whole records), how
 * many of the mb_rows x mb_cols 16x16 macroblocks hold the centre of at least one (dst // 16, clamped to the grid:
 * truncation toward zero clamps the same as numpy's floor division there), and whether any record is predicted from
 * a later frame (source > 0). pipeline.frame_kind's numpy version took 30-40 us a frame on the decoding thread (a
 * structured-array field per question), this a few. The GIL is kept: shorter than a hand-off. */
static PyObject *
mv_cover(PyObject *self, PyObject *args)
{
    Py_buffer view;
    Py_ssize_t mb_rows, mb_cols;
    if (!PyArg_ParseTuple(args, "y*nn", &view, &mb_rows, &mb_cols)) {
        return NULL;
    }
    if (mb_rows < 1 || mb_cols < 1 || view.len % MV_SIZE) {
        PyBuffer_Release(&view);
        PyErr_SetString(PyExc_ValueError, "need a grid of at least one macroblock and whole 40-byte records");
        return NULL;
    }
    unsigned char *seen = calloc((size_t)(mb_rows * mb_cols), 1);
    if (seen == NULL) {
        PyBuffer_Release(&view);
        return PyErr_NoMemory();
    }
    const unsigned char *data = view.buf;
    Py_ssize_t coded = 0;
    int later = 0;
    for (Py_ssize_t i = 0; i < view.len / MV_SIZE; i++) {
        const unsigned char *record = data + i * MV_SIZE;
        later |= mv_i32(record, MV_SOURCE) > 0;
        Py_ssize_t row = mv_i16(record, MV_DST_Y) / 16, col = mv_i16(record, MV_DST_X) / 16;
        row = row < 0 ? 0 : (row >= mb_rows ? mb_rows - 1 : row);
        col = col < 0 ? 0 : (col >= mb_cols ? mb_cols - 1 : col);
        coded += !seen[row * mb_cols + col];
        seen[row * mb_cols + col] = 1;
    }
    free(seen);
    PyBuffer_Release(&view);
    return Py_BuildValue("nN", coded, PyBool_FromLong(later));
}

/* res[j] = the sum over the n pairs p of values[cols[p], j] * weights[p] in the order of numpy's pairwise summation
 * (`pairwise_sum` of its float32 add reduction): fewer than 8 terms added one by one from 0; up to 128 in 8
 * interleaved partial sums combined as ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7)), the last n % 8 added
 * after; more split in two at a multiple of 8 below n / 2. `scratch` holds 8 rows of m floats per level. */
static void
pairwise_rows(const float *values, Py_ssize_t m, const int32_t *cols, const float *weights, Py_ssize_t n,
              float *res, float *scratch)
{
    if (n < 8) {
        for (Py_ssize_t j = 0; j < m; j++) {
            res[j] = 0.0f;
        }
        for (Py_ssize_t p = 0; p < n; p++) {
            const float *row = values + (Py_ssize_t)cols[p] * m;
            const float w = weights[p];
            for (Py_ssize_t j = 0; j < m; j++) {
                res[j] += row[j] * w;
            }
        }
        return;
    }
    if (n <= 128) {
        for (int k = 0; k < 8; k++) {
            const float *row = values + (Py_ssize_t)cols[k] * m;
            float *r = scratch + k * m;
            for (Py_ssize_t j = 0; j < m; j++) {
                r[j] = row[j] * weights[k];
            }
        }
        Py_ssize_t p = 8;
        for (; p < n - n % 8; p += 8) {
            for (int k = 0; k < 8; k++) {
                const float *row = values + (Py_ssize_t)cols[p + k] * m;
                const float w = weights[p + k];
                float *r = scratch + k * m;
                for (Py_ssize_t j = 0; j < m; j++) {
                    r[j] += row[j] * w;
                }
            }
        }
        const float *r0 = scratch, *r1 = r0 + m, *r2 = r1 + m, *r3 = r2 + m, *r4 = r3 + m, *r5 = r4 + m,
                    *r6 = r5 + m, *r7 = r6 + m;
        for (Py_ssize_t j = 0; j < m; j++) {
            res[j] = ((r0[j] + r1[j]) + (r2[j] + r3[j])) + ((r4[j] + r5[j]) + (r6[j] + r7[j]));
        }
        for (; p < n; p++) {
            const float *row = values + (Py_ssize_t)cols[p] * m;
            const float w = weights[p];
            for (Py_ssize_t j = 0; j < m; j++) {
                res[j] += row[j] * w;
            }
        }
        return;
    }
    Py_ssize_t half = n / 2;
    half -= half % 8;
    float *second = scratch + 8 * m; /* the next level's rows start after this level's */
    pairwise_rows(values, m, cols, weights, half, res, second + m);
    pairwise_rows(values, m, cols + half, weights + half, n - half, second, second + m);
    for (Py_ssize_t j = 0; j < m; j++) {
        res[j] += second[j];
    }
}

/* sparse_rows(values, cols, weights, bounds, targets, out)
 *
 * out += M @ values for a sparse M [G, n] given as segments (saliency._SparseRows): segment s adds, to row
 * targets[s] of `out` [G, m], the products values[cols[p]] * weights[p] for p in [bounds[s], bounds[s + 1]),
 * reduced as np.add.reduceat reduces them (the first product, plus the pairwise sum of the rest), and segments
 * come in the order numpy applies them, so every float32 rounding is the same. values float32 [n, m]; cols,
 * bounds, targets int32; weights float32. */
static PyObject *
sparse_rows(PyObject *self, PyObject *args)
{
    PyObject *objs[6];
    if (!PyArg_ParseTuple(args, "OOOOOO", &objs[0], &objs[1], &objs[2], &objs[3], &objs[4], &objs[5])) {
        return NULL;
    }
    static const char *names[6] = {"values", "cols", "weights", "bounds", "targets", "out"};
    static const char *formats[6] = {"f", "i", "f", "i", "i", "f"};
    static const int dims[6] = {2, 1, 1, 1, 1, 2};
    Py_buffer views[6];
    int held = 0;
    PyObject *result = NULL;
    float *acc = NULL;
    for (; held < 6; held++) {
        if (get_array(objs[held], &views[held], formats[held], dims[held], held == 5, 0, names[held]) < 0) goto done;
    }
    const Py_ssize_t n = views[0].shape[0], m = views[0].shape[1], pairs = views[1].shape[0];
    const Py_ssize_t segments = views[4].shape[0], rows = views[5].shape[0];
    if (views[2].shape[0] != pairs || views[3].shape[0] != segments + 1 || views[5].shape[1] != m) {
        PyErr_SetString(PyExc_ValueError, "sparse_rows: inconsistent shapes");
        goto done;
    }
    const float *values = views[0].buf, *weights = views[2].buf;
    const int32_t *cols = views[1].buf, *bounds = views[3].buf, *targets = views[4].buf;
    float *out = views[5].buf;
    if (segments > 0 && (bounds[0] < 0 || bounds[segments] > pairs)) {
        PyErr_SetString(PyExc_IndexError, "sparse_rows: bounds out of range");
        goto done;
    }
    Py_ssize_t longest = 1;
    for (Py_ssize_t s = 0; s < segments; s++) {
        if (bounds[s + 1] <= bounds[s] || targets[s] < 0 || targets[s] >= rows) {
            PyErr_SetString(PyExc_IndexError, "sparse_rows: empty segment or target out of range");
            goto done;
        }
        longest = bounds[s + 1] - bounds[s] > longest ? bounds[s + 1] - bounds[s] : longest;
    }
    for (Py_ssize_t p = 0; p < pairs; p++) {
        if (cols[p] < 0 || cols[p] >= n) {
            PyErr_SetString(PyExc_IndexError, "sparse_rows: column out of range");
            goto done;
        }
    }
    /* acc, the pairwise result, and 9 rows per level of pairwise recursion (levels: log2(longest / 128) + 1) */
    Py_ssize_t levels = 1;
    for (Py_ssize_t len = longest; len > 128; len /= 2) {
        levels++;
    }
    acc = PyMem_Malloc(sizeof(float) * (size_t)((2 + 9 * levels) * m + 1));
    if (acc == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    float *rest = acc + m, *scratch = rest + m;
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t s = 0; s < segments; s++) {
        const Py_ssize_t start = bounds[s], count = bounds[s + 1] - bounds[s];
        const float *first = values + (Py_ssize_t)cols[start] * m;
        const float weight = weights[start];
        for (Py_ssize_t j = 0; j < m; j++) {
            acc[j] = first[j] * weight;
        }
        if (count > 1) {
            pairwise_rows(values, m, cols + start + 1, weights + start + 1, count - 1, rest, scratch);
            for (Py_ssize_t j = 0; j < m; j++) {
                acc[j] += rest[j];
            }
        }
        float *target = out + (Py_ssize_t)targets[s] * m;
        for (Py_ssize_t j = 0; j < m; j++) {
            target[j] += acc[j];
        }
    }
    Py_END_ALLOW_THREADS
    result = Py_None;
    Py_INCREF(result);
done:
    PyMem_Free(acc);
    for (int k = 0; k < held; k++) {
        PyBuffer_Release(&views[k]);
    }
    return result;
}

/* `rows` rows of `bytes` bytes from src to dst (their pitches); inlined, a constant `bytes` becomes a fixed-size
 * copy. */
static inline __attribute__((always_inline)) void
copy_rows(unsigned char *dst, const unsigned char *src, Py_ssize_t rows, size_t bytes, size_t dst_pitch,
          size_t src_pitch)
{
    for (Py_ssize_t y = 0; y < rows; y++, src += src_pitch, dst += dst_pitch) {
        memcpy(dst, src, bytes);
    }
}

/* pack_cells(frames, frame_of, cell_rows, cell_cols, slots, patch, pad_top, pad_left, mosaics[, extra_y, extra_x])
 *
 * The copies of packing.pack_mosaics: kept cell r (canvas cell (cell_rows[r], cell_cols[r]) of frame frame_of[r])
 * goes to mosaic slots[r] // G^2, cell ((slots[r] % G^2) // G, slots[r] % G), G = S // patch. `frames` holds uint8
 * [Hn, Wn, C] content rectangles placed on the S x S canvas at (pad_top, pad_left) (C = 3 for RGB, 1 for a plane);
 * the parts of a cell outside the content stay as they are in `mosaics` uint8 [N, S, S, C] (the caller makes the
 * letterbox padding black), whose rows and images may be padded (strides). With `extra_y`/`extra_x`, each block
 * copied is that many rows/columns larger than the cell (its canvas rectangle grown down and right) and the blocks
 * tile `mosaics` [N, G * (patch + extra_y), G * (patch + extra_x), C] instead (`planar.PlanarFrames.mosaics`: cells
 * that start inside a 4:2:0 block, with the samples that complete it). */
static PyObject *
pack_cells(PyObject *self, PyObject *args)
{
    PyObject *frames_obj, *frame_obj, *rows_obj, *cols_obj, *slots_obj, *mosaics_obj;
    int patch, pad_top, pad_left, extra_y = 0, extra_x = 0;
    if (!PyArg_ParseTuple(args, "OOOOOiiiO|ii", &frames_obj, &frame_obj, &rows_obj, &cols_obj, &slots_obj, &patch,
                          &pad_top, &pad_left, &mosaics_obj, &extra_y, &extra_x)) {
        return NULL;
    }
    Py_buffer frame_of, cell_rows, cell_cols, cell_slots, mosaics;
    Py_buffer *views[5] = {&frame_of, &cell_rows, &cell_cols, &cell_slots, &mosaics};
    int held = 0;
    ArrayList frames = {0};
    PyObject *result = NULL;
    if (get_array(frame_obj, &frame_of, "i", 1, 0, 0, "frame_of") < 0) goto done;
    held++;
    if (get_array(rows_obj, &cell_rows, "i", 1, 0, 0, "cell_rows") < 0) goto done;
    held++;
    if (get_array(cols_obj, &cell_cols, "i", 1, 0, 0, "cell_cols") < 0) goto done;
    held++;
    if (get_array(slots_obj, &cell_slots, "i", 1, 0, 0, "slots") < 0) goto done;
    held++;
    if (get_array(mosaics_obj, &mosaics, "B", 4, 1, 1, "mosaics") < 0) goto done;
    held++;
    const Py_ssize_t kept = frame_of.shape[0], images = mosaics.shape[0], height = mosaics.shape[1];
    const Py_ssize_t width = mosaics.shape[2], channels = mosaics.shape[3];
    const Py_ssize_t block_h = (Py_ssize_t)patch + extra_y, block_w = (Py_ssize_t)patch + extra_x;
    /* rows may be padded (the planes of a decoded-frame buffer): images and rows by their strides */
    const Py_ssize_t image_pitch = mosaics.strides[0], row_pitch = mosaics.strides[1];
    if (patch < 1 || extra_y < 0 || extra_x < 0 || cell_rows.shape[0] != kept || cell_cols.shape[0] != kept ||
        cell_slots.shape[0] != kept || height / block_h != width / block_w || mosaics.strides[2] != channels ||
        row_pitch < width * channels || image_pitch < height * row_pitch) {
        PyErr_SetString(PyExc_ValueError, "pack_cells: inconsistent shapes");
        goto done;
    }
    const Py_ssize_t grid = width / block_w, cells = grid * grid;
    Py_ssize_t frame_shape[3] = {-1, -1, channels};
    if (get_array_list(frames_obj, &frames, "B", 3, frame_shape, "frames[i]",
                       "pack_cells: every frame must be [Hn, Wn, C] of one size, C that of the mosaics") < 0) {
        goto done;
    }
    const Py_ssize_t num_frames = frames.count, content_h = frame_shape[0], content_w = frame_shape[1];
    const unsigned char **frame_data = (const unsigned char **)frames.data;
    const int32_t *which = frame_of.buf, *hs = cell_rows.buf, *ws = cell_cols.buf, *slots = cell_slots.buf;
    for (Py_ssize_t r = 0; r < kept; r++) {
        if (which[r] < 0 || which[r] >= num_frames || hs[r] < 0 || hs[r] >= grid || ws[r] < 0 || ws[r] >= grid) {
            PyErr_SetString(PyExc_IndexError, "pack_cells: frame or cell out of range");
            goto done;
        }
        if (slots[r] < 0 || slots[r] >= images * cells) {
            PyErr_SetString(PyExc_ValueError, "pack_cells: more cells than the mosaics hold");
            goto done;
        }
    }
    unsigned char *out = mosaics.buf;
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t r = 0; r < kept; r++) {
        const Py_ssize_t image = slots[r] / cells, slot = slots[r] % cells;
        unsigned char *cell =
            out + image * image_pitch + (slot / grid) * block_h * row_pitch + (slot % grid) * block_w * channels;
        /* the block's canvas rectangle, in content coordinates, clipped to the content */
        Py_ssize_t y0 = (Py_ssize_t)hs[r] * patch - pad_top, x0 = (Py_ssize_t)ws[r] * patch - pad_left;
        Py_ssize_t ya = y0 < 0 ? 0 : y0, yb = y0 + block_h > content_h ? content_h : y0 + block_h;
        Py_ssize_t xa = x0 < 0 ? 0 : x0, xb = x0 + block_w > content_w ? content_w : x0 + block_w;
        if (ya >= yb || xa >= xb) {
            continue;
        }
        const unsigned char *src = frame_data[which[r]] + (ya * content_w + xa) * channels;
        unsigned char *dst = cell + (ya - y0) * row_pitch + (xa - x0) * channels;
        const size_t bytes = (size_t)(xb - xa) * channels, src_pitch = (size_t)(content_w * channels);
        /* the usual row lengths (16-px luma, 8-px chroma cells) as constants: the compiler inlines those copies,
         * where a call to memcpy per 8-16 bytes cost more than the copy */
        if (bytes == 16) {
            copy_rows(dst, src, yb - ya, 16, (size_t)row_pitch, src_pitch);
        } else if (bytes == 8) {
            copy_rows(dst, src, yb - ya, 8, (size_t)row_pitch, src_pitch);
        } else if (bytes == 18) { /* a 16-px luma cell and the columns completing its 4:2:0 blocks */
            copy_rows(dst, src, yb - ya, 18, (size_t)row_pitch, src_pitch);
        } else if (bytes == 9) {
            copy_rows(dst, src, yb - ya, 9, (size_t)row_pitch, src_pitch);
        } else {
            copy_rows(dst, src, yb - ya, bytes, (size_t)row_pitch, src_pitch);
        }
    }
    Py_END_ALLOW_THREADS
    result = Py_None;
    Py_INCREF(result);
done:
    release_array_list(&frames);
    for (int k = 0; k < held; k++) {
        PyBuffer_Release(views[k]);
    }
    return result;
}

/* cut_cells(buf, pitch, images, grid, patch, grow_y, grow_x, channels)
 *
 * In place, the cells out of the blocks of pack_cells' `extra` = (2 grow_y, 2 grow_x): `buf` (uint8, 1-D: the
 * bytes of an image of images * grid blocks of patch + 2 grow_y rows by grid blocks of patch + 2 grow_x columns, rows
 * `pitch` bytes apart, `channels` bytes per pixel) becomes, from its first byte, the contiguous uint8 [images,
 * grid * patch, grid * patch, channels] of each block's middle patch x patch pixels. Every byte moves to an address
 * no higher than its own, in increasing order, so nothing is read after it was overwritten (no second image: the
 * mosaics of an odd letterbox pad are made in the converted picture's own memory). */
static PyObject *
cut_cells(PyObject *self, PyObject *args)
{
    PyObject *buf_obj;
    Py_ssize_t pitch;
    int images, grid, patch, grow_y, grow_x, channels;
    if (!PyArg_ParseTuple(args, "Oniiiiii", &buf_obj, &pitch, &images, &grid, &patch, &grow_y, &grow_x, &channels)) {
        return NULL;
    }
    Py_buffer buf;
    if (get_array(buf_obj, &buf, "B", 1, 1, 0, "buf") < 0) {
        return NULL;
    }
    const Py_ssize_t block_h = (Py_ssize_t)patch + 2 * grow_y, block_w = (Py_ssize_t)patch + 2 * grow_x;
    const Py_ssize_t rows = (Py_ssize_t)images * grid * block_h, in_row = (Py_ssize_t)grid * block_w * channels;
    const Py_ssize_t out_row = (Py_ssize_t)grid * patch * channels, cell = (Py_ssize_t)patch * channels;
    if (images < 0 || grid < 0 || patch < 1 || grow_y < 0 || grow_x < 0 || channels < 1 || pitch < in_row ||
        (rows > 0 && (rows - 1) * pitch + in_row > buf.shape[0])) {
        PyErr_SetString(PyExc_ValueError, "cut_cells: the buffer is smaller than its blocks");
        PyBuffer_Release(&buf);
        return NULL;
    }
    unsigned char *data = buf.buf;
    Py_BEGIN_ALLOW_THREADS
    Py_ssize_t out = 0; /* the next output row */
    for (Py_ssize_t band = 0; band < (Py_ssize_t)images * grid; band++) {
        for (Py_ssize_t y = 0; y < patch; y++, out++) {
            const unsigned char *src = data + (band * block_h + grow_y + y) * pitch + (Py_ssize_t)grow_x * channels;
            unsigned char *dst = data + out * out_row;
            if (!grow_x) {
                memmove(dst, src, (size_t)out_row);
                continue;
            }
            for (Py_ssize_t c = 0; c < grid; c++) {
                memmove(dst + c * cell, src + c * block_w * channels, (size_t)cell);
            }
        }
    }
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&buf);
    Py_RETURN_NONE;
}

/* A float32's bits as an unsigned key in the order of the values (negative values reversed below the positives). */
static inline uint32_t
float_key(float v)
{
    uint32_t u;
    memcpy(&u, &v, sizeof u);
    return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}

static inline float
key_float(uint32_t key)
{
    uint32_t u = (key & 0x80000000u) ? (key & 0x7fffffffu) : ~key;
    float v;
    memcpy(&v, &u, sizeof v);
    return v;
}

/* The k-th smallest (0-based) of the n keys, by radix selection on 11, 11 and 10 bits from pass `first` (0-2) on,
 * the digits of the passes before it being `prefix`: each pass counts the keys left and keeps those of the chosen
 * bucket (copied to `scratch`, n entries; `keys` is not written). Its time does not depend on the data: a
 * quickselect slows down on the long runs of equal values of energy maps (half of a residual map is 0, a few hundred
 * distinct levels in the rest: numpy's partition took 0.84 ms for 8 x 14400 such values, 0.22 ms for random ones). */
static const int radix_shifts[3] = {21, 10, 0}, radix_widths[3] = {11, 11, 10};

static uint32_t
radix_select(const uint32_t *keys, Py_ssize_t n, Py_ssize_t k, uint32_t *scratch, int first, uint32_t prefix)
{
    uint32_t counts[2][2048];
    const uint32_t *src = keys;
    Py_ssize_t size = n;
    for (int pass = first; pass < 3; pass++) {
        const int shift = radix_shifts[pass];
        const uint32_t buckets = 1u << radix_widths[pass], digit_mask = buckets - 1;
        /* two interleaved histograms: runs of one value would otherwise wait on the same counter every step */
        memset(counts, 0, sizeof(counts));
        Py_ssize_t i = 0;
        for (; i + 1 < size; i += 2) {
            counts[0][(src[i] >> shift) & digit_mask]++;
            counts[1][(src[i + 1] >> shift) & digit_mask]++;
        }
        if (i < size) {
            counts[0][(src[i] >> shift) & digit_mask]++;
        }
        for (uint32_t d = 0; d < buckets; d++) {
            counts[0][d] += counts[1][d];
        }
        uint32_t digit = 0;
        while (k >= (Py_ssize_t)counts[0][digit]) {
            k -= counts[0][digit];
            digit++;
        }
        prefix |= digit << shift;
        if (pass == 2) {
            break;
        }
        /* keep the keys of the chosen bucket (in place once they are in scratch: the write index never passes the
         * read index) */
        Py_ssize_t kept = 0;
        for (Py_ssize_t j = 0; j < size; j++) {
            const uint32_t key = src[j];
            scratch[kept] = key; /* written always, kept when it is in the bucket: no branch to mispredict */
            kept += ((key >> shift) & digit_mask) == digit;
        }
        src = scratch;
        size = kept;
    }
    return prefix;
}

/* The low-th and high-th smallest keys (high <= low + 1) of a row of n floats, with `work` of 3n keys. The first pass
 * makes the keys and counts their top 11 bits at once (four interleaved histograms: half a residual map is one value,
 * most of a motion field's components too), the keys of the low-th's bucket are kept apart, and the high-th is looked
 * for among them: the whole row is read again only when the low-th is the last key of its bucket. The calls of one
 * select_patches on a 4-s 360p clip (camera medians of 8 x 3600 vector components, percentiles of 8 x 14400 map
 * values): 10 -> 3.3 ms. */
static void
row_order_stats(const float *row, Py_ssize_t n, Py_ssize_t low, Py_ssize_t high, uint32_t *work, uint32_t *out_low,
                uint32_t *out_high)
{
    uint32_t counts[4][2048];
    uint32_t *keys = work, *bucket = work + n, *scratch = work + 2 * n;
    memset(counts, 0, sizeof(counts));
    Py_ssize_t i = 0;
    for (; i + 3 < n; i += 4) {
        for (int j = 0; j < 4; j++) {
            const uint32_t key = float_key(row[i + j]);
            keys[i + j] = key;
            counts[j][key >> 21]++;
        }
    }
    for (; i < n; i++) {
        keys[i] = float_key(row[i]);
        counts[0][keys[i] >> 21]++;
    }
    for (uint32_t d = 0; d < 2048; d++) {
        counts[0][d] += counts[1][d] + counts[2][d] + counts[3][d];
    }
    uint32_t digit = 0;
    Py_ssize_t below = 0; /* keys in the buckets before the low-th's */
    while (low - below >= (Py_ssize_t)counts[0][digit]) {
        below += counts[0][digit];
        digit++;
    }
    Py_ssize_t size = 0;
    for (Py_ssize_t j = 0; j < n; j++) {
        const uint32_t key = keys[j];
        bucket[size] = key; /* written always, kept when it is in the bucket (as in radix_select) */
        size += (key >> 21) == digit;
    }
    /* One value in the bucket (a run of equal values: the zeros of a map, the integer vectors of a field) is the
     * low-th, with no further pass. (Checked only when the bucket's ends agree: the check is one more read of it.) */
    uint32_t differ = bucket[0] ^ bucket[size - 1];
    for (Py_ssize_t j = 0; j < size && !differ; j += 256) {
        const Py_ssize_t end = j + 256 < size ? j + 256 : size;
        for (Py_ssize_t m = j; m < end; m++) {
            differ |= bucket[m] ^ bucket[0];
        }
    }
    const int one_value = !differ;
    const uint32_t low_key = one_value ? bucket[0] : radix_select(bucket, size, low - below, scratch, 1, digit << 21);
    *out_low = low_key;
    if (high == low) {
        *out_high = low_key;
        return;
    }
    /* the high-th is the low-th again while enough keys are <= it, else the smallest key above it */
    Py_ssize_t at_most = below;
    uint32_t above = UINT32_MAX;
    if (one_value) {
        at_most += size;
    } else {
        for (Py_ssize_t j = 0; j < size; j++) {
            const uint32_t key = bucket[j];
            at_most += key <= low_key;
            above = key > low_key && key < above ? key : above;
        }
    }
    if (high < at_most) {
        *out_high = low_key;
        return;
    }
    if (above == UINT32_MAX) { /* the low-th ends its bucket: the smallest key of a later bucket */
        for (Py_ssize_t j = 0; j < n; j++) {
            above = keys[j] > low_key && keys[j] < above ? keys[j] : above;
        }
    }
    *out_high = above;
}

/* order_stats(rows, low, high, out_low, out_high): the low-th and high-th smallest (0-based, low <= high <= low + 1,
 * as percentiles and medians need) of each row of rows float32 [B, n] (finite values): the values np.partition puts
 * at those places. */
static PyObject *
order_stats(PyObject *self, PyObject *args)
{
    PyObject *rows_obj, *low_obj, *high_obj;
    Py_ssize_t low, high;
    if (!PyArg_ParseTuple(args, "OnnOO", &rows_obj, &low, &high, &low_obj, &high_obj)) {
        return NULL;
    }
    Py_buffer rows, out_low, out_high;
    Py_buffer *views[3] = {&rows, &out_low, &out_high};
    int held = 0;
    PyObject *result = NULL;
    uint32_t *work = NULL;
    if (get_array(rows_obj, &rows, "f", 2, 0, 0, "rows") < 0) goto done;
    held++;
    if (get_array(low_obj, &out_low, "f", 1, 1, 0, "out_low") < 0) goto done;
    held++;
    if (get_array(high_obj, &out_high, "f", 1, 1, 0, "out_high") < 0) goto done;
    held++;
    const Py_ssize_t count = rows.shape[0], n = rows.shape[1];
    if (out_low.shape[0] != count || out_high.shape[0] != count || low < 0 || high < low || high > low + 1 ||
        high >= n) {
        PyErr_SetString(PyExc_ValueError, "order_stats: needs 0 <= low <= high <= low + 1 < n + 1, [B] outputs");
        goto done;
    }
    work = PyMem_Malloc(sizeof(uint32_t) * (size_t)(3 * n));
    if (work == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    const float *src = rows.buf;
    float *lows = out_low.buf, *highs = out_high.buf;
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t b = 0; b < count; b++) {
        uint32_t low_key, high_key;
        row_order_stats(src + b * n, n, low, high, work, &low_key, &high_key);
        lows[b] = key_float(low_key);
        highs[b] = key_float(high_key);
    }
    Py_END_ALLOW_THREADS
    result = Py_None;
    Py_INCREF(result);
done:
    PyMem_Free(work);
    for (int k = 0; k < held; k++) {
        PyBuffer_Release(views[k]);
    }
    return result;
}

/* set_simd(on) -> bool: turn the AVX2 code of mc_error, block_match and box_mean on (where the CPU has AVX2) or off;
 * returns whether it was on. For tests and comparisons: both give the same numbers. */
static PyObject *
set_simd(PyObject *self, PyObject *args)
{
    int on;
    if (!PyArg_ParseTuple(args, "p", &on)) {
        return NULL;
    }
    int was = use_avx2;
#if CV_AVX2_BUILT
    use_avx2 = on && cpu_has_avx2();
#endif
    return PyBool_FromLong(was);
}

static PyMethodDef methods[] = {
    {"set_simd", set_simd, METH_VARARGS, "Turn the AVX2 code on or off (tests, comparisons)."},
    {"box_mean", box_mean, METH_VARARGS, "Block means of a uint8 or uint16 plane (see cv_reader.kernels)."},
    {"block_match", block_match, METH_VARARGS, "Full-search block matching (see cv_reader.kernels)."},
    {"mv_fields", mv_fields, METH_VARARGS, "Motion-vector records on a block grid (see cv_reader.kernels)."},
    {"mv_blocks", mv_blocks, METH_VARARGS, "The block grid each frame's records fit (see cv_reader.kernels)."},
    {"mv_cover", mv_cover, METH_VARARGS, "Macroblocks holding a record, and any later source (see cv_reader.kernels)."},
    {"sparse_rows", sparse_rows, METH_VARARGS, "Sparse row sums in numpy's order (see cv_reader.kernels)."},
    {"pack_cells", pack_cells, METH_VARARGS, "Kept cells copied into mosaics (see cv_reader.kernels)."},
    {"cut_cells", cut_cells, METH_VARARGS, "Cells cut out of grown blocks, in place (see cv_reader.kernels)."},
    {"order_stats", order_stats, METH_VARARGS, "Two order statistics of each row (see cv_reader.kernels)."},
    {"mc_error", mc_error, METH_VARARGS, "Motion-compensated prediction error (see cv_reader.kernels)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_kernels", NULL, -1, methods};

PyMODINIT_FUNC
PyInit__kernels(void)
{
#if CV_AVX2_BUILT
    use_avx2 = cpu_has_avx2();
#endif
    PyObject *mod = PyModule_Create(&module);
    if (mod != NULL && PyModule_AddIntConstant(mod, "VERSION", KERNELS_VERSION) < 0) {
        Py_DECREF(mod);
        return NULL;
    }
    return mod;
}
