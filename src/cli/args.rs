//! The command line as clap reads it: one argument struct per command, the shared model,
//! input and preprocessing arguments, and the parsers of pixel amounts and fractions.

use anyhow::{bail, Context, Result};
use blindspot::attack::Norm;
use blindspot::explain::Method;
use blindspot::model::preprocess::{ChannelOrder, Layout};
use blindspot::pipeline::attack::{AttackMethod, VARIANT_MARGIN};
use blindspot::search::{Distance, Mode};
use blindspot::Preprocess;
use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

#[derive(Parser)]
#[command(
    name = "blindspot",
    version,
    about = "Find the input directions a neural network cannot see, and build exact, verified feature collisions",
    after_help = super::EXIT_CODES
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// No progress bar.
    #[arg(long, global = true)]
    pub quiet: bool,
}

/// A pixel-unit amount written as a number or a fraction: 0.03, 8/255.
pub fn pixel_amount(s: &str) -> Result<f64, String> {
    let parse = |t: &str| {
        t.trim()
            .parse::<f64>()
            .map_err(|_| format!("{s} is not a number or a fraction like 8/255"))
    };
    let v = match s.split_once('/') {
        Some((a, b)) => parse(a)? / parse(b)?,
        None => parse(s)?,
    };
    if v.is_finite() && v >= 0.0 {
        Ok(v)
    } else {
        Err(format!("{s} is not a finite amount ≥ 0"))
    }
}

/// A length in pixel units that must move something: a finite number > 0.
pub fn positive_length(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 => Ok(v),
        _ => Err(format!("{s} is not a finite length > 0")),
    }
}

/// A tolerance relative to σ_max: a number in (0, 1].
pub fn fraction_of_sigma_max(s: &str) -> Result<f64, String> {
    let v: f64 = s.parse().map_err(|_| format!("{s} is not a number"))?;
    if v.is_finite() && v > 0.0 && v <= 1.0 {
        Ok(v)
    } else {
        Err(format!("{s} is not a fraction of sigma_max in (0, 1]"))
    }
}

#[derive(Args, Clone)]
pub struct ModelArgs {
    /// The ONNX model.
    pub model: PathBuf,
    /// Input shape where the model's is dynamic, e.g. 1,3,224,224.
    #[arg(long, value_delimiter = ',')]
    pub input_shape: Option<Vec<usize>>,
    /// Relative rank tolerance (× σ_max); default: numpy's matrix_rank rule for the stored precision.
    /// Above rounding level it is a budget: approximate collisions along directions whose
    /// first-layer response is at most this fraction of σ_max, with the guaranteed bound reported.
    #[arg(long, visible_alias = "budget", value_name = "REL", value_parser = fraction_of_sigma_max)]
    pub tol: Option<f64>,
    #[command(flatten)]
    pub inputs: InputArgs,
    /// Print the JSON report instead of the table.
    #[arg(long)]
    pub json: bool,
}

/// Models with several inputs: which one is the image, and what the others are fed.
#[derive(Args, Clone)]
pub struct InputArgs {
    /// The image input of a model with several inputs (default: the only one not held).
    #[arg(long = "input", value_name = "NAME")]
    pub image_input: Option<String>,
    /// Another input, fed unchanged to every run: NAME=FILE, an image (preprocessed like the
    /// image input) or a .npy float32 tensor exactly as fed. Repeat for each.
    #[arg(long = "hold", value_name = "NAME=FILE", value_parser = held_input)]
    pub hold: Vec<blindspot::HeldInput>,
}

pub fn held_input(s: &str) -> Result<blindspot::HeldInput, String> {
    blindspot::HeldInput::parse(s).map_err(|e| e.to_string())
}

impl InputArgs {
    pub fn choice(&self) -> blindspot::InputChoice {
        blindspot::InputChoice {
            image: self.image_input.clone(),
            held: self.hold.clone(),
        }
    }
}

/// What a command loads its model for (`open_with` supplies the preprocessing itself).
pub fn load_request<'a>(
    shape: Option<&'a [usize]>,
    image: Option<&'a std::path::Path>,
    inputs: &'a blindspot::InputChoice,
    preprocess: Option<&'a Preprocess>,
) -> blindspot::LoadRequest<'a> {
    blindspot::LoadRequest {
        input_shape: shape,
        image,
        inputs: Some(inputs),
        preprocess,
    }
}

#[derive(Args, Clone)]
pub struct PreprocessArgs {
    /// Input layout (default: from the model's input shape).
    #[arg(long, value_enum)]
    pub layout: Option<Layout>,
    /// Channel order the model expects.
    #[arg(long, value_enum, default_value = "rgb")]
    pub channels: ChannelOrder,
    /// Pixel value range the model expects before normalisation: 1 or 255.
    #[arg(long, default_value = "1")]
    pub scale: f64,
    /// Per-channel mean subtracted after scaling, e.g. 0.485,0.456,0.406.
    #[arg(long, value_delimiter = ',')]
    pub mean: Option<Vec<f64>>,
    /// Per-channel std divided after the mean, e.g. 0.229,0.224,0.225.
    #[arg(long, value_delimiter = ',')]
    pub std: Option<Vec<f64>>,
    /// Pixel grid WxH for a model with a dynamic input size, or "auto" (the model's size).
    #[arg(long, default_value = "auto")]
    pub resize: String,
}

#[derive(Subcommand)]
pub enum Command {
    /// The whole idea in one run, on the embedded digit models: audit, collisions in every mode, verification.
    Demo(DemoArgs),
    /// Measure the null space of the model's front end and the rank of every linear layer.
    Audit(AuditArgs),
    /// Build inputs that the model cannot tell from IMAGE, verified through the whole model.
    Collide(CollideArgs),
    /// An adversarial image by FGSM or PGD (pixel space, untargeted or targeted) and, with
    /// --variants, many more images inside the same ε-ball that the model cannot tell from it
    /// (null-space moves), every one verified through the whole model.
    Attack(AttackArgs),
    /// How many input directions standard vision architectures ignore at their first linear
    /// layer: the built-in catalogue computed with generic weights, and model files measured
    /// beside it. Writes the figure survey.png.
    Survey(SurveyArgs),
    /// Attribution maps of one output element with respect to the input tensor as fed; with
    /// --compare, the maps of a collision and of a random control of the same size beside the
    /// original's, with agreement figures.
    Explain(ExplainArgs),
    /// How similar two images are to a person (PSNR, SSIM) and, with --model, to the model
    /// (LPIPS-style feature distance from its own activations, cosine distance of its
    /// penultimate features). Inputs: .png (or any image) or .npy tensors as fed.
    Compare(CompareArgs),
    /// Compare two input tensors (.npy) through the whole model, value by value.
    Verify(VerifyArgs),
}

#[derive(Args)]
pub struct DemoArgs {
    #[arg(long, default_value = "blindspot-demo")]
    pub out: PathBuf,
    #[arg(long, default_value = "0")]
    pub seed: u64,
    /// One digit per model instead of three: a fast check.
    #[arg(long)]
    pub quick: bool,
    /// Print the JSON report instead of the table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args)]
pub struct AuditArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    #[command(flatten)]
    pub pre: PreprocessArgs,
}

#[derive(Args)]
pub struct CollideArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// The image to collide with.
    pub image: PathBuf,
    #[command(flatten)]
    pub pre: PreprocessArgs,
    #[arg(long, value_enum, default_value = "random")]
    pub mode: Mode,
    /// Image the collision should look like (mode target).
    #[arg(long)]
    pub target: Option<PathBuf>,
    /// What "closest to the target" measures (mode target): l2 (a QP per block) or l1
    /// (Σ |z − target|, an LP per block).
    #[arg(long, value_enum, default_value = "l2")]
    pub distance: Distance,
    /// Number of collisions.
    #[arg(long, default_value = "3")]
    pub count: usize,
    /// L2 length in pixel units of random directions (default 0.1 × √pixels).
    #[arg(long, value_parser = positive_length)]
    pub strength: Option<f64>,
    #[arg(long, default_value = "0")]
    pub seed: u64,
    #[arg(long, default_value = "blindspot-out")]
    pub out: PathBuf,
}

#[derive(Args)]
pub struct AttackArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// The clean image.
    pub image: PathBuf,
    #[command(flatten)]
    pub pre: PreprocessArgs,
    /// Radius of the threat model in pixel units of [0, 1], e.g. 8/255.
    #[arg(long, value_parser = pixel_amount)]
    pub eps: f64,
    #[arg(long, value_enum, default_value = "linf")]
    pub norm: Norm,
    #[arg(long, value_enum, default_value = "pgd")]
    pub method: AttackMethod,
    /// PGD steps.
    #[arg(long, default_value = "40")]
    pub steps: usize,
    /// PGD step size in pixel units, e.g. 2/255 (default: 2.5 × eps / steps).
    #[arg(long, value_parser = pixel_amount)]
    pub step_size: Option<f64>,
    /// PGD from a uniform random point of the ε-ball.
    #[arg(long)]
    pub random_start: bool,
    /// Targeted attack towards this class (default: untargeted, away from the clean prediction).
    #[arg(long)]
    pub target_class: Option<usize>,
    /// Null-space variants of the adversarial image inside the same ε-ball.
    #[arg(long, default_value = "0")]
    pub variants: usize,
    /// With --variants: the fraction of eps kept free for them; the attack runs at
    /// (1 − margin) × eps. At 0 the attack's result has no variant (README: "Attacks").
    #[arg(long, default_value_t = VARIANT_MARGIN)]
    pub variant_margin: f64,
    #[arg(long, default_value = "0")]
    pub seed: u64,
    #[arg(long, default_value = "blindspot-attack")]
    pub out: PathBuf,
}

#[derive(Args)]
pub struct SurveyArgs {
    /// ONNX model files to measure beside the catalogue.
    pub models: Vec<PathBuf>,
    /// Square input side for every catalogue entry instead of its own input size.
    #[arg(long)]
    pub input: Option<usize>,
    /// Input shape for model files whose input is dynamic, e.g. 1,3,224,224.
    #[arg(long, value_delimiter = ',')]
    pub input_shape: Option<Vec<usize>>,
    /// Print the rows as JSON.
    #[arg(long, conflicts_with_all = ["csv", "markdown"])]
    pub json: bool,
    /// Print the rows as CSV.
    #[arg(long, conflicts_with = "markdown")]
    pub csv: bool,
    /// Print the rows as a Markdown table.
    #[arg(long)]
    pub markdown: bool,
    /// Where the figure goes.
    #[arg(long, default_value = "survey.png")]
    pub figure: PathBuf,
    /// No figure.
    #[arg(long)]
    pub no_figure: bool,
    /// Seed of the generic random weights.
    #[arg(long, default_value = "0")]
    pub seed: u64,
}

#[derive(Args)]
pub struct ExplainArgs {
    /// The ONNX model.
    pub model: PathBuf,
    /// The image to explain.
    pub image: PathBuf,
    /// Input shape where the model's is dynamic, e.g. 1,3,224,224.
    #[arg(long, value_delimiter = ',')]
    pub input_shape: Option<Vec<usize>>,
    #[command(flatten)]
    pub inputs: InputArgs,
    #[command(flatten)]
    pub pre: PreprocessArgs,
    #[arg(long, value_enum, default_value = "gradient")]
    pub method: Method,
    /// Flat index of the explained element of the first output (default: its argmax).
    #[arg(long)]
    pub output_index: Option<usize>,
    /// A tensor shaped like the model input (collide's collide-000.npy) to explain beside the image.
    #[arg(long)]
    pub compare: Option<PathBuf>,
    /// Grad-CAM layer (an ONNX value name; default: the last spatial layer).
    #[arg(long)]
    pub layer: Option<String>,
    /// Integrated gradients: path points (Riemann midpoint rule).
    #[arg(long, default_value = "32")]
    pub steps: usize,
    /// Integrated gradients: the baseline, a .npy shaped like the model input (default: zeros).
    #[arg(long)]
    pub baseline: Option<PathBuf>,
    /// SmoothGrad: noisy samples.
    #[arg(long, default_value = "16")]
    pub samples: usize,
    /// SmoothGrad: noise σ as a fraction of the input's value range.
    #[arg(long, default_value = "0.15")]
    pub noise: f64,
    /// Seed of SmoothGrad's noise and of the control.
    #[arg(long, default_value = "0")]
    pub seed: u64,
    #[arg(long, default_value = "blindspot-explain")]
    pub out: PathBuf,
    /// Print the JSON report instead of the table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args)]
pub struct CompareArgs {
    pub a: PathBuf,
    pub b: PathBuf,
    /// The ONNX model for the feature metrics.
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Input shape where the model's is dynamic, e.g. 1,3,224,224.
    #[arg(long, value_delimiter = ',')]
    pub input_shape: Option<Vec<usize>>,
    #[command(flatten)]
    pub inputs: InputArgs,
    #[command(flatten)]
    pub pre: PreprocessArgs,
    /// Layers (ONNX value names) of the feature distance (default: four spread through the network).
    #[arg(long, value_delimiter = ',', requires = "model")]
    pub layers: Option<Vec<String>>,
    /// Print the JSON report instead of the table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args)]
pub struct VerifyArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    pub a: PathBuf,
    pub b: PathBuf,
    #[command(flatten)]
    pub pre: PreprocessArgs,
}

impl PreprocessArgs {
    pub fn preprocess(&self) -> Result<Preprocess> {
        if self.scale != 1.0 && self.scale != 255.0 {
            bail!("--scale must be 1 or 255, not {}", self.scale);
        }
        Ok(Preprocess {
            layout: self.layout,
            channels: self.channels,
            scale: self.scale,
            mean: self.mean.clone(),
            std: self.std.clone(),
        })
    }

    /// `--resize WxH` fixes the spatial size of a dynamic input.
    pub fn input_shape(&self, given: &Option<Vec<usize>>) -> Result<Option<Vec<usize>>> {
        if self.resize == "auto" {
            return Ok(given.clone());
        }
        let (w, h) = self
            .resize
            .split_once(['x', 'X'])
            .context("--resize takes WxH or auto")?;
        let (w, h): (usize, usize) = (
            w.parse().context("--resize width")?,
            h.parse().context("--resize height")?,
        );
        let mut shape = given.clone().unwrap_or(vec![1, 3, 0, 0]);
        if shape.len() != 4 {
            bail!("--resize needs a 4-D image input");
        }
        match self.layout {
            Some(Layout::Nhwc) => (shape[1], shape[2]) = (h, w),
            _ => (shape[2], shape[3]) = (h, w),
        }
        Ok(Some(shape))
    }
}
