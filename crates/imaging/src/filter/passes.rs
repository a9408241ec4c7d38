//! The box passes every blur of [`super`] is built from, over interleaved 8-bit
//! images with `C` channels, edges clamped.
//!
//! Cost per pixel does not depend on the radius: horizontal passes keep a running
//! sum along the row (or, for the small radii of a feather, add `2r+1` shifted
//! slices, which vectorises where the running sum is a serial chain); vertical
//! passes keep a running sum *row*, so every inner loop walks memory in order.

/// Radii beyond this are clamped: window sums (≤ 255 × window) must stay exact in
/// `f32` (below 2²⁴), and a window this wide already averages any image Atelier
/// accepts down to its clamped mean.
pub(super) const MAX_RADIUS: usize = 1 << 14;

/// Horizontal passes up to this radius sum shifted slices instead of running a sum.
const DIRECT_MAX_RADIUS: usize = 6;

/// Division of a window sum by the window size, rounded to the nearest level.
///
/// Done in `f32` with the magic-number rounding trick (adding 1.5·2²³ leaves the
/// rounded integer in the low mantissa bits), because a plain float-to-`u8` cast
/// saturates element by element and a 64-bit fixed-point multiply has no SSE2
/// instruction: this form vectorises. Sums stay below 2²⁴, so they are exact in
/// `f32`, and a flat input stays exactly flat.
#[derive(Debug, Clone, Copy)]
struct Mean(f32);

impl Mean {
    fn of(window: usize) -> Self {
        Self(1.0 / window as f32)
    }

    #[inline(always)]
    fn apply(self, sum: u32) -> u8 {
        const ROUND: f32 = 12_582_912.0;
        // sum ≤ 255·window < 2³¹, so the i32 cast is lossless; the quotient is 0–255.
        ((sum as i32) as f32 * self.0 + ROUND).to_bits() as u8
    }
}

/// Runs one horizontal and one vertical box pass per radius over an interleaved
/// image with `C` channels, in place.
pub(super) fn blur_planes<const C: usize>(buf: &mut [u8], w: usize, h: usize, radii: &[usize]) {
    let radii: Vec<usize> = radii
        .iter()
        .map(|&r| r.min(MAX_RADIUS))
        .filter(|&r| r > 0)
        .collect();
    if radii.is_empty() || w == 0 || h == 0 {
        return;
    }
    let stride = w * C;
    // Horizontal passes row by row, ping-ponging through one row of scratch so the
    // row stays in L1 across passes.
    let mut row_tmp = vec![0u8; stride];
    let mut row_acc = vec![0u32; stride];
    for row in buf.chunks_exact_mut(stride) {
        for &r in &radii {
            if r <= DIRECT_MAX_RADIUS && w > 2 * r {
                box_row_direct::<C>(row, &mut row_tmp, r, &mut row_acc);
            } else {
                box_row::<C>(row, &mut row_tmp, r);
            }
            row.copy_from_slice(&row_tmp);
        }
    }
    // Vertical passes over whole planes.
    let mut tmp = vec![0u8; buf.len()];
    let mut acc = vec![0u32; stride];
    let mut in_tmp = false;
    for &r in &radii {
        if in_tmp {
            box_cols(&tmp, buf, stride, r, &mut acc);
        } else {
            box_cols(buf, &mut tmp, stride, r, &mut acc);
        }
        in_tmp = !in_tmp;
    }
    if in_tmp {
        buf.copy_from_slice(&tmp);
    }
}

/// One horizontal box pass over a row of `C`-channel pixels, edges clamped.
fn box_row<const C: usize>(src: &[u8], dst: &mut [u8], r: usize) {
    let w = src.len() / C;
    if w == 0 {
        return;
    }
    let last = w - 1;
    let mean = Mean::of(2 * r + 1);
    let mut sum = [0u32; C];
    // Window centred on x = 0: r + 1 copies of the first pixel, then x = 1..=r clamped.
    let inside = r.min(last);
    for (c, s) in sum.iter_mut().enumerate() {
        *s = (r as u32 + 1) * u32::from(src[c]);
        for i in 1..=inside {
            *s += u32::from(src[i * C + c]);
        }
        *s += (r - inside) as u32 * u32::from(src[last * C + c]);
    }
    for x in 0..w {
        let add = (x + r + 1).min(last) * C;
        let sub = x.saturating_sub(r) * C;
        let out = &mut dst[x * C..x * C + C];
        for c in 0..C {
            out[c] = mean.apply(sum[c]);
            sum[c] = sum[c] + u32::from(src[add + c]) - u32::from(src[sub + c]);
        }
    }
}

/// One horizontal box pass for small radii: the window sum as `2r+1` shifted slice
/// additions, which vectorise (the running sum of [`box_row`] is a serial chain and
/// several times slower when the window is only a few pixels wide). Needs `w > 2r`.
fn box_row_direct<const C: usize>(src: &[u8], dst: &mut [u8], r: usize, acc: &mut [u32]) {
    let w = src.len() / C;
    let mean = Mean::of(2 * r + 1);
    // Interior: every window lies inside the row.
    let len = (w - 2 * r) * C;
    let acc = &mut acc[..len];
    acc.fill(0);
    for k in 0..=2 * r {
        for (a, &v) in acc.iter_mut().zip(&src[k * C..k * C + len]) {
            *a += u32::from(v);
        }
    }
    for (d, &a) in dst[r * C..r * C + len].iter_mut().zip(acc.iter()) {
        *d = mean.apply(a);
    }
    // The r pixels at each end: clamped windows, summed directly.
    let last = w - 1;
    for x in (0..r).chain(w - r..w) {
        for c in 0..C {
            let sum: u32 = (0..=2 * r)
                .map(|k| u32::from(src[(x + k).saturating_sub(r).min(last) * C + c]))
                .sum();
            dst[x * C + c] = mean.apply(sum);
        }
    }
}

/// One vertical box pass: a running sum of rows in `acc`, so every inner loop is a
/// straight walk over a row.
fn box_cols(src: &[u8], dst: &mut [u8], stride: usize, r: usize, acc: &mut [u32]) {
    let h = src.len() / stride;
    let last = h - 1;
    let mean = Mean::of(2 * r + 1);
    let row = |y: usize| &src[y * stride..(y + 1) * stride];
    let inside = r.min(last);
    for (a, &v) in acc.iter_mut().zip(row(0)) {
        *a = (r as u32 + 1) * u32::from(v);
    }
    for y in 1..=inside {
        for (a, &v) in acc.iter_mut().zip(row(y)) {
            *a += u32::from(v);
        }
    }
    let tail = (r - inside) as u32;
    if tail > 0 {
        for (a, &v) in acc.iter_mut().zip(row(last)) {
            *a += tail * u32::from(v);
        }
    }
    for (y, out) in dst.chunks_exact_mut(stride).enumerate() {
        for (o, &a) in out.iter_mut().zip(acc.iter()) {
            *o = mean.apply(a);
        }
        let add = row((y + r + 1).min(last));
        let sub = row(y.saturating_sub(r));
        for ((a, &p), &m) in acc.iter_mut().zip(add).zip(sub) {
            *a = *a + u32::from(p) - u32::from(m);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn direct_and_running_sums_agree() {
        // Deterministic pseudo-random rows, grey and RGB.
        let row: Vec<u8> = (0u32..3 * 97)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
            .collect();
        for r in 1..=DIRECT_MAX_RADIUS {
            let mut acc = vec![0u32; row.len()];
            let (mut a, mut b) = (vec![0u8; row.len()], vec![0u8; row.len()]);
            box_row::<1>(&row, &mut a, r);
            box_row_direct::<1>(&row, &mut b, r, &mut acc);
            assert!(a.iter().zip(&b).all(|(x, y)| x.abs_diff(*y) <= 1), "radius {r}");
            box_row::<3>(&row, &mut a, r);
            box_row_direct::<3>(&row, &mut b, r, &mut acc);
            assert!(
                a.iter().zip(&b).all(|(x, y)| x.abs_diff(*y) <= 1),
                "radius {r}, rgb"
            );
        }
    }
}
