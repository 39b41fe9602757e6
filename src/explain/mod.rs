//! Attributions: which input values one output element depends on, taken with respect to the
//! model's input tensor as fed, so that any runtime can check them by finite differences.
//!
//! Every method is a type with one entry point, [`Attribution::attribute`], and the same
//! vocabulary (target element, baseline, steps, samples, noise, seed), like Captum's `attribute`:
//! `gradient` (the saliency map), `input_x_gradient`, `integrated_gradients`, `smoothgrad` and
//! `gradcam`. [`comparison`] runs one method on an image, on a collision of it and on a random
//! control of the same size, and measures how far the maps agree ([`agreement`]).
//!
//! Why a collision z of x gives the same maps: z − x lies in the null space of the affine front
//! end, so every value after the first linear layer, and every gradient with respect to those
//! values, is the same for both; the gradient with respect to the input is Wᵀ times the same
//! downstream gradient, so it is the same too, and so are Grad-CAM (activations and gradients of a
//! later layer) and SmoothGrad with the same noise (x + ε and z + ε still collide). Input × gradient
//! multiplies that same gradient by a different input, and integrated gradients by a different
//! path length: their maps differ by exactly (z − x) ⊙ ĝ, by design.

pub mod agreement;
pub mod figure;
pub mod gradcam;
pub mod gradient;
pub mod input_x_gradient;
pub mod integrated_gradients;
pub mod smoothgrad;

pub use agreement::{agreement, Agreement};
pub use gradcam::GradCam;
pub use gradient::Gradient;
pub use input_x_gradient::InputXGradient;
pub use integrated_gradients::IntegratedGradients;
pub use smoothgrad::SmoothGrad;

use crate::differentiable::{Differentiable, Target};
use anyhow::{bail, Result};
use serde::Serialize;

/// The attribution methods, by the names the command line uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
pub enum Method {
    /// ∂score/∂input (Simonyan et al. 2014).
    #[cfg_attr(feature = "cli", value(name = "gradient"))]
    #[serde(rename = "gradient")]
    Gradient,
    /// input ⊙ ∂score/∂input (Shrikumar et al. 2016).
    #[cfg_attr(feature = "cli", value(name = "input-x-gradient"))]
    #[serde(rename = "input-x-gradient")]
    InputXGradient,
    /// (x − baseline) ⊙ the mean gradient along the straight path (Sundararajan et al. 2017).
    #[cfg_attr(feature = "cli", value(name = "integrated-gradients"))]
    #[serde(rename = "integrated-gradients")]
    IntegratedGradients,
    /// The mean gradient over Gaussian-noised copies of the input (Smilkov et al. 2017).
    #[cfg_attr(feature = "cli", value(name = "smoothgrad"))]
    #[serde(rename = "smoothgrad")]
    SmoothGrad,
    /// ReLU(Σ_c α_c A_c) at a spatial layer, upsampled to the input (Selvaraju et al. 2017).
    #[cfg_attr(feature = "cli", value(name = "gradcam"))]
    #[serde(rename = "gradcam")]
    GradCam,
}

impl Method {
    pub fn name(self) -> &'static str {
        match self {
            Method::Gradient => "gradient",
            Method::InputXGradient => "input-x-gradient",
            Method::IntegratedGradients => "integrated-gradients",
            Method::SmoothGrad => "smoothgrad",
            Method::GradCam => "gradcam",
        }
    }
}

/// Integrated gradients' starting point, in the units of the input tensor as fed.
#[derive(Clone, Debug, Default)]
pub enum Baseline {
    /// All zeros.
    #[default]
    Zeros,
    /// A tensor shaped like the input.
    Tensor(Vec<f64>),
    /// A tensor shaped like the input, with the name the report gives it (its file).
    Named(String, Vec<f64>),
}

impl Baseline {
    /// The baseline as a tensor of `shape`: zeros or the tensor given.
    pub fn resolve(&self, shape: &[usize]) -> Result<Vec<f64>> {
        let n: usize = shape.iter().product();
        let values = match self {
            Baseline::Zeros => vec![0.0; n],
            Baseline::Tensor(v) => v.clone(),
            Baseline::Named(_, v) => v.clone(),
        };
        if values.len() != n {
            bail!("the baseline holds {} values; the input {n}", values.len());
        }
        Ok(values)
    }

    /// How reports name it: "zeros", the file, or "given".
    pub fn describe(&self) -> String {
        match self {
            Baseline::Zeros => "zeros".into(),
            Baseline::Tensor(_) => "given".into(),
            Baseline::Named(name, _) => name.clone(),
        }
    }
}

/// The arguments every method shares; each reads the ones it needs.
#[derive(Clone, Debug, Serialize)]
pub struct Settings {
    /// The integrated-gradients baseline.
    #[serde(skip)]
    pub baseline: Baseline,
    /// Integrated gradients: points on the path (Riemann midpoint rule).
    pub steps: usize,
    /// SmoothGrad: noisy copies of the input.
    pub samples: usize,
    /// SmoothGrad: noise standard deviation as a fraction of the input's value range (max − min).
    pub noise: f64,
    /// SmoothGrad: seed of the noise (ChaCha8); the same seed gives the same noise for any input.
    pub seed: u64,
    /// Grad-CAM: the layer; `None`: chosen by [`gradcam::default_layer`].
    pub layer: Option<String>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            baseline: Baseline::Zeros,
            steps: 32,
            samples: 16,
            noise: 0.15,
            seed: 0,
            layer: None,
        }
    }
}

impl Settings {
    /// One-line errors for settings no method could use.
    pub fn check(&self) -> Result<()> {
        if self.steps == 0 {
            bail!("`steps` must be at least 1");
        }
        if self.samples == 0 {
            bail!("`samples` must be at least 1");
        }
        if !(self.noise.is_finite() && self.noise >= 0.0) {
            bail!("`noise` must be a finite fraction ≥ 0, not {}", self.noise);
        }
        Ok(())
    }
}

/// One attribution map and what it was computed from.
#[derive(Clone, Debug)]
pub struct AttributionMap {
    /// Shaped like the model's input tensor, in its order.
    pub values: Vec<f64>,
    /// The target element's value at the input.
    pub score: f64,
    /// For maps that multiply a gradient by an input difference: that gradient (input × gradient:
    /// the gradient at the input; integrated gradients: the mean gradient along the path).
    pub multiplied_gradient: Option<Vec<f64>>,
    /// Integrated gradients: the target's value at the baseline.
    pub baseline_score: Option<f64>,
}

/// Settings a method resolved for itself, as reports state them.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Details {
    /// SmoothGrad: σ in the units of the input tensor.
    pub noise_sigma: Option<f64>,
    /// Grad-CAM: the layer, its shape and how it is laid out in space.
    pub layer: Option<String>,
    pub layer_shape: Option<Vec<usize>>,
    pub layer_kind: Option<gradcam::LayerKind>,
}

/// An attribution method: one entry point, the same arguments for every method.
pub trait Attribution {
    fn name(&self) -> &'static str;

    /// Forward/backward passes one call makes (for progress bars).
    fn evaluations(&self) -> usize {
        1
    }

    /// What the method resolved from the settings (σ, layer), for reports.
    fn details(&self) -> Details {
        Details::default()
    }

    /// The map of `target` at `input` (the tensor as fed); `progress` is called once per
    /// evaluation.
    fn attribute_with_progress(
        &self,
        engine: &Differentiable,
        input: &[f64],
        target: Target,
        progress: &dyn Fn(),
    ) -> Result<AttributionMap>;

    /// The map of `target` at `input`, the tensor as fed.
    fn attribute(&self, engine: &Differentiable, input: &[f64], target: Target) -> Result<AttributionMap> {
        self.attribute_with_progress(engine, input, target, &|| {})
    }
}

/// Where the pixels of the input tensor sit: what Grad-CAM needs to broadcast a spatial map.
#[derive(Clone, Debug)]
pub struct PixelGrid {
    pub height: usize,
    pub width: usize,
    /// For every element of the input tensor, its pixel `y · width + x` (`None`: not a pixel).
    pub position: Vec<Option<usize>>,
    /// The tensor is NHWC: feature maps are read as [1, h, w, C].
    pub channels_last: bool,
}

impl PixelGrid {
    /// From the preprocessing map (pixels → tensor) of an image model.
    pub fn of(gather: &crate::linop::AffineGather, grid: &crate::model::preprocess::Grid) -> PixelGrid {
        PixelGrid {
            height: grid.height,
            width: grid.width,
            position: gather.source.iter().map(|s| s.map(|k| k / grid.channels)).collect(),
            channels_last: grid.layout == Some(crate::model::preprocess::Layout::Nhwc),
        }
    }
}

/// The method `method` with `settings`. `reference` is the input whose value range sets
/// SmoothGrad's σ (the original: one σ, and one noise, for every input compared with it);
/// `first_layer_output` names the front end's output value, after which Grad-CAM looks for a
/// layer; `pixels` places the input tensor's values on the image.
pub fn method(
    method: Method,
    settings: &Settings,
    engine: &Differentiable,
    reference: &[f64],
    first_layer_output: Option<&str>,
    pixels: Option<&PixelGrid>,
) -> Result<Box<dyn Attribution>> {
    settings.check()?;
    if settings.layer.is_some() && method != Method::GradCam {
        bail!("`layer` applies to `method` gradcam only");
    }
    if !matches!(settings.baseline, Baseline::Zeros) && method != Method::IntegratedGradients {
        bail!("`baseline` applies to `method` integrated-gradients only");
    }
    Ok(match method {
        Method::Gradient => Box::new(Gradient),
        Method::InputXGradient => Box::new(InputXGradient),
        Method::IntegratedGradients => Box::new(IntegratedGradients {
            baseline: settings.baseline.resolve(engine.input_shape())?,
            steps: settings.steps,
        }),
        Method::SmoothGrad => Box::new(SmoothGrad::for_reference(
            reference,
            settings.noise,
            settings.samples,
            settings.seed,
        )),
        Method::GradCam => {
            let Some(pixels) = pixels else {
                bail!("Grad-CAM needs an image input (rank 4) to place its map on");
            };
            Box::new(GradCam::new(
                engine,
                settings.layer.as_deref(),
                first_layer_output,
                pixels.clone(),
            )?)
        }
    })
}

/// The target's value in the model's outputs.
pub(crate) fn score_of(outputs: &[crate::model::Value], target: Target) -> Result<f64> {
    let Some(out) = outputs.get(target.output) else {
        bail!(
            "the model has {} outputs; output {} does not exist",
            outputs.len(),
            target.output
        );
    };
    match out.data.get(target.index) {
        Some(v) => Ok(*v),
        None => bail!(
            "output index {} is out of range: output {} ({}) holds {} values",
            target.index,
            target.output,
            out.name,
            out.data.len()
        ),
    }
}
