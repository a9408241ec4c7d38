//! Tiny ONNX models for tests, written by the repository itself (no download, no
//! Python): ONNX `ModelProto`s built from tract-onnx's own protobuf types and
//! encoded with prost.
//!
//! The "saliency" model is one 1×1 convolution and a sigmoid: it lights up what
//! is darker than mid-grey, the way a salient-object model lights up a dark
//! garment on a light sweep. Its weights undo the configured normalisation, so
//! its answer does not depend on the mean/std used:
//! `map = sigmoid(GAIN · (THRESHOLD − mean_c(rgb_c)))` with rgb in 0–1. The
//! other kinds break the interface in one way each, for the start-up checks.

mod u2netp;

use std::path::Path;

use prost::Message;
use tract_onnx::pb::{
    AttributeProto, GraphProto, ModelProto, NodeProto, OperatorSetIdProto, TensorProto, TensorShapeProto,
    TypeProto, ValueInfoProto,
    attribute_proto::AttributeType,
    tensor_proto::DataType,
    tensor_shape_proto::{Dimension, dimension::Value as Dim},
    type_proto,
};

use crate::InputSpec;

/// ONNX IR version and default-domain opset the models declare.
const IR_VERSION: i64 = 7;
const OPSET: i64 = 13;
/// Lightness (RGB mean, 0–1) below which the saliency model says "garment".
pub const THRESHOLD: f32 = 0.5;
/// Logit per unit of lightness below [`THRESHOLD`]: a dark garment (0.15) gets
/// about 0.99, a white sweep (0.92) about 0.005.
pub const GAIN: f32 = 12.0;

/// Which test model to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `[1, 3, S, S]` → `[1, 1, S, S]` probabilities (the interface).
    Saliency,
    /// The same without the final sigmoid: logits (values outside 0–1).
    Logits,
    /// The same map as `[1, S, S]` (a squeezed channel axis, also accepted).
    Rank3Output,
    /// Three output channels `[1, 3, S, S]`: an image, not a map (rejected).
    RgbOutput,
    /// A rank-3 input `[3, S, S]` (rejected).
    Rank3Input,
    /// U²-Netp's layer structure with pseudo-random weights (see [`u2netp`]): for
    /// timing a real network's cost, its map means nothing. S should be a
    /// multiple of 32.
    U2netpLike,
}

/// Nodes and initialisers of a graph over the input `image` and output `mask`.
#[derive(Default)]
struct GraphParts {
    nodes: Vec<NodeProto>,
    initializers: Vec<TensorProto>,
}

/// The ONNX bytes of a `kind` model for inputs normalised as `spec` says.
pub fn model(kind: Kind, spec: &InputSpec) -> Vec<u8> {
    let s = i64::from(spec.size);
    // logit = GAIN·(THRESHOLD − Σ_c (std_c·x_c + mean_c)/3) for normalised x.
    let weights: Vec<f32> = spec.std.iter().map(|sd| -GAIN * sd / 3.0).collect();
    let bias = GAIN * (THRESHOLD - spec.mean.iter().sum::<f32>() / 3.0);
    let channels = if kind == Kind::RgbOutput { 3 } else { 1 };
    let mut initializer = vec![
        floats("w", &[channels, 3, 1, 1], &weights.repeat(channels as usize)),
        floats("b", &[channels], &vec![bias; channels as usize]),
    ];
    let (input_shape, mut nodes): (Vec<i64>, Vec<NodeProto>) = match kind {
        // Sigmoid of the input itself: the shape is all that is being tested.
        Kind::Rank3Input => (vec![3, s, s], vec![node("Sigmoid", &["image"], "mask")]),
        Kind::U2netpLike => {
            let parts = u2netp::graph(s);
            initializer = parts.initializers;
            (vec![1, 3, s, s], parts.nodes)
        }
        _ => (vec![1, 3, s, s], vec![conv("image", "logit")]),
    };
    let output_shape = match kind {
        Kind::Saliency => {
            nodes.push(node("Sigmoid", &["logit"], "mask"));
            vec![1, 1, s, s]
        }
        Kind::U2netpLike => vec![1, 1, s, s],
        Kind::Logits => {
            nodes.push(node("Identity", &["logit"], "mask"));
            vec![1, 1, s, s]
        }
        Kind::Rank3Output => {
            nodes.push(node("Sigmoid", &["logit"], "prob"));
            initializer.push(TensorProto {
                name: "shape".into(),
                dims: vec![3],
                data_type: DataType::Int64 as i32,
                int64_data: vec![1, s, s],
                ..TensorProto::default()
            });
            nodes.push(node("Reshape", &["prob", "shape"], "mask"));
            vec![1, s, s]
        }
        Kind::RgbOutput => {
            nodes.push(node("Sigmoid", &["logit"], "mask"));
            vec![1, 3, s, s]
        }
        Kind::Rank3Input => vec![3, s, s],
    };
    ModelProto {
        ir_version: IR_VERSION,
        producer_name: "atelier-segment test_models".into(),
        opset_import: vec![OperatorSetIdProto {
            domain: String::new(),
            version: OPSET,
        }],
        graph: Some(GraphProto {
            name: format!("{kind:?}"),
            node: nodes,
            initializer: if kind == Kind::Rank3Input {
                Vec::new()
            } else {
                initializer
            },
            input: vec![value_info("image", &input_shape)],
            output: vec![value_info("mask", &output_shape)],
            ..GraphProto::default()
        }),
        ..ModelProto::default()
    }
    .encode_to_vec()
}

/// Writes a `kind` model to `path`.
///
/// # Errors
///
/// When the file cannot be written.
pub fn write(path: &Path, kind: Kind, spec: &InputSpec) -> std::io::Result<()> {
    std::fs::write(path, model(kind, spec))
}

/// What the saliency model answers for one pixel (RGB 0–255), for assertions.
pub fn expected(rgb: [u8; 3]) -> f32 {
    let lightness = rgb.iter().map(|&v| f32::from(v) / 255.0).sum::<f32>() / 3.0;
    1.0 / (1.0 + (-GAIN * (THRESHOLD - lightness)).exp())
}

fn floats(name: &str, dims: &[i64], values: &[f32]) -> TensorProto {
    TensorProto {
        name: name.into(),
        dims: dims.to_vec(),
        data_type: DataType::Float as i32,
        float_data: values.to_vec(),
        ..TensorProto::default()
    }
}

fn node(op: &str, inputs: &[&str], output: &str) -> NodeProto {
    NodeProto {
        op_type: op.into(),
        name: output.into(),
        input: inputs.iter().map(|s| (*s).to_owned()).collect(),
        output: vec![output.into()],
        ..NodeProto::default()
    }
}

fn attr_ints(name: &str, v: &[i64]) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        r#type: AttributeType::Ints as i32,
        ints: v.to_vec(),
        ..AttributeProto::default()
    }
}

fn attr_int(name: &str, v: i64) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        r#type: AttributeType::Int as i32,
        i: v,
        ..AttributeProto::default()
    }
}

fn attr_string(name: &str, v: &str) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        r#type: AttributeType::String as i32,
        s: v.as_bytes().to_vec(),
        ..AttributeProto::default()
    }
}

/// A 1×1 convolution with the `w` and `b` initialisers.
fn conv(input: &str, output: &str) -> NodeProto {
    NodeProto {
        attribute: vec![attr_ints("kernel_shape", &[1, 1]), attr_ints("strides", &[1, 1])],
        ..node("Conv", &[input, "w", "b"], output)
    }
}

fn value_info(name: &str, shape: &[i64]) -> ValueInfoProto {
    ValueInfoProto {
        name: name.into(),
        r#type: Some(TypeProto {
            value: Some(type_proto::Value::TensorType(type_proto::Tensor {
                elem_type: DataType::Float as i32,
                shape: Some(TensorShapeProto {
                    dim: shape
                        .iter()
                        .map(|&d| Dimension {
                            value: Some(Dim::DimValue(d)),
                            ..Dimension::default()
                        })
                        .collect(),
                }),
            })),
            ..TypeProto::default()
        }),
        ..ValueInfoProto::default()
    }
}
