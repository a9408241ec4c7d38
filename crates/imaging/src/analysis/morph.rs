//! Clean-up of a raw foreground/background split into a garment silhouette:
//! drop specks, keep every significant piece, fill holes.
//!
//! Pixel-level thresholding leaves isolated noise specks on the backdrop and
//! holes where the garment happens to match the backdrop (a white stripe on a
//! light sweep, a highlight on a fold). Garments are solid objects, so anything the
//! backdrop cannot reach from the frame's border is garment. Pieces of garment
//! are 8-connected (a thin diagonal part, such as a hanger's wire or a strap, is
//! one piece and not a row of specks) and the backdrop 4-connected (it does not
//! leak between two diagonal neighbours of such a part): the usual dual pair,
//! so every hole is well defined. The flood fills work on horizontal runs with an
//! explicit stack, so there is no recursion depth to overflow on large images.

/// Erosion by a (2r+1)² square, r = `steps`: a cell stays set when every cell
/// within `steps` (Chebyshev) is set; cells outside the frame count as unset.
pub(super) fn erode(set: &[bool], w: usize, h: usize, steps: usize) -> Vec<bool> {
    let mut out = set.to_vec();
    for _ in 0..steps {
        let prev = out.clone();
        for (i, o) in out.iter_mut().enumerate() {
            let (x, y) = (i % w, i / w);
            *o =
                prev[i] && x > 0 && y > 0 && x + 1 < w && y + 1 < h && square(&prev, (w, h), x, y).all(|v| v);
        }
    }
    out
}

/// Dilation of `seeds` by a (2r+1)² square, r = `steps`, kept inside `within`
/// (each step grows one cell and stays inside it).
pub(super) fn dilate_within(seeds: &[bool], within: &[bool], w: usize, h: usize, steps: usize) -> Vec<bool> {
    let mut out = seeds.to_vec();
    for _ in 0..steps {
        let prev = out.clone();
        for (i, o) in out.iter_mut().enumerate() {
            let (x, y) = (i % w, i / w);
            if !*o && within[i] {
                *o = square(&prev, (w, h), x, y).any(|v| v);
            }
        }
    }
    out
}

/// The 3×3 square of `set` around (x, y), clipped to the frame.
fn square(set: &[bool], (w, h): (usize, usize), x: usize, y: usize) -> impl Iterator<Item = bool> + '_ {
    (y.saturating_sub(1)..(y + 2).min(h))
        .flat_map(move |yy| (x.saturating_sub(1)..(x + 2).min(w)).map(move |xx| set[yy * w + xx]))
}

/// A component smaller than this fraction of the frame is a speck.
const MIN_COMPONENT_FRACTION: f64 = 0.001;
/// A component smaller than this fraction of the largest one is debris.
const MIN_RELATIVE_TO_LARGEST: f64 = 0.05;

/// Which neighbours a flood fill steps to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Connectivity {
    /// Left, right, up, down.
    Four,
    /// Also the four diagonals.
    Eight,
}

/// Span flood fill from `seed`: fills every pixel connected to it for which
/// `open` holds (calling `fill`, after which `open` must be false) and returns how
/// many. Whole horizontal runs are filled at once and only one pixel per run of
/// the rows above and below is pushed, so the stack stays small and the work is
/// a few sequential scans rather than a push and pop per pixel.
fn span_fill<S>(
    state: &mut S,
    (w, h): (usize, usize),
    seed: (usize, usize),
    connectivity: Connectivity,
    stack: &mut Vec<(u32, u32)>,
    open: impl Fn(&S, usize) -> bool,
    fill: impl Fn(&mut S, usize),
) -> usize {
    let mut count = 0;
    stack.clear();
    stack.push((seed.0 as u32, seed.1 as u32));
    while let Some((x, y)) = stack.pop() {
        let (x, y) = (x as usize, y as usize);
        let row = y * w;
        if !open(state, row + x) {
            continue;
        }
        let mut l = x;
        while l > 0 && open(state, row + l - 1) {
            l -= 1;
        }
        let mut r = x;
        while r + 1 < w && open(state, row + r + 1) {
            r += 1;
        }
        for i in row + l..=row + r {
            fill(state, i);
        }
        count += r - l + 1;
        for ny in [y.checked_sub(1), (y + 1 < h).then_some(y + 1)]
            .into_iter()
            .flatten()
        {
            let next = ny * w;
            let mut in_run = false;
            // 8-connectivity also reaches the diagonal neighbours at the run's ends.
            let (from, to) = match connectivity {
                Connectivity::Four => (l, r),
                Connectivity::Eight => (l.saturating_sub(1), (r + 1).min(w - 1)),
            };
            for nx in from..=to {
                let o = open(state, next + nx);
                if o && !in_run {
                    stack.push((nx as u32, ny as u32));
                }
                in_run = o;
            }
        }
    }
    count
}

/// Keeps the significant connected components of `fg` (non-zero = foreground) and
/// fills their holes; returns the silhouette as 0/1 per pixel, or `None` when no
/// component is large enough to be a garment.
pub(super) fn clean(fg: &[u8], w: usize, h: usize) -> Option<Vec<u8>> {
    let n = w * h;
    if n == 0 || fg.len() != n {
        return None;
    }
    let (labels, areas) = label_pieces((w, h), 0..n, |i| fg[i] != 0);
    let mut stack: Vec<(u32, u32)> = Vec::new();
    let largest = areas.iter().copied().max().unwrap_or(0);
    let floor = (n as f64 * MIN_COMPONENT_FRACTION).ceil().max(1.0) as usize;
    if largest < floor {
        return None;
    }
    let keep_from = floor.max((largest as f64 * MIN_RELATIVE_TO_LARGEST).ceil() as usize);
    let keep: Vec<bool> = areas
        .iter()
        .enumerate()
        .map(|(l, &a)| l > 0 && a >= keep_from)
        .collect();

    // Flood the backdrop in from the border through everything not kept.
    let mut backdrop = vec![false; n];
    let open = |backdrop: &Vec<bool>, i: usize| !backdrop[i] && !keep[labels[i] as usize];
    let border = (0..w)
        .flat_map(|x| [(x, 0), (x, h - 1)])
        .chain((0..h).flat_map(|y| [(0, y), (w - 1, y)]));
    for (x, y) in border {
        if open(&backdrop, y * w + x) {
            span_fill(
                &mut backdrop,
                (w, h),
                (x, y),
                Connectivity::Four,
                &mut stack,
                open,
                |b, i| b[i] = true,
            );
        }
    }
    Some(backdrop.into_iter().map(|b| u8::from(!b)).collect())
}

/// Those of `members` (pixel indices) that lie in 8-connected pieces of at least
/// `min` of them, pieces as [`clean`] counts them.
pub(super) fn in_large_pieces(members: &[usize], w: usize, h: usize, min: usize) -> Vec<usize> {
    let mut member = vec![false; w * h];
    for &i in members {
        member[i] = true;
    }
    let (labels, areas) = label_pieces((w, h), members.iter().copied(), |i| member[i]);
    members
        .iter()
        .copied()
        .filter(|&i| areas[labels[i] as usize] >= min)
        .collect()
}

/// Labels the 8-connected pieces of the pixels `member` admits, starting a piece
/// at each unlabelled one of `starts`: a label per pixel (0 = none, pieces from 1)
/// and each label's area (`areas[0]` = 0).
fn label_pieces(
    (w, h): (usize, usize),
    starts: impl Iterator<Item = usize>,
    member: impl Fn(usize) -> bool,
) -> (Vec<u32>, Vec<usize>) {
    let mut labels = vec![0u32; w * h];
    let mut areas: Vec<usize> = vec![0];
    let mut stack: Vec<(u32, u32)> = Vec::new();
    for start in starts {
        if !member(start) || labels[start] != 0 {
            continue;
        }
        let label = areas.len() as u32;
        let area = span_fill(
            &mut labels,
            (w, h),
            (start % w, start / w),
            Connectivity::Eight,
            &mut stack,
            |labels, i| member(i) && labels[i] == 0,
            |labels, i| labels[i] = label,
        );
        areas.push(area);
    }
    (labels, areas)
}

/// Area of the largest piece of `fg` (non-zero), 8-connected like the pieces
/// [`clean`] keeps, so the confidence's fragmentation measures what was kept.
pub(super) fn largest_piece(fg: &[u8], w: usize, h: usize) -> usize {
    let mut seen = vec![false; fg.len()];
    let mut stack = Vec::new();
    let mut best = 0;
    for start in 0..fg.len().min(w * h) {
        if fg[start] != 0 && !seen[start] {
            let area = span_fill(
                &mut seen,
                (w, h),
                (start % w, start / w),
                Connectivity::Eight,
                &mut stack,
                |seen, i| fg[i] != 0 && !seen[i],
                |seen, i| seen[i] = true,
            );
            best = best.max(area);
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pieces_are_8_connected_and_small_ones_dropped() {
        // 5×3: a diagonal run of three (one piece, 8-connected) and a lone pixel.
        let (w, h) = (5, 3);
        let members = [0, 6, 12, 4];
        assert_eq!(in_large_pieces(&members, w, h, 2), vec![0, 6, 12]);
        assert_eq!(in_large_pieces(&members, w, h, 4), Vec::<usize>::new());
    }

    #[test]
    fn an_opening_drops_what_is_narrower_than_its_disc() {
        // 12×8: a 6×6 block (x 1..7) and a bar 2 wide (x 9..11), both 6 tall.
        let (w, h) = (12, 8);
        let set: Vec<bool> = (0..w * h)
            .map(|i| {
                (1..7).contains(&(i % w)) && (1..7).contains(&(i / w))
                    || (9..11).contains(&(i % w)) && (1..7).contains(&(i / w))
            })
            .collect();
        let opened = dilate_within(&erode(&set, w, h, 2), &set, w, h, 2);
        assert_eq!(
            opened,
            (0..w * h).map(|i| set[i] && i % w < 8).collect::<Vec<_>>()
        );
    }

    /// A 40×30 grid with a filled rectangle, optionally with a hole and a speck.
    fn scene(hole: bool, speck: bool) -> (Vec<u8>, usize, usize) {
        let (w, h) = (40, 30);
        let mut fg = vec![0u8; w * h];
        for y in 5..25 {
            for x in 10..30 {
                fg[y * w + x] = 1;
            }
        }
        if hole {
            for y in 12..16 {
                for x in 18..22 {
                    fg[y * w + x] = 0;
                }
            }
        }
        if speck {
            fg[2 * w + 2] = 1;
        }
        (fg, w, h)
    }

    #[test]
    fn fills_holes_and_drops_specks() {
        let (fg, w, h) = scene(true, true);
        let out = clean(&fg, w, h).expect("a garment");
        assert_eq!(out[14 * w + 20], 1, "hole filled");
        assert_eq!(out[2 * w + 2], 0, "speck dropped");
        assert_eq!(out.iter().map(|&v| v as usize).sum::<usize>(), 20 * 20);
    }

    #[test]
    fn a_notch_open_to_the_border_stays_background() {
        let (mut fg, w, h) = scene(false, false);
        // Cut a gap from the bottom edge of the rectangle up into it, like trouser legs.
        for y in 15..25 {
            for x in 19..21 {
                fg[y * w + x] = 0;
            }
        }
        let out = clean(&fg, w, h).expect("a garment");
        assert_eq!(out[20 * w + 19], 0);
    }

    #[test]
    fn span_fill_reaches_around_obstacles() {
        // A U-shaped wall: the fill must go down, around and back up.
        let (w, h) = (7, 6);
        let wall = |x: usize, y: usize| ((x == 2 || x == 4) && y < 5) || (y == 4 && (2..=4).contains(&x));
        let mut filled = vec![false; w * h];
        let mut stack = Vec::new();
        let count = span_fill(
            &mut filled,
            (w, h),
            (3, 0),
            Connectivity::Four,
            &mut stack,
            |f, i| !f[i] && !wall(i % w, i / w),
            |f, i| f[i] = true,
        );
        assert_eq!(count, 4, "only the inside of the U is reachable from its mouth");
        let mut outside = vec![false; w * h];
        let count = span_fill(
            &mut outside,
            (w, h),
            (0, 0),
            Connectivity::Four,
            &mut stack,
            |f, i| !f[i] && !wall(i % w, i / w),
            |f, i| f[i] = true,
        );
        assert_eq!(count, w * h - 11 - 4, "everything else, around the bottom");
    }

    #[test]
    fn a_thin_diagonal_part_stays_attached() {
        // A 20×20 body with a one-pixel wire running diagonally up from its
        // corner (a hanger's arm): every wire pixel touches the next only at a
        // corner, so 4-connected it would be four specks of one pixel each.
        let (mut fg, w, h) = scene(false, false);
        for k in 1..=4 {
            fg[(5 - k) * w + 10 - k] = 1;
        }
        let out = clean(&fg, w, h).expect("a garment");
        for k in 1..=4 {
            assert_eq!(out[(5 - k) * w + 10 - k], 1, "wire pixel {k} kept");
        }
    }

    #[test]
    fn the_largest_piece_counts_diagonal_neighbours() {
        let (mut fg, w, h) = scene(false, true);
        assert_eq!(largest_piece(&fg, w, h), 400);
        fg[4 * w + 9] = 1; // touches the body's corner diagonally
        assert_eq!(largest_piece(&fg, w, h), 401);
        assert_eq!(largest_piece(&[], 0, 0), 0);
    }

    #[test]
    fn a_diagonal_ring_encloses_its_inside() {
        // A diamond of one-pixel diagonal steps: the backdrop, 4-connected, cannot
        // slip between two diagonal neighbours, so the inside is a hole and filled.
        let (w, h) = (40, 40);
        let mut fg = vec![0u8; w * h];
        let (cx, cy, r) = (20isize, 20isize, 12isize);
        for y in 0..h as isize {
            for x in 0..w as isize {
                if (x - cx).abs() + (y - cy).abs() == r {
                    fg[y as usize * w + x as usize] = 1;
                }
            }
        }
        let out = clean(&fg, w, h).expect("a garment");
        assert_eq!(out[20 * w + 20], 1, "the inside is filled");
        assert_eq!(out[2 * w + 2], 0, "the outside stays backdrop");
    }

    #[test]
    fn nothing_significant_is_none() {
        let (w, h) = (100, 100);
        let mut fg = vec![0u8; w * h];
        fg[5050] = 1;
        assert!(clean(&fg, w, h).is_none());
        assert!(clean(&[], 0, 0).is_none());
    }
}
