/* Fused SCA forward for inference: float32, NCHW, contiguous, on the CPU.
 *
 * The eager module reads the feature map four times (pool along W, pool along H, two gate
 * multiplies). This kernel streams channels in cache-sized blocks: it pools a block (plus the
 * k/2 halo channels whose pooled values the block's gates need), computes the block's gates,
 * then gates the block while it is still in cache. The map comes from memory once and is
 * written once, as in a channel-only module such as ECA.
 *
 * Called through ctypes by sca_kernel.py, which builds this file on first use. The results
 * match the eager module to float rounding (tests/test_sca_kernel.py). Layout of the weights
 * is PyTorch's: conv_h/conv_w (1, P, k, k) over the pooled plane taken as an (L, C) image,
 * conv_c (1, P, k); P = 2 planes (avg, max) for pool=avgmax, else 1.
 */
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define INLINE static inline __attribute__((always_inline))
#define STRIP 64 /* gate outputs computed per strip, kept in L1 */

enum { POOL_AVG = 0, POOL_MAX = 1, POOL_AVGMAX = 2 };

/* 1 / (1 + exp(-z)) with exp as 2^n e^f, |f| <= ln2 / 2, and Cephes' degree-6 polynomial
 * (relative error about 2e-7, like libm's expf): plain arithmetic, so gate loops vectorize,
 * which a call to expf prevents. */
INLINE float sigmoid(float z) {
    float x = -z < -87.0f ? -87.0f : (-z > 88.0f ? 88.0f : -z); /* not fminf/fmaxf: those do not vectorize */
    float n = floorf(x * 1.44269504088896341f + 0.5f);
    float f = x - n * 0.693359375f + n * 2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * f + 1.3981999507e-3f;
    p = p * f + 8.3334519073e-3f;
    p = p * f + 4.1665795894e-2f;
    p = p * f + 1.6666665459e-1f;
    p = p * f + 5.0000001201e-1f;
    p = p * f * f + f + 1.0f;
    int bits = ((int)n + 127) << 23;
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    return 1.0f / (1.0f + p * scale);
}

/* Four-float vectors (GCC vector extensions: SSE/NEON or scalar code, whatever the target has).
 * A row of W >= 4 floats is covered by whole vectors plus one that ends at the row's end and
 * overlaps the previous one; where an overlap would count twice, its repeated lanes are masked. */
typedef float v4 __attribute__((vector_size(16)));
typedef int v4i __attribute__((vector_size(16)));

INLINE v4 load4(const float *p) { v4 v; memcpy(&v, p, sizeof v); return v; }
INLINE void store4(float *p, v4 v) { memcpy(p, &v, sizeof v); }
INLINE v4 vmax4(v4 a, v4 b) { v4i gt = a > b; return (v4)((gt & (v4i)a) | (~gt & (v4i)b)); }
/* Lanes of a row's last, overlapping vector that the whole vectors before it did not cover. */
INLINE v4i tail_mask(int W) { v4i lane = {0, 1, 2, 3}; return lane >= 4 - W % 4; }

/* Offset of a row's i-th vector: the last one ends at the row's end. */
INLINE int chunk_at(int i, int W) { return 4 * i + 4 <= W ? 4 * i : W - 4; }

#define MAX_CHUNKS 16 /* rows up to 64 floats keep their column sums in registers */

/* Row, column and global mean (avg) and/or max of one H x W plane. Column accumulators live in
 * registers, not in cs/cm: a store to them followed by an overlapping load would stall. */
INLINE void pool_plane(const float *restrict p, int H, int W, int avg, int max, float *restrict rs,
                       float *restrict cs, float *restrict rm, float *restrict cm, float *gs, float *gm) {
    int chunks = (W + 3) / 4, tail = W % 4 != 0;
    if (W < 4 || chunks > MAX_CHUNKS) {
        float total = 0.f, top = -FLT_MAX;
        for (int w = 0; w < W; w++) cs[w] = 0.f, cm[w] = -FLT_MAX;
        for (int h = 0; h < H; h++) {
            const float *row = p + (long)h * W;
            float s = 0.f, m = -FLT_MAX;
            for (int w = 0; w < W; w++) {
                if (avg) s += row[w], cs[w] += row[w];
                if (max) m = row[w] > m ? row[w] : m, cm[w] = row[w] > cm[w] ? row[w] : cm[w];
            }
            rs[h] = s / (float)W, rm[h] = m;
            total += s, top = m > top ? m : top;
        }
        for (int w = 0; w < W; w++) cs[w] /= (float)H;
        *gs = total / ((float)H * (float)W), *gm = top;
        return;
    }
    v4i mask = tail_mask(W);
    if (avg) {
        v4 col[MAX_CHUNKS], all = {0.f, 0.f, 0.f, 0.f};
        for (int i = 0; i < chunks; i++) col[i] = all;
        for (int h = 0; h < H; h++) {
            const float *row = p + (long)h * W;
            v4 acc = {0.f, 0.f, 0.f, 0.f};
            for (int i = 0; i < chunks; i++) {
                v4 v = load4(row + chunk_at(i, W));
                if (tail && i == chunks - 1) v = (v4)((v4i)v & mask);
                acc += v, col[i] += v;
            }
            rs[h] = ((acc[0] + acc[1]) + (acc[2] + acc[3])) / (float)W;
            all += acc;
        }
        for (int i = chunks - 1; i >= 0; i--) store4(cs + chunk_at(i, W), col[i] / (float)H); /* tail first */
        *gs = ((all[0] + all[1]) + (all[2] + all[3])) / ((float)H * (float)W);
    }
    if (max) {
        v4 col[MAX_CHUNKS], lowest = {-FLT_MAX, -FLT_MAX, -FLT_MAX, -FLT_MAX}, top = lowest;
        for (int i = 0; i < chunks; i++) col[i] = lowest;
        for (int h = 0; h < H; h++) {
            const float *row = p + (long)h * W;
            v4 acc = lowest;
            for (int i = 0; i < chunks; i++) { /* max does not mind the overlap */
                v4 v = load4(row + chunk_at(i, W));
                acc = vmax4(acc, v), col[i] = vmax4(col[i], v);
            }
            float m = acc[0] > acc[1] ? acc[0] : acc[1];
            m = acc[2] > m ? acc[2] : m;
            rm[h] = acc[3] > m ? acc[3] : m;
            top = vmax4(top, acc);
        }
        for (int i = 0; i < chunks; i++) store4(cm + chunk_at(i, W), col[i]);
        float m = top[0] > top[1] ? top[0] : top[1];
        m = top[2] > m ? top[2] : m;
        *gm = top[3] > m ? top[3] : m;
    }
}

/* Sigmoid gates of window rows [c0, c1) for one spatial branch: a k x k conv over P zero-padded
 * pooled planes (rows of Lp = L + 2r floats; row t + r holds the block's channel t), as flat
 * shifted sums. out[(t - c0) * Lp + r + l] is the gate at (t, l); pad columns hold junk. */
INLINE void plane_gates_k(const float *restrict wt, float *const *planes, int P, int L, int k, int c0, int c1,
                          float *restrict out) {
    int r = k / 2, Lp = L + 2 * r;
    long end = (long)(c1 - c0) * Lp - r;
    for (long q0 = r; q0 < end; q0 += STRIP) {
        int n = end - q0 < STRIP ? (int)(end - q0) : STRIP;
        float acc[STRIP];
        for (int q = 0; q < n; q++) acc[q] = 0.f;
        for (int p = 0; p < P; p++) {
            const float *restrict base = planes[p] + (long)c0 * Lp + q0 - r;
            const float *restrict w = wt + p * k * k;
            for (int q = 0; q < n; q++) { /* all k * k taps per output: one store, not k * k */
                float s = acc[q];
                for (int j = 0; j < k; j++)
                    for (int i = 0; i < k; i++) s += w[i * k + j] * base[(long)j * Lp + i + q];
                acc[q] = s;
            }
        }
        for (int q = 0; q < n; q++) out[q0 + q] = sigmoid(acc[q]);
    }
}

/* One compiled copy for the default k = 3 (its taps unroll), one for any k. */
static void plane_gates(const float *wt, float *const *planes, int P, int L, int k, int c0, int c1, float *out) {
    if (k == 3)
        plane_gates_k(wt, planes, P, L, 3, c0, c1, out);
    else
        plane_gates_k(wt, planes, P, L, k, c0, c1, out);
}

/* out = x * gate for one H x W plane; the gate at (h, w) is fuse(A[h], B[w]) folded with base,
 * the channel gate (mul: product, mean: sum over branches times inv). The overlapping last
 * vector of a row recomputes a few outputs from x, which is harmless. */
INLINE void gate_plane(const float *restrict x, float *restrict out, int H, int W, const float *restrict A,
                       const float *restrict B, int uh, int uw, int fuse, float base, float inv) {
    for (int h = 0; h < H; h++) {
        float a = uh ? (fuse ? A[h] * inv + base : A[h] * base) : base;
        const float *xr = x + (long)h * W;
        float *orow = out + (long)h * W;
        if (W < 4) {
            for (int w = 0; w < W; w++) orow[w] = xr[w] * (!uw ? a : fuse ? a + B[w] * inv : a * B[w]);
            continue;
        }
        for (int i = 0; i < (W + 3) / 4; i++) {
            int at = chunk_at(i, W);
            v4 v = load4(xr + at);
            if (!uw)
                v = v * a;
            else if (fuse)
                v = v * (a + load4(B + at) * inv);
            else
                v = v * a * load4(B + at);
            store4(orow + at, v);
        }
    }
}

/* Pooled values of a sliding window of channels: row t of each plane holds channel
 * c0 - r + t, for the block [c0, c0 + B) and the r halo channels on each side; rows of
 * Lp = L + 2r floats with r zero columns at each side, zero rows for channels outside [0, C). */
typedef struct {
    float *rs, *rm, *cs, *cm, *gs, *gm;
    int Hp, Wp, r;
} Window;

static void clear_row(const Window *w, long t) {
    memset(w->rs + t * w->Hp, 0, sizeof(float) * w->Hp), memset(w->rm + t * w->Hp, 0, sizeof(float) * w->Hp);
    memset(w->cs + t * w->Wp, 0, sizeof(float) * w->Wp), memset(w->cm + t * w->Wp, 0, sizeof(float) * w->Wp);
    w->gs[t] = w->gm[t] = 0.f;
}

static void zero_pad_columns(const Window *w, long t) {
    for (int q = 0; q < w->r; q++) {
        w->rs[t * w->Hp + q] = w->rs[t * w->Hp + w->Hp - 1 - q] = 0.f;
        w->rm[t * w->Hp + q] = w->rm[t * w->Hp + w->Hp - 1 - q] = 0.f;
        w->cs[t * w->Wp + q] = w->cs[t * w->Wp + w->Wp - 1 - q] = 0.f;
        w->cm[t * w->Wp + q] = w->cm[t * w->Wp + w->Wp - 1 - q] = 0.f;
    }
}

/* Move rows [from, from + count) to [0, count): the halo shared by consecutive blocks. */
static void slide(const Window *w, long from, long count) {
    memmove(w->rs, w->rs + from * w->Hp, sizeof(float) * count * w->Hp);
    memmove(w->rm, w->rm + from * w->Hp, sizeof(float) * count * w->Hp);
    memmove(w->cs, w->cs + from * w->Wp, sizeof(float) * count * w->Wp);
    memmove(w->cm, w->cm + from * w->Wp, sizeof(float) * count * w->Wp);
    memmove(w->gs, w->gs + from, sizeof(float) * count), memmove(w->gm, w->gm + from, sizeof(float) * count);
}

INLINE int forward(const float *x, float *out, int N, int C, int H, int W, int k, int branches, int pool,
                   int fuse, const float *wh, const float *ww, const float *wc) {
    int P = pool == POOL_AVGMAX ? 2 : 1, r = k / 2, Hp = H + 2 * r, Wp = W + 2 * r;
    int avg = pool != POOL_MAX, max = pool != POOL_AVG;
    int uh = branches & 1, uw = (branches >> 1) & 1, uc = (branches >> 2) & 1;
    float inv = 1.f / (float)(uh + uw + uc);
    long HW = (long)H * W;
    /* Channels per block: about 128 KiB of the map, and at most 64 so that the pooled window
     * stays small and in cache. */
    int B = (int)(32768 / HW);
    B = B < 1 ? 1 : B > 64 ? 64 : B;
    B = B > C ? C : B;
    long rows = B + 2 * r;

    static __thread float *scratch = NULL;
    static __thread size_t capacity = 0;
    size_t need = (size_t)rows * (2 * Hp + 2 * Wp + 2) + (size_t)B * (Hp + Wp);
    if (need > capacity) {
        free(scratch);
        scratch = malloc(need * sizeof(float));
        capacity = scratch ? need : 0;
        if (!scratch) return -1;
    }
    Window win = {scratch, scratch + rows * Hp, scratch + 2 * rows * Hp, scratch + 2 * rows * Hp + rows * Wp,
                  scratch + 2 * rows * (Hp + Wp), scratch + 2 * rows * (Hp + Wp) + rows, Hp, Wp, r};
    float *GA = win.gm + rows, *GB = GA + (long)B * Hp;
    float *hp[2] = {pool == POOL_MAX ? win.rm : win.rs, win.rm}, *wp[2] = {pool == POOL_MAX ? win.cm : win.cs, win.cm};
    float *gp[2] = {pool == POOL_MAX ? win.gm : win.gs, win.gm};

    for (int n = 0; n < N; n++) {
        const float *xn = x + (long)n * C * HW;
        float *on = out + (long)n * C * HW;
        for (int c0 = 0; c0 < C; c0 += B) {
            int c1 = c0 + B < C ? c0 + B : C, first = c0 + r;
            if (c0 == 0) {
                for (long t = 0; t < r; t++) clear_row(&win, t);
                first = 0;
            } else {
                slide(&win, B, 2 * r);
            }
            for (int c = first; c < c1 + r; c++) {
                long t = c - c0 + r;
                if (c >= C) {
                    clear_row(&win, t);
                    continue;
                }
                pool_plane(xn + c * HW, H, W, avg, max, win.rs + t * Hp + r, win.cs + t * Wp + r, win.rm + t * Hp + r,
                           win.cm + t * Wp + r, win.gs + t, win.gm + t);
                if (r) zero_pad_columns(&win, t);
            }
            if (uh) plane_gates(wh, hp, P, H, k, 0, c1 - c0, GA);
            if (uw) plane_gates(ww, wp, P, W, k, 0, c1 - c0, GB);
            for (int c = c0; c < c1; c++) {
                float g = 0.f;
                if (uc) {
                    float s = 0.f;
                    for (int p = 0; p < P; p++)
                        for (int i = 0; i < k; i++) s += wc[p * k + i] * gp[p][c - c0 + i];
                    g = sigmoid(s);
                }
                const float *A = GA + (long)(c - c0) * Hp + r, *Bw = GB + (long)(c - c0) * Wp + r;
                float base = fuse ? g * inv : (uc ? g : 1.f);
                gate_plane(xn + c * HW, on + c * HW, H, W, A, Bw, uh, uw, fuse, base, inv);
            }
        }
    }
    return 0;
}

/* branches: bit 0 h, bit 1 w, bit 2 c. pool: 0 avg, 1 max, 2 avgmax. fuse: 0 mul, 1 mean.
 * Returns 0, or -1 when scratch memory cannot be had. Common widths get their own compiled
 * copy: short rows with a known length unroll instead of paying loop overhead per row. */
int sca_forward(const float *x, float *out, int N, int C, int H, int W, int k, int branches, int pool, int fuse,
                const float *wh, const float *ww, const float *wc) {
#define WIDTH(w) case w: return forward(x, out, N, C, H, w, k, branches, pool, fuse, wh, ww, wc);
    switch (W) {
        WIDTH(7) WIDTH(8) WIDTH(14) WIDTH(16) WIDTH(28) WIDTH(32) WIDTH(56)
        default: return forward(x, out, N, C, H, W, k, branches, pool, fuse, wh, ww, wc);
    }
#undef WIDTH
}
