//! The quantized matrix products of the generation model, computed bit for bit as ggml's x86
//! CPU kernels compute them (llama.cpp's `quantize_row_q8_0`/`quantize_row_q8_1`,
//! `ggml_vec_dot_q4_1_q8_1` and `ggml_vec_dot_q8_0_q8_0`).
//!
//! Why our own kernels rather than candle's: the reference for greedy decoding is llama.cpp,
//! and this quantized model is numerically chaotic — every product re-quantizes its input to
//! 8 bits, so a difference in the last bit of one sum can flip a rounding and, thirty blocks
//! later, the choice of a token. Candle's kernels compute the same mathematics in another
//! order (and quantize activations with `1/d` where ggml multiplies by `127/amax`); these
//! reproduce ggml's order exactly:
//! - activations are quantized per block of 32: `amax`, `d = amax/127` (stored as f16),
//!   `q = round_half_even(x · 127/amax)`, and for Q8_1 `s = f16(d · Σq)`;
//! - a Q4_1 × Q8_1 dot product keeps eight f32 lanes, lane `l` accumulating, block after block,
//!   `fma(d_w·d_x, Σ_{j<4} q_w[4l+j]·q_x[4l+j], acc_l)` (the integer sums are exact), plus a
//!   scalar `fma(m_w, s_x, summs)`; the lanes are then added pairwise as `hsum_float_8` does and
//!   `summs` last. Q8_0 × Q8_0 is the same without the offsets.
//!
//! Speed comes from the same place as ggml's: the integer part runs on AVX2 (`maddubs`/`madd`,
//! which give the same integers as ggml's VNNI `dpbusd`), through `pulp`'s safe wrappers with
//! runtime detection (the workspace forbids `unsafe`). Machines without AVX2 and FMA take a
//! scalar path that computes the very same values (`f32::mul_add` is a fused multiply-add).
//! Rows are shared among threads with rayon; activation rows are quantized once per product.

use rayon::prelude::*;

/// Values per quantization block.
pub const QK: usize = 32;

/// One block of 32 activations quantized to 8 bits. `d` and `s` are the f16 values ggml stores,
/// widened to f32.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BlockQ8 {
    /// The scale (`amax/127`, rounded to f16).
    pub d: f32,
    /// `f16(d · Σq)` (ggml's Q8_1 `s`; unused by Q8_0 products).
    pub s: f32,
    /// The quantized values.
    pub qs: [i8; QK],
}

/// One Q4_1 block of a weight row as stored in the GGUF: `w = d·q + m`, q in 0..16; the
/// low nibbles of `qs` are values 0..16, the high nibbles values 16..32.
#[derive(Clone, Copy, Debug)]
pub struct BlockQ4_1 {
    d: u16,
    m: u16,
    qs: [u8; QK / 2],
}

/// One Q8_0 block of a weight row: `w = d·q`.
#[derive(Clone, Copy, Debug)]
pub struct BlockQ8_0 {
    d: u16,
    qs: [i8; QK],
}

/// f16 bits to f32, exactly (what ggml's lookup table holds) for every finite value, without
/// a branch: the f16 exponent and mantissa placed in an f32's low exponent bits are the value
/// times 2⁻¹¹², so one multiplication by 2¹¹² (exact: a power of two, no rounding) finishes the
/// conversion — subnormal f16 values included. Infinities and NaNs (never a scale in a model
/// file) would come out as large finite numbers.
#[inline(always)]
fn f16_to_f32(bits: u16) -> f32 {
    let magnitude = f32::from_bits(u32::from(bits & 0x7fff) << 13) * f32::from_bits((127 + 112) << 23);
    f32::from_bits(magnitude.to_bits() | (u32::from(bits & 0x8000) << 16))
}

/// f32 to f16 and back: round to nearest even, as `_cvtss_sh(x, 0)`.
#[inline(always)]
pub(crate) fn round_f16(x: f32) -> f32 {
    half::f16::from_f32(x).to_f32()
}

/// A weight matrix `[n, k]` in one of the quantized formats the model uses.
pub enum QMatrix {
    /// Q4_1 rows (the blocks' weights): `n` rows of `k` values.
    Q4_1 { blocks: Vec<BlockQ4_1>, n: usize, k: usize },
    /// Q8_0 rows (the token embeddings, tied to the output projection).
    Q8_0 { blocks: Vec<BlockQ8_0>, n: usize, k: usize },
}

/// The errors of [`QMatrix::from_ggml`].
#[derive(Debug, thiserror::Error)]
pub enum QuantError {
    /// The row length is not a whole number of blocks.
    #[error("row length {0} is not a multiple of {QK}")]
    RowLength(usize),
    /// The byte count does not match the shape.
    #[error("{got} bytes for a [{n}, {k}] matrix, expected {expected}")]
    Size {
        /// Bytes given.
        got: usize,
        /// Bytes the shape needs.
        expected: usize,
        /// Rows.
        n: usize,
        /// Row length.
        k: usize,
    },
}

/// Which activation quantization a matrix's products take.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ActKind {
    /// ggml's Q8_1 (with `s`), for Q4_1 weights.
    Q8_1,
    /// ggml's Q8_0, for Q8_0 weights.
    Q8_0,
}

impl QMatrix {
    /// Reads `n` rows of `k` values from ggml's byte layout (little-endian f16 scales).
    pub fn q4_1(bytes: &[u8], n: usize, k: usize) -> Result<Self, QuantError> {
        let nb = Self::check(bytes.len(), n, k, 20)?;
        let blocks = bytes
            .chunks_exact(20)
            .map(|b| {
                let mut qs = [0u8; QK / 2];
                qs.copy_from_slice(&b[4..20]);
                BlockQ4_1 { d: u16::from_le_bytes([b[0], b[1]]), m: u16::from_le_bytes([b[2], b[3]]), qs }
            })
            .collect::<Vec<_>>();
        debug_assert_eq!(blocks.len(), nb);
        Ok(Self::Q4_1 { blocks, n, k })
    }

    /// Reads `n` rows of `k` values of ggml's Q8_0 layout.
    pub fn q8_0(bytes: &[u8], n: usize, k: usize) -> Result<Self, QuantError> {
        Self::check(bytes.len(), n, k, 34)?;
        let blocks = bytes
            .chunks_exact(34)
            .map(|b| {
                let mut qs = [0i8; QK];
                qs.iter_mut().zip(&b[2..34]).for_each(|(q, &v)| *q = v as i8);
                BlockQ8_0 { d: u16::from_le_bytes([b[0], b[1]]), qs }
            })
            .collect();
        Ok(Self::Q8_0 { blocks, n, k })
    }

    fn check(len: usize, n: usize, k: usize, block_bytes: usize) -> Result<usize, QuantError> {
        if !k.is_multiple_of(QK) {
            return Err(QuantError::RowLength(k));
        }
        let nb = n * (k / QK);
        if len != nb * block_bytes {
            return Err(QuantError::Size { got: len, expected: nb * block_bytes, n, k });
        }
        Ok(nb)
    }

    /// Rows (output width).
    pub fn rows(&self) -> usize {
        match self {
            Self::Q4_1 { n, .. } | Self::Q8_0 { n, .. } => *n,
        }
    }

    /// Row length (input width).
    pub fn cols(&self) -> usize {
        match self {
            Self::Q4_1 { k, .. } | Self::Q8_0 { k, .. } => *k,
        }
    }

    /// The activation quantization this matrix's products take.
    pub fn act_kind(&self) -> ActKind {
        match self {
            Self::Q4_1 { .. } => ActKind::Q8_1,
            Self::Q8_0 { .. } => ActKind::Q8_0,
        }
    }

    /// `x [rows, k] → x·Wᵀ [rows, n]`, row-major, as ggml's `mul_mat` computes it on the CPU
    /// (every output value is one `vec_dot` of a weight row and a quantized activation row).
    pub fn matmul(&self, x: &[f32], rows: usize) -> Vec<f32> {
        let (n, k) = (self.rows(), self.cols());
        let act = quantize_rows(x, rows, k, self.act_kind());
        let mut out = vec![0f32; rows * n];
        self.matmul_quantized(&act, rows, &mut out);
        out
    }

    /// The product on activations already quantized (`rows × k/32` blocks) into `out`.
    pub fn matmul_quantized(&self, act: &[BlockQ8], rows: usize, out: &mut [f32]) {
        let n = self.rows();
        // Output columns are shared among threads in chunks of weight rows; each thread reads
        // its weight rows once and applies them to every activation row. The result is the
        // same whatever the split: each value is one dot product computed whole.
        const CHUNK: usize = 64;
        if rows == 1 {
            // One activation row (decoding): each chunk of outputs is written in place.
            out[..n].par_chunks_mut(CHUNK).enumerate().with_min_len(1).for_each(|(c, dst)| {
                self.dots(c * CHUNK..c * CHUNK + dst.len(), act, 1, dst);
            });
            return;
        }
        let chunks = n.div_ceil(CHUNK);
        let mut parts: Vec<Vec<f32>> = vec![Vec::new(); chunks];
        parts.par_iter_mut().enumerate().with_min_len(1).for_each(|(c, part)| {
            let (from, to) = (c * CHUNK, ((c + 1) * CHUNK).min(n));
            part.resize((to - from) * rows, 0.0);
            self.dots(from..to, act, rows, part);
        });
        for (c, part) in parts.iter().enumerate() {
            let (from, to) = (c * CHUNK, ((c + 1) * CHUNK).min(n));
            for r in 0..rows {
                out[r * n + from..r * n + to].copy_from_slice(&part[r * (to - from)..(r + 1) * (to - from)]);
            }
        }
    }

    /// The dot products of weight rows `range` with each of the `rows` quantized activation
    /// rows of `act`, into `dst` (`rows × range.len()`).
    fn dots(&self, range: std::ops::Range<usize>, act: &[BlockQ8], rows: usize, dst: &mut [f32]) {
        let nb = self.cols() / QK;
        let width = range.len();
        for r in 0..rows {
            let a = &act[r * nb..(r + 1) * nb];
            let out = &mut dst[r * width..(r + 1) * width];
            if let Self::Q8_0 { blocks, .. } = self {
                simd::dots_q8_0(&blocks[range.start * nb..range.end * nb], nb, a, out);
            }
        }
        if let Self::Q4_1 { blocks, .. } = self {
            simd::dots_q4_1(&blocks[range.start * nb..range.end * nb], nb, act, rows, dst);
        }
    }

    /// Row `i` dequantized (what ggml's `get_rows` gives): `d·q` (+ `m`).
    pub fn dequantize_row(&self, i: usize, out: &mut Vec<f32>) {
        let nb = self.cols() / QK;
        match self {
            Self::Q4_1 { blocks, .. } => {
                for b in &blocks[i * nb..(i + 1) * nb] {
                    let (d, m) = (f16_to_f32(b.d), f16_to_f32(b.m));
                    out.extend(b.qs.iter().map(|&q| f32::from(q & 15) * d + m));
                    out.extend(b.qs.iter().map(|&q| f32::from(q >> 4) * d + m));
                }
            }
            Self::Q8_0 { blocks, .. } => {
                for b in &blocks[i * nb..(i + 1) * nb] {
                    let d = f16_to_f32(b.d);
                    out.extend(b.qs.iter().map(|&q| f32::from(q) * d));
                }
            }
        }
    }
}

/// Quantizes `rows` rows of `k` activations for products with weights of `kind`.
pub fn quantize_rows(x: &[f32], rows: usize, k: usize, kind: ActKind) -> Vec<BlockQ8> {
    let mut out = Vec::with_capacity(rows * k / QK);
    // Under AVX2 so that rounding is one instruction rather than a call to libm's `rintf`.
    with_fma(
        #[inline(always)]
        || {
            for block in x[..rows * k].chunks_exact(QK) {
                out.push(quantize_block(block, kind));
            }
        },
    );
    out
}

/// ggml's AVX `quantize_row_q8_0`/`quantize_row_q8_1` for one block.
#[inline(always)]
fn quantize_block(x: &[f32], kind: ActKind) -> BlockQ8 {
    let amax = x.iter().fold(0f32, |a, v| a.max(v.abs()));
    let d = amax / 127.0;
    let id = if amax != 0.0 { 127.0 / amax } else { 0.0 };
    let mut qs = [0i8; QK];
    let mut sum = 0i32;
    for (q, &v) in qs.iter_mut().zip(x) {
        let r = (v * id).round_ties_even() as i32;
        sum += r;
        *q = r.clamp(-128, 127) as i8;
    }
    let s = match kind {
        ActKind::Q8_1 => round_f16(d * sum as f32),
        ActKind::Q8_0 => 0.0,
    };
    BlockQ8 { d: round_f16(d), s, qs }
}

/// `hsum_float_8`: lanes 4..8 onto 0..4, then 2..4 onto 0..2, then 1 onto 0.
#[inline(always)]
fn hsum8(a: [f32; 8]) -> f32 {
    let r = [a[0] + a[4], a[1] + a[5], a[2] + a[6], a[3] + a[7]];
    (r[0] + r[2]) + (r[1] + r[3])
}

fn dot_q4_1_q8_1_scalar(w: &[BlockQ4_1], x: &[BlockQ8]) -> f32 {
    let mut acc = [0f32; 8];
    let mut summs = 0f32;
    for (wb, xb) in w.iter().zip(x) {
        summs = f16_to_f32(wb.m).mul_add(xb.s, summs);
        let d0d1 = f16_to_f32(wb.d) * xb.d;
        let q = |j: usize| i32::from(if j < 16 { wb.qs[j] & 15 } else { wb.qs[j - 16] >> 4 });
        for (l, a) in acc.iter_mut().enumerate() {
            let lane: i32 = (4 * l..4 * l + 4).map(|j| q(j) * i32::from(xb.qs[j])).sum();
            *a = d0d1.mul_add(lane as f32, *a);
        }
    }
    hsum8(acc) + summs
}

fn dot_q8_0_q8_0_scalar(w: &[BlockQ8_0], x: &[BlockQ8]) -> f32 {
    let mut acc = [0f32; 8];
    for (wb, xb) in w.iter().zip(x) {
        let d = f16_to_f32(wb.d) * xb.d;
        for (l, a) in acc.iter_mut().enumerate() {
            let lane: i32 = (4 * l..4 * l + 4).map(|j| i32::from(wb.qs[j]) * i32::from(xb.qs[j])).sum();
            *a = d.mul_add(lane as f32, *a);
        }
    }
    hsum8(acc)
}

/// Lanes of ggml's f16 dot product on AVX-512 (4 registers of 16 f32 lanes; element `i` of a
/// product goes to lane `i mod 64`).
pub const F16_LANES: usize = 64;

/// The element-wise and attention operations of llama.cpp's CPU path, reproduced in their
/// exact order of floating-point operations (the AVX-512 code paths, which llama.cpp built with
/// `-march=native` takes on the machines this project runs on): `ggml_v_expf`, `ggml_v_silu`,
/// the soft-max of `ggml_compute_forward_soft_max_f32` and `ggml_vec_dot_f16`.
pub mod ggml {
    use super::F16_LANES;

    /// `_mm512_reduce_add_ps` as GCC implements it: halves, then quarters, then pairs.
    #[inline(always)]
    fn reduce16(a: &[f32; 16]) -> f32 {
        let t3: [f32; 8] = std::array::from_fn(|i| a[i + 8] + a[i]);
        let t6: [f32; 4] = std::array::from_fn(|i| t3[i + 4] + t3[i]);
        (t6[0] + t6[2]) + (t6[1] + t6[3])
    }

    /// `ggml_v_expf`: e^x by a polynomial on the reduced argument, scaled by `2^n`.
    #[inline(always)]
    pub fn expf(x: f32) -> f32 {
        let r = f32::from_bits(0x4b40_0000); // 0x1.8p23
        let z = x.mul_add(f32::from_bits(0x3fb8_aa3b), r); // 0x1.715476p+0
        let n = z - r;
        let b = (-n).mul_add(f32::from_bits(0x35bf_be8e), (-n).mul_add(f32::from_bits(0x3f31_7200), x));
        if n.abs() > 192.0 {
            return if n <= 0.0 { 0.0 } else { f32::INFINITY };
        }
        let u = b * b;
        let j = f32::from_bits(0x3c07_2010)
            .mul_add(b, f32::from_bits(0x3d2b_9f17))
            .mul_add(u, f32::from_bits(0x3e2a_af33).mul_add(b, f32::from_bits(0x3eff_fedb)))
            .mul_add(u, f32::from_bits(0x3f7f_fff6).mul_add(b, 1.0));
        // _mm512_scalef_ps(j, n): j·2^n rounded once (exact in f64, then one rounding).
        // 2^n built from its bits (n is an integer in −192..=192).
        let two_n = f64::from_bits(((n as i64 + 1023) as u64) << 52);
        (f64::from(j) * two_n) as f32
    }

    /// `ggml_v_silu`: x / (1 + e^−x).
    #[inline(always)]
    pub fn silu(x: f32) -> f32 {
        x / (1.0 + expf(0.0 - x))
    }

    /// Soft-max in place as `ggml_compute_forward_soft_max_f32` computes it over a row of
    /// llama.cpp's attention scores: e^(x − max) per element, the sum of each 16 added in f64,
    /// then every value times `(f32)(1/sum)`. (llama.cpp's rows are padded with masked
    /// positions whose exponentials are 0; they change no sum.)
    #[inline(always)]
    pub fn softmax(row: &mut [f32]) {
        let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let mut sum = 0f64;
        for chunk in row.chunks_mut(16) {
            let mut val = [0f32; 16];
            for (v, x) in val.iter_mut().zip(chunk.iter_mut()) {
                *v = expf(*x - max);
                *x = *v;
            }
            sum += f64::from(reduce16(&val));
        }
        let inv = (1.0 / sum) as f32;
        row.iter_mut().for_each(|v| *v *= inv);
    }

    /// `ggml_vec_dot_f16` of two f16-valued rows (given as f32) whose length is at most 64 or
    /// a multiple of it: products by lane `i mod 64`, fused adds per lane, the four registers
    /// added (0+2, 1+3, then together) and reduced.
    #[inline(always)]
    pub fn dot_f16(x: &[f32], y: &[f32]) -> f32 {
        let mut acc = [0f32; F16_LANES];
        for (i, (a, b)) in x.iter().zip(y).enumerate() {
            let lane = &mut acc[i % F16_LANES];
            *lane = a.mul_add(*b, *lane);
        }
        reduce_lanes(&acc)
    }

    /// The four registers of 16 lanes added as `GGML_F32x16_REDUCE` does, then reduced.
    #[inline(always)]
    fn reduce_lanes(acc: &[f32; F16_LANES]) -> f32 {
        let x: [f32; 16] = std::array::from_fn(|l| (acc[l] + acc[32 + l]) + (acc[16 + l] + acc[48 + l]));
        reduce16(&x)
    }

    /// `out[d] = ggml_vec_dot_f16(p, V[·][d])` for every dimension `d` of the values
    /// (`values`: one row of `width` per position, as `p`): what llama.cpp's product of the
    /// soft-maxed scores with its transposed f16 value cache gives. `lanes` is scratch space
    /// of `F16_LANES × width`.
    #[inline(always)]
    pub fn weighted_sum_f16(p: &[f32], values: &[f32], width: usize, lanes: &mut [f32], out: &mut [f32]) {
        lanes.iter_mut().for_each(|v| *v = 0.0);
        for (i, (&pi, value)) in p.iter().zip(values.chunks_exact(width)).enumerate() {
            let lane = &mut lanes[(i % F16_LANES) * width..(i % F16_LANES + 1) * width];
            for (l, &v) in lane.iter_mut().zip(value) {
                *l = pi.mul_add(v, *l);
            }
        }
        for (d, o) in out.iter_mut().enumerate() {
            let acc: [f32; F16_LANES] = std::array::from_fn(|i| lanes[i * width + d]);
            *o = reduce_lanes(&acc);
        }
    }
}

/// A model's own compute threads, named `genai-{model}-N`: one per core unless
/// `RAYON_NUM_THREADS` says otherwise. A forward pass runs inside its pool (`install`), so that
/// its parallel parts are split among the workers by work stealing instead of being handed over
/// from an outside thread and waited for, part after part.
pub(crate) fn model_pool(model: &'static str) -> Result<rayon::ThreadPool, String> {
    rayon::ThreadPoolBuilder::new()
        .thread_name(move |i| format!("genai-{model}-{i}"))
        .build()
        .map_err(|e| format!("cannot start the model's threads: {e}"))
}

/// Runs `f` with AVX2 and FMA enabled when the CPU has them, so that the `#[inline(always)]`
/// helpers it calls ([`ggml`]'s) compile `f32::mul_add` to one instruction and vectorize —
/// without them `mul_add` is a call into libm's `fmaf` (same result, many times slower).
#[inline(always)]
pub fn with_fma<R>(f: impl FnOnce() -> R) -> R {
    #[cfg(target_arch = "x86_64")]
    if let Some(simd) = pulp::x86::V3::try_new() {
        return simd.vectorize(f);
    }
    f()
}

/// Runtime choice between the AVX2 kernels and the scalar ones (same results).
#[cfg(target_arch = "x86_64")]
mod simd {
    use super::{f16_to_f32, hsum8, BlockQ4_1, BlockQ8, BlockQ8_0};
    use pulp::bytemuck;
    use pulp::x86::V3;
    use std::arch::x86_64::{__m128i, __m256, __m256i};

    /// Every weight row of `w` against every activation row of `act` (`rows` of them) into
    /// `dst` (`rows × w rows`). Activation rows go four at a time, so that each weight block is
    /// unpacked once for four dot products (each still accumulated in ggml's order).
    pub(super) fn dots_q4_1(w: &[BlockQ4_1], nb: usize, act: &[BlockQ8], rows: usize, dst: &mut [f32]) {
        let width = w.len() / nb;
        let Some(simd) = V3::try_new() else {
            for r in 0..rows {
                let a = &act[r * nb..(r + 1) * nb];
                for (i, wrow) in w.chunks_exact(nb).enumerate() {
                    dst[r * width + i] = super::dot_q4_1_q8_1_scalar(wrow, a);
                }
            }
            return;
        };
        // Plain loops, not iterator closures: a closure is compiled as its own function,
        // outside the AVX2 context, and the intrinsics would not be inlined.
        simd.vectorize(
            #[inline(always)]
            || {
                let mut r = 0;
                while r + 4 <= rows {
                    let a = [
                        &act[r * nb..(r + 1) * nb],
                        &act[(r + 1) * nb..(r + 2) * nb],
                        &act[(r + 2) * nb..(r + 3) * nb],
                        &act[(r + 3) * nb..(r + 4) * nb],
                    ];
                    for (i, wrow) in w.chunks_exact(nb).enumerate() {
                        let res = dot4_q4_1_q8_1_avx2(simd, wrow, a);
                        for (j, v) in res.into_iter().enumerate() {
                            dst[(r + j) * width + i] = v;
                        }
                    }
                    r += 4;
                }
                while r < rows {
                    let a = &act[r * nb..(r + 1) * nb];
                    for (i, wrow) in w.chunks_exact(nb).enumerate() {
                        dst[r * width + i] = dot_q4_1_q8_1_avx2(simd, wrow, a);
                    }
                    r += 1;
                }
            },
        )
    }

    /// [`dot_q4_1_q8_1_avx2`] of one weight row against four activation rows at once.
    #[inline(always)]
    fn dot4_q4_1_q8_1_avx2(simd: V3, w: &[BlockQ4_1], x: [&[BlockQ8]; 4]) -> [f32; 4] {
        let low = simd.avx._mm256_set1_epi8(0x0f);
        let ones = simd.avx._mm256_set1_epi16(1);
        let mut acc: [__m256; 4] = [simd.avx._mm256_setzero_ps(); 4];
        let mut summs = [0f32; 4];
        for (b, wb) in w.iter().enumerate() {
            let d0 = f16_to_f32(wb.d);
            let m = f16_to_f32(wb.m);
            let tmp: __m128i = bytemuck::cast(wb.qs);
            let hi = simd.sse2._mm_srli_epi16::<4>(tmp);
            let qw = simd.avx2._mm256_and_si256(low, simd.avx._mm256_set_m128i(hi, tmp));
            for j in 0..4 {
                let xb = &x[j][b];
                summs[j] = m.mul_add(xb.s, summs[j]);
                let d0d1 = simd.avx._mm256_set1_ps(d0 * xb.d);
                let qx: __m256i = bytemuck::cast(xb.qs);
                let pairs = simd.avx2._mm256_maddubs_epi16(qw, qx);
                let quads = simd.avx._mm256_cvtepi32_ps(simd.avx2._mm256_madd_epi16(ones, pairs));
                acc[j] = simd.fma._mm256_fmadd_ps(d0d1, quads, acc[j]);
            }
        }
        [0, 1, 2, 3].map(|j| hsum8(bytemuck::cast(acc[j])) + summs[j])
    }

    pub(super) fn dots_q8_0(w: &[BlockQ8_0], nb: usize, act: &[BlockQ8], dst: &mut [f32]) {
        let rows = w.chunks_exact(nb);
        match V3::try_new() {
            Some(simd) => simd.vectorize(
                #[inline(always)]
                || {
                    for (w, o) in rows.zip(dst.iter_mut()) {
                        *o = dot_q8_0_q8_0_avx2(simd, w, act);
                    }
                },
            ),
            None => rows.zip(dst.iter_mut()).for_each(|(w, o)| *o = super::dot_q8_0_q8_0_scalar(w, act)),
        }
    }

    #[inline(always)]
    fn dot_q4_1_q8_1_avx2(simd: V3, w: &[BlockQ4_1], x: &[BlockQ8]) -> f32 {
        let low = simd.avx._mm256_set1_epi8(0x0f);
        let ones = simd.avx._mm256_set1_epi16(1);
        let mut acc: __m256 = simd.avx._mm256_setzero_ps();
        let mut summs = 0f32;
        for (wb, xb) in w.iter().zip(x) {
            let d0 = f16_to_f32(wb.d);
            summs = f16_to_f32(wb.m).mul_add(xb.s, summs);
            let d0d1 = simd.avx._mm256_set1_ps(d0 * xb.d);
            let tmp: __m128i = bytemuck::cast(wb.qs);
            let hi = simd.sse2._mm_srli_epi16::<4>(tmp);
            let qw = simd.avx2._mm256_and_si256(low, simd.avx._mm256_set_m128i(hi, tmp));
            let qx: __m256i = bytemuck::cast(xb.qs);
            let pairs = simd.avx2._mm256_maddubs_epi16(qw, qx);
            let quads = simd.avx._mm256_cvtepi32_ps(simd.avx2._mm256_madd_epi16(ones, pairs));
            acc = simd.fma._mm256_fmadd_ps(d0d1, quads, acc);
        }
        hsum8(bytemuck::cast(acc)) + summs
    }

    #[inline(always)]
    fn dot_q8_0_q8_0_avx2(simd: V3, w: &[BlockQ8_0], x: &[BlockQ8]) -> f32 {
        let ones = simd.avx._mm256_set1_epi16(1);
        let mut acc: __m256 = simd.avx._mm256_setzero_ps();
        for (wb, xb) in w.iter().zip(x) {
            let d = simd.avx._mm256_set1_ps(f16_to_f32(wb.d) * xb.d);
            let qw: __m256i = bytemuck::cast(wb.qs);
            let qx: __m256i = bytemuck::cast(xb.qs);
            // ggml's mul_sum_i8_pairs_float: |w| (unsigned) times x carrying w's sign.
            let ax = simd.avx2._mm256_sign_epi8(qw, qw);
            let sy = simd.avx2._mm256_sign_epi8(qx, qw);
            let pairs = simd.avx2._mm256_maddubs_epi16(ax, sy);
            let quads = simd.avx._mm256_cvtepi32_ps(simd.avx2._mm256_madd_epi16(ones, pairs));
            acc = simd.fma._mm256_fmadd_ps(d, quads, acc);
        }
        hsum8(bytemuck::cast(acc))
    }
}

/// Other architectures: the scalar kernels (same results).
#[cfg(not(target_arch = "x86_64"))]
mod simd {
    use super::{BlockQ4_1, BlockQ8, BlockQ8_0};

    pub(super) fn dots_q4_1(w: &[BlockQ4_1], nb: usize, act: &[BlockQ8], rows: usize, dst: &mut [f32]) {
        let width = w.len() / nb;
        for r in 0..rows {
            let a = &act[r * nb..(r + 1) * nb];
            for (i, wrow) in w.chunks_exact(nb).enumerate() {
                dst[r * width + i] = super::dot_q4_1_q8_1_scalar(wrow, a);
            }
        }
    }

    pub(super) fn dots_q8_0(w: &[BlockQ8_0], nb: usize, act: &[BlockQ8], dst: &mut [f32]) {
        w.chunks_exact(nb).zip(dst.iter_mut()).for_each(|(w, o)| *o = super::dot_q8_0_q8_0_scalar(w, act));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lcg(seed: &mut u64) -> f32 {
        *seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        ((*seed >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }

    #[test]
    fn f16_conversion_is_exact_for_every_finite_value() {
        for bits in 0..=u16::MAX {
            let want = half::f16::from_bits(bits).to_f32();
            if want.is_finite() {
                assert_eq!(f16_to_f32(bits).to_bits(), want.to_bits(), "{bits:#x}");
            }
        }
    }

    #[test]
    fn simd_and_scalar_paths_agree_to_the_bit() {
        let (n, k) = (37, 576);
        let mut seed = 7;
        let mut q4 = Vec::new();
        let mut q8 = Vec::new();
        for _ in 0..n * k / QK {
            q4.extend_from_slice(&half::f16::from_f32(lcg(&mut seed) * 0.01).to_le_bytes());
            q4.extend_from_slice(&half::f16::from_f32(lcg(&mut seed) * 0.1).to_le_bytes());
            q4.extend((0..16).map(|_| (lcg(&mut seed).abs() * 255.0) as u8));
            q8.extend_from_slice(&half::f16::from_f32(lcg(&mut seed) * 0.01).to_le_bytes());
            q8.extend((0..32).map(|_| (lcg(&mut seed) * 127.0) as i8 as u8));
        }
        let x: Vec<f32> = (0..3 * k).map(|_| lcg(&mut seed) * 4.0).collect();
        for m in [QMatrix::q4_1(&q4, n, k).unwrap(), QMatrix::q8_0(&q8, n, k).unwrap()] {
            let act = quantize_rows(&x, 3, k, m.act_kind());
            let fast = m.matmul(&x, 3);
            let nb = k / QK;
            for r in 0..3 {
                for row in 0..n {
                    let a = &act[r * nb..(r + 1) * nb];
                    let slow = match &m {
                        QMatrix::Q4_1 { blocks, .. } => dot_q4_1_q8_1_scalar(&blocks[row * nb..(row + 1) * nb], a),
                        QMatrix::Q8_0 { blocks, .. } => dot_q8_0_q8_0_scalar(&blocks[row * nb..(row + 1) * nb], a),
                    };
                    assert_eq!(fast[r * n + row].to_bits(), slow.to_bits(), "row {row} of input {r}");
                }
            }
        }
    }
}
