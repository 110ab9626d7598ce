/* Fused SCA forward for inference: float32, NCHW, contiguous, on the CPU.
 *
 * The eager module reads the feature map four times (pool along W, pool along H, two gate
 * multiplies). This kernel streams channels in cache-sized blocks: it pools a block (plus the
 * k/2 halo channels whose pooled values the block's gates need), computes the block's gates,
 * then gates the block while it is still in cache. The map comes from memory once and is
 * written once, as in a channel-only module such as ECA. out may be x (gating in place): a block
 * and its halo are pooled before the block is gated, and gate_plane reads what it overwrites first.
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

/* Eight-float vectors (GCC vector extensions: AVX, or pairs of SSE/NEON registers, or scalar
 * code, whatever the target has). A row of W >= 8 floats is covered by whole vectors plus one
 * that ends at the row's end and overlaps the previous one; where an overlap would count twice,
 * its repeated lanes are masked. Rows of 4 to 7 floats (6 to 7 when gating) are read as vectors
 * that start at row 0's start (head) or end at a row's end (tail), both inside the plane; shorter
 * rows, planes of fewer than 8 floats and rows longer than 8 * MAX_CHUNKS take the scalar path. */
#define LANES 8
typedef float vf __attribute__((vector_size(4 * LANES)));
typedef int vi __attribute__((vector_size(4 * LANES)));
static const vi LANE = {0, 1, 2, 3, 4, 5, 6, 7};

INLINE vf loadv(const float *p) { vf v; memcpy(&v, p, sizeof v); return v; }
INLINE void storev(float *p, vf v) { memcpy(p, &v, sizeof v); }
INLINE vf splat(float a) { return (vf){a, a, a, a, a, a, a, a}; }
INLINE vf blend(vi m, vf a, vf b) { return (vf)((m & (vi)a) | (~m & (vi)b)); }
INLINE vf vmax(vf a, vf b) { return blend(a > b, a, b); }
INLINE float hsum(vf v) { return ((v[0] + v[1]) + (v[2] + v[3])) + ((v[4] + v[5]) + (v[6] + v[7])); }
INLINE float hmax(vf v) {
    float m = v[0];
    for (int i = 1; i < LANES; i++) m = v[i] > m ? v[i] : m;
    return m;
}

/* Sums (or maxima) of each of 8 vectors, as one vector: a transposing reduction, much cheaper
 * than 8 horizontal sums. */
INLINE vf pair(vf a, vf b, int max) { return max ? vmax(a, b) : a + b; }
INLINE vf reduce8(const vf *v, int max) {
    vf t[4], u[2];
    for (int i = 0; i < 4; i++)
        t[i] = pair(__builtin_shuffle(v[2 * i], v[2 * i + 1], (vi){0, 2, 8, 10, 4, 6, 12, 14}),
                    __builtin_shuffle(v[2 * i], v[2 * i + 1], (vi){1, 3, 9, 11, 5, 7, 13, 15}), max);
    for (int i = 0; i < 2; i++)
        u[i] = pair(__builtin_shuffle(t[2 * i], t[2 * i + 1], (vi){0, 2, 8, 10, 4, 6, 12, 14}),
                    __builtin_shuffle(t[2 * i], t[2 * i + 1], (vi){1, 3, 9, 11, 5, 7, 13, 15}), max);
    return pair(__builtin_shuffle(u[0], u[1], (vi){0, 1, 2, 3, 8, 9, 10, 11}),
                __builtin_shuffle(u[0], u[1], (vi){4, 5, 6, 7, 12, 13, 14, 15}), max);
}

/* out[h] = scale * (sum or max of the lanes of rows[h]) for h < H; rows has room for a multiple
 * of 8 vectors, the ones past H are filled here with the neutral value. Stores whole vectors:
 * up to 7 floats past out[H - 1] get junk (the window leaves room, see forward). */
INLINE void reduce_rows(vf *rows, int H, int max, float scale, float *out) {
    for (int h = H; h % LANES; h++) rows[h] = splat(max ? -FLT_MAX : 0.f);
    for (int h = 0; h < H; h += LANES) {
        vf v = reduce8(rows + h, max);
        if (!max) v *= scale;
        storev(out + h, v);
    }
}

/* Offset of a row's i-th vector: the last one ends at the row's end. */
INLINE int chunk_at(int i, int W) { return LANES * i + LANES <= W ? LANES * i : W - LANES; }

#define MAX_CHUNKS 16 /* rows up to 128 floats keep their column sums in registers */

/* Row, column and global mean/max of a plane by scalar code: the shapes vectors do not fit. */
static void pool_plane_scalar(const float *restrict p, int H, int W, float *restrict rs, float *restrict cs,
                              float *restrict rm, float *restrict cm, float *gs, float *gm) {
    float total = 0.f, top = -FLT_MAX;
    for (int w = 0; w < W; w++) cs[w] = 0.f, cm[w] = -FLT_MAX;
    for (int h = 0; h < H; h++) {
        const float *row = p + (long)h * W;
        float s = 0.f, m = -FLT_MAX;
        for (int w = 0; w < W; w++) {
            s += row[w], cs[w] += row[w];
            m = row[w] > m ? row[w] : m, cm[w] = row[w] > cm[w] ? row[w] : cm[w];
        }
        rs[h] = s / (float)W, rm[h] = m;
        total += s, top = m > top ? m : top;
    }
    for (int w = 0; w < W; w++) cs[w] /= (float)H;
    *gs = total / ((float)H * (float)W), *gm = top;
}

/* Rows of 4 to 7 floats: row 0 read from its start (lanes [0, W)), every other row from
 * W - 8 floats before its start (lanes [8 - W, 8)), so that no read leaves the plane. */
INLINE void pool_short_rows(const float *restrict p, int H, int W, int avg, int max, vf *rows,
                            float *restrict rs, float *restrict cs, float *restrict rm, float *restrict cm,
                            float *gs, float *gm) {
    int s = LANES - W;
    vi head = LANE < W, tail = LANE >= s;
    vf zero = splat(0.f), lowest = splat(-FLT_MAX), first = loadv(p);
    if (avg) {
        vf sum0 = blend(head, first, zero), col = zero;
        rows[0] = sum0;
        for (int h = 1; h < H; h++) {
            vf a = blend(tail, loadv(p + (long)h * W - s), zero);
            rows[h] = a, col += a;
        }
        float perH = 1.f / (float)H; /* multiplications: a division per value would cost more than the pool */
        for (int w = 0; w < W; w++) cs[w] = (sum0[w] + col[w + s]) * perH;
        *gs = hsum(sum0 + col) * (perH / (float)W);
        reduce_rows(rows, H, 0, 1.f / (float)W, rs);
    }
    if (max) {
        vf max0 = blend(head, first, lowest), col = lowest;
        rows[0] = max0;
        for (int h = 1; h < H; h++) {
            vf m = blend(tail, loadv(p + (long)h * W - s), lowest);
            rows[h] = m, col = vmax(col, m);
        }
        for (int w = 0; w < W; w++) cm[w] = max0[w] > col[w + s] ? max0[w] : col[w + s];
        *gm = hmax(vmax(max0, col));
        reduce_rows(rows, H, 1, 1.f, rm);
    }
}

/* Row, column and global mean (avg) and/or max of one H x W plane. Column accumulators live in
 * registers, not in cs/cm: a store to them followed by an overlapping load would stall. */
INLINE void pool_plane(const float *restrict p, int H, int W, int avg, int max, vf *rows, float *restrict rs,
                       float *restrict cs, float *restrict rm, float *restrict cm, float *gs, float *gm) {
    if (W < 4 || (long)H * W < LANES || W > LANES * MAX_CHUNKS) {
        pool_plane_scalar(p, H, W, rs, cs, rm, cm, gs, gm);
        return;
    }
    if (W < LANES) {
        pool_short_rows(p, H, W, avg, max, rows, rs, cs, rm, cm, gs, gm);
        return;
    }
    int chunks = (W + LANES - 1) / LANES, tail = W % LANES != 0;
    vi mask = LANE >= LANES - W % LANES;
    if (avg) {
        vf col[MAX_CHUNKS], all = splat(0.f);
        for (int i = 0; i < chunks; i++) col[i] = all;
        for (int h = 0; h < H; h++) {
            const float *row = p + (long)h * W;
            vf acc = splat(0.f);
            for (int i = 0; i < chunks; i++) {
                vf v = loadv(row + chunk_at(i, W));
                if (tail && i == chunks - 1) v = (vf)((vi)v & mask);
                acc += v, col[i] += v;
            }
            rows[h] = acc, all += acc;
        }
        vf perH = splat(1.f / (float)H);
        for (int i = chunks - 1; i >= 0; i--) storev(cs + chunk_at(i, W), col[i] * perH); /* tail first */
        *gs = hsum(all) * (perH[0] / (float)W);
        reduce_rows(rows, H, 0, 1.f / (float)W, rs);
    }
    if (max) {
        vf col[MAX_CHUNKS], lowest = splat(-FLT_MAX), top = lowest;
        for (int i = 0; i < chunks; i++) col[i] = lowest;
        for (int h = 0; h < H; h++) {
            const float *row = p + (long)h * W;
            vf acc = lowest;
            for (int i = 0; i < chunks; i++) { /* max does not mind the overlap */
                vf v = loadv(row + chunk_at(i, W));
                acc = vmax(acc, v), col[i] = vmax(col[i], v);
            }
            rows[h] = acc, top = vmax(top, acc);
        }
        for (int i = 0; i < chunks; i++) storev(cm + chunk_at(i, W), col[i]);
        *gm = hmax(top);
        reduce_rows(rows, H, 1, 1.f, rm);
    }
}

/* Sigmoid gates of window rows [0, count) for one spatial branch: a k x k conv over P zero-padded
 * pooled planes (rows of Lp = L + 2r floats; row t + r holds the block's channel t), as flat
 * shifted sums, a strip of STRIP outputs at a time in registers. out[t * Lp + r + l] is the gate
 * at (t, l); pad columns, and up to STRIP floats past the end, hold junk (the scratch has room). */
INLINE void plane_gates_k(const float *restrict wt, float *const *planes, int P, int L, int k, int count,
                          float *restrict out) {
    int r = k / 2, Lp = L + 2 * r;
    long end = (long)count * Lp - r;
    for (long q0 = r; q0 < end; q0 += STRIP) {
        vf acc[STRIP / LANES];
        for (int m = 0; m < STRIP / LANES; m++) acc[m] = splat(0.f);
        for (int p = 0; p < P; p++) {
            const float *restrict base = planes[p] + q0 - r;
            const float *restrict w = wt + p * k * k;
            for (int j = 0; j < k; j++)
                for (int i = 0; i < k; i++) {
                    vf tap = splat(w[i * k + j]);
                    const float *src = base + (long)j * Lp + i;
                    for (int m = 0; m < STRIP / LANES; m++) acc[m] += tap * loadv(src + LANES * m);
                }
        }
        float *dst = out + q0;
        for (int m = 0; m < STRIP / LANES; m++) storev(dst + LANES * m, acc[m]);
        for (int q = 0; q < STRIP; q++) dst[q] = sigmoid(dst[q]);
    }
}

/* One compiled copy for the default k = 3 (its taps unroll), one for any k. */
static void plane_gates(const float *wt, float *const *planes, int P, int L, int k, int count, float *out) {
    if (k == 3)
        plane_gates_k(wt, planes, P, L, 3, count, out);
    else
        plane_gates_k(wt, planes, P, L, k, count, out);
}

/* out = x * gate for one H x W plane, gate(h, w) = a[h] * b[w] (fuse mul) or a[h] + b[w]
 * (fuse mean). out may be x (gating in place): where a vector overlaps the previous one (a
 * row's last vector; for rows of 6 or 7 floats, the previous row's), it is loaded before that
 * one is stored and recomputes the shared outputs from the input, so both cases are right. */
INLINE void gate_plane(const float *x, float *out, int H, int W, const float *restrict a, const float *restrict b,
                       int fuse) {
    if (W < 6 || (long)H * W < LANES || W > LANES * MAX_CHUNKS) {
        for (long i = 0; i < (long)H * W; i++) out[i] = x[i] * (fuse ? a[i / W] + b[i % W] : a[i / W] * b[i % W]);
        return;
    }
    if (W < LANES) { /* lane l of row h's tail vector is column (l - s) mod W of row h or h - 1 */
        int s = LANES - W;
        vf bv = loadv(b); /* b[0..W) and junk, in scratch */
        vf bh = __builtin_shuffle(bv, LANE % W), bt = __builtin_shuffle(bv, (LANE + W - s) % W);
        vi prev = LANE < s, own = LANE < W;
        vf ah = blend(own, splat(a[0]), splat(a[1]));
        vf v = loadv(x), g = fuse ? ah + bh : ah * bh;
        long at = 0;
        for (int h = 1; h < H; h++) {
            long next = (long)h * W - s;
            vf following = loadv(x + next);
            storev(out + at, v * g);
            vf ar = blend(prev, splat(a[h - 1]), splat(a[h]));
            v = following, g = fuse ? ar + bt : ar * bt, at = next;
        }
        storev(out + at, v * g);
        return;
    }
    int whole = W / LANES, tail = W % LANES != 0;
    for (int h = 0; h < H; h++) {
        vf av = splat(a[h]);
        const float *xr = x + (long)h * W;
        float *orow = out + (long)h * W;
        vf last = tail ? loadv(xr + W - LANES) : av;
        for (int i = 0; i < whole; i++) {
            vf bw = loadv(b + LANES * i);
            storev(orow + LANES * i, loadv(xr + LANES * i) * (fuse ? av + bw : av * bw));
        }
        if (tail) {
            vf bw = loadv(b + W - LANES);
            storev(orow + W - LANES, last * (fuse ? av + bw : av * bw));
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

INLINE void zero_pad_columns(const Window *w, long t) {
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

    /* Scratch, 64-byte aligned: per-row vectors of one plane, the window, gates GA/GB, channel
     * gates GC, and room for strips that run past the end. */
    static __thread float *scratch = NULL;
    static __thread size_t capacity = 0;
    size_t vecs = (size_t)(H + LANES) * LANES;
    size_t need = vecs + (size_t)rows * (2 * Hp + 2 * Wp + 2) + 4 * LANES + (size_t)B * (Hp + Wp + 1) + 2 * STRIP;
    need = (need + 15) / 16 * 16;
    if (need > capacity) {
        free(scratch);
        scratch = aligned_alloc(64, need * sizeof(float));
        capacity = scratch ? need : 0;
        if (!scratch) return -1;
        memset(scratch, 0, need * sizeof(float));
    }
    vf *racc = (vf *)scratch;
    float *wbase = scratch + vecs;
    long sh = rows * Hp + LANES, sw = rows * Wp + LANES; /* a gap after each plane for reduce_rows */
    Window win = {wbase, wbase + sh, wbase + 2 * sh, wbase + 2 * sh + sw, wbase + 2 * (sh + sw),
                  wbase + 2 * (sh + sw) + rows, Hp, Wp, r};
    float *GA = win.gm + rows, *GB = GA + (long)B * Hp, *GC = GB + (long)B * Wp;
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
            for (int c = first; c < c1 + r; c++) { /* in order: row t may spill junk into row t + 1 */
                long t = c - c0 + r;
                if (c >= C) {
                    clear_row(&win, t);
                    continue;
                }
                pool_plane(xn + c * HW, H, W, avg, max, racc, win.rs + t * Hp + r, win.cs + t * Wp + r, win.rm + t * Hp + r,
                           win.cm + t * Wp + r, win.gs + t, win.gm + t);
                if (r) zero_pad_columns(&win, t);
            }
            if (uh) plane_gates(wh, hp, P, H, k, c1 - c0, GA);
            if (uw) plane_gates(ww, wp, P, W, k, c1 - c0, GB);
            if (uc) {
                for (int t = 0; t < c1 - c0; t++) GC[t] = 0.f;
                for (int p = 0; p < P; p++)
                    for (int i = 0; i < k; i++)
                        for (int t = 0; t < c1 - c0; t++) GC[t] += wc[p * k + i] * gp[p][t + i];
                for (int t = 0; t < c1 - c0; t++) GC[t] = sigmoid(GC[t]);
            }
            /* Fold the gates in place into a (a row of GA) and b (a row of GB), so that
             * gate(h, w) = a[h] * b[w] (mul) or a[h] + b[w] (mean), then gate the channel. */
            for (int t = 0; t < c1 - c0; t++) {
                float *a = GA + (long)t * Hp + r, *b = GB + (long)t * Wp + r;
                float g = uc ? GC[t] : (fuse ? 0.f : 1.f);
                if (fuse) {
                    for (int h = 0; h < H; h++) a[h] = (uh ? a[h] : 0.f) * inv + g * inv;
                    for (int w = 0; w < W; w++) b[w] = uw ? b[w] * inv : 0.f;
                } else {
                    for (int h = 0; h < H; h++) a[h] = uh ? a[h] * g : g;
                    if (!uw)
                        for (int w = 0; w < W; w++) b[w] = 1.f;
                }
                long c = c0 + t;
                gate_plane(xn + c * HW, on + c * HW, H, W, a, b, fuse);
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
