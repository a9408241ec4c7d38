//! A graph with U²-Netp's layer structure (Qin et al. 2020, the 4.7 MB
//! "U²-Net†"): six encoder and five decoder RSU blocks of 3×3 convolutions
//! (16 channels inside a block, 64 between blocks) with ReLU, max-pooling,
//! dilated convolutions, bilinear upsampling and residual adds; six side maps
//! upsampled, fused by a 1×1 convolution and a sigmoid (output 0).
//!
//! The weights are pseudo-random: the map means nothing. It exists to time
//! what a real network of this size costs through tract on this machine, and to
//! check that tract runs the operators such exports use (the batch norms of the
//! original fold into the convolutions, so they are left out).

use tract_onnx::pb::{NodeProto, TensorProto, tensor_proto::DataType};

use super::{GraphParts, attr_int, attr_ints, attr_string, floats, node};

/// Channels between blocks and inside a block (U²-Netp's `out_ch` and `mid_ch`).
const OUT: i64 = 64;
const MID: i64 = 16;

/// A tensor of the graph: name, channels, square side.
#[derive(Clone)]
struct T {
    name: String,
    channels: i64,
    side: i64,
}

struct Builder {
    parts: GraphParts,
    count: usize,
    /// xorshift state for the weights.
    state: u64,
}

impl Builder {
    fn fresh(&mut self, prefix: &str) -> String {
        self.count += 1;
        format!("{prefix}{}", self.count)
    }

    /// Uniform weights in ±√(6 / fan_in) (He initialisation), so activations
    /// stay finite through the depth.
    fn weights(&mut self, len: usize, fan_in: i64) -> Vec<f32> {
        let bound = (6.0 / fan_in as f32).sqrt();
        (0..len)
            .map(|_| {
                self.state ^= self.state << 13;
                self.state ^= self.state >> 7;
                self.state ^= self.state << 17;
                ((self.state >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0) * bound
            })
            .collect()
    }

    fn push(&mut self, n: NodeProto) {
        self.parts.nodes.push(n);
    }

    fn constant(&mut self, t: TensorProto) -> String {
        let name = t.name.clone();
        self.parts.initializers.push(t);
        name
    }

    /// `kernel`×`kernel` convolution with `dilation`, same padding; ReLU when `relu`.
    fn conv(&mut self, x: &T, out: i64, kernel: i64, dilation: i64, relu: bool) -> T {
        let fan_in = x.channels * kernel * kernel;
        let values = self.weights((out * fan_in) as usize, fan_in);
        let (w, b) = (self.fresh("w"), self.fresh("b"));
        let w = self.constant(floats(&w, &[out, x.channels, kernel, kernel], &values));
        let b = self.constant(floats(&b, &[out], &vec![0.0; out as usize]));
        let pad = dilation * (kernel - 1) / 2;
        let y = self.fresh("conv");
        let mut n = node("Conv", &[&x.name, &w, &b], &y);
        n.attribute = vec![
            attr_ints("kernel_shape", &[kernel, kernel]),
            attr_ints("dilations", &[dilation, dilation]),
            attr_ints("pads", &[pad, pad, pad, pad]),
        ];
        self.push(n);
        let mut t = T {
            name: y,
            channels: out,
            side: x.side,
        };
        if relu {
            let r = self.fresh("relu");
            self.push(node("Relu", &[&t.name], &r));
            t.name = r;
        }
        t
    }

    fn rebn(&mut self, x: &T, out: i64, dilation: i64) -> T {
        self.conv(x, out, 3, dilation, true)
    }

    /// 2×2 max-pooling, stride 2, rounding up (`ceil_mode`).
    fn pool(&mut self, x: &T) -> T {
        let y = self.fresh("pool");
        let mut n = node("MaxPool", &[&x.name], &y);
        n.attribute = vec![
            attr_ints("kernel_shape", &[2, 2]),
            attr_ints("strides", &[2, 2]),
            attr_int("ceil_mode", 1),
        ];
        self.push(n);
        T {
            name: y,
            channels: x.channels,
            side: (x.side + 1) / 2,
        }
    }

    /// Bilinear resize of `x` to `side`.
    fn up(&mut self, x: &T, side: i64) -> T {
        let sizes = TensorProto {
            name: self.fresh("sizes"),
            dims: vec![4],
            data_type: DataType::Int64 as i32,
            int64_data: vec![1, x.channels, side, side],
            ..TensorProto::default()
        };
        let sizes = self.constant(sizes);
        let y = self.fresh("up");
        let mut n = node("Resize", &[&x.name, "", "", &sizes], &y);
        n.attribute = vec![
            attr_string("mode", "linear"),
            attr_string("coordinate_transformation_mode", "half_pixel"),
        ];
        self.push(n);
        T {
            name: y,
            channels: x.channels,
            side,
        }
    }

    fn cat(&mut self, a: &T, b: &T) -> T {
        let y = self.fresh("cat");
        let mut n = node("Concat", &[&a.name, &b.name], &y);
        n.attribute = vec![attr_int("axis", 1)];
        self.push(n);
        T {
            name: y,
            channels: a.channels + b.channels,
            side: a.side,
        }
    }

    fn add(&mut self, a: &T, b: &T) -> T {
        let y = self.fresh("add");
        self.push(node("Add", &[&a.name, &b.name], &y));
        T { name: y, ..a.clone() }
    }

    /// RSU-`height`: an in-block U-Net of `height` levels with a residual.
    fn rsu(&mut self, x: &T, height: usize, out: i64) -> T {
        let input = self.rebn(x, out, 1);
        let mut levels = vec![self.rebn(&input, MID, 1)];
        for _ in 1..height - 1 {
            let last = levels.last().cloned().unwrap_or_else(|| input.clone());
            let pooled = self.pool(&last);
            levels.push(self.rebn(&pooled, MID, 1));
        }
        let deepest = levels.last().cloned().unwrap_or_else(|| input.clone());
        let top = self.rebn(&deepest, MID, 2);
        let joined = self.cat(&top, &deepest);
        let mut d = self.rebn(&joined, MID, 1);
        for i in (0..levels.len() - 1).rev() {
            let up = self.up(&d, levels[i].side);
            let joined = self.cat(&up, &levels[i]);
            d = self.rebn(&joined, if i == 0 { out } else { MID }, 1);
        }
        self.add(&d, &input)
    }

    /// RSU-4F: dilations instead of pooling (the deepest stages).
    fn rsu4f(&mut self, x: &T, out: i64) -> T {
        let input = self.rebn(x, out, 1);
        let h1 = self.rebn(&input, MID, 1);
        let h2 = self.rebn(&h1, MID, 2);
        let h3 = self.rebn(&h2, MID, 4);
        let h4 = self.rebn(&h3, MID, 8);
        let j = self.cat(&h4, &h3);
        let d3 = self.rebn(&j, MID, 4);
        let j = self.cat(&d3, &h2);
        let d2 = self.rebn(&j, MID, 2);
        let j = self.cat(&d2, &h1);
        let d1 = self.rebn(&j, out, 1);
        self.add(&d1, &input)
    }
}

/// The graph's nodes and initialisers for a `[1, 3, side, side]` input named
/// `image` and a `[1, 1, side, side]` output named `mask`.
pub(super) fn graph(side: i64) -> GraphParts {
    let mut b = Builder {
        parts: GraphParts::default(),
        count: 0,
        state: 0x9E37_79B9_7F4A_7C15,
    };
    let x = T {
        name: "image".into(),
        channels: 3,
        side,
    };
    // Encoder: RSU7, 6, 5, 4 with pooling between, then two RSU-4F.
    let mut encoder = Vec::new();
    let mut h = x;
    for height in [7, 6, 5, 4] {
        let e = b.rsu(&h, height, OUT);
        h = b.pool(&e);
        encoder.push(e);
    }
    let e5 = b.rsu4f(&h, OUT);
    let p5 = b.pool(&e5);
    let e6 = b.rsu4f(&p5, OUT);
    // Decoder: RSU-4F, then RSU4, 5, 6, 7, each on the upsampled deeper output
    // joined with the encoder's output of its level.
    let up = b.up(&e6, e5.side);
    let j = b.cat(&up, &e5);
    let mut decoder = vec![b.rsu4f(&j, OUT)];
    for (level, height) in [(3usize, 4usize), (2, 5), (1, 6), (0, 7)] {
        let last = decoder.last().cloned().unwrap_or_else(|| e6.clone());
        let up = b.up(&last, encoder[level].side);
        let j = b.cat(&up, &encoder[level]);
        decoder.push(b.rsu(&j, height, OUT));
    }
    // Side maps of every decoder output and the deepest encoder output, at full size.
    let mut sides: Vec<T> = decoder.iter().rev().cloned().collect();
    sides.push(e6);
    let mut maps = Vec::new();
    for s in &sides {
        let m = b.conv(s, 1, 3, 1, false);
        maps.push(if m.side == side { m } else { b.up(&m, side) });
    }
    let mut fused = maps[0].clone();
    for m in &maps[1..] {
        fused = b.cat(&fused, m);
    }
    let d0 = b.conv(&fused, 1, 1, 1, false);
    b.push(node("Sigmoid", &[&d0.name], "mask"));
    b.parts
}
