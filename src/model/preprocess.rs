//! Pixels and the map from pixels to the model's input tensor.
//!
//! Pixel space is where collisions live: H×W×C values in [0, 1], channels in RGB order. The
//! preprocessing flags (layout, channel order, value scale, mean/std) make an `AffineGather` from
//! pixel space to the tensor the model is fed.

use crate::linop::AffineGather;
use anyhow::{bail, Context, Result};
use std::path::Path;

/// An image on the model's pixel grid: `data[(y · width + x) · channels + c]`, values in [0, 1].
#[derive(Clone, Debug, PartialEq)]
pub struct Pixels {
    pub height: usize,
    pub width: usize,
    pub channels: usize,
    pub data: Vec<f64>,
}

impl Pixels {
    pub fn with_data(&self, data: Vec<f64>) -> Pixels {
        Pixels { data, ..*self }
    }
    /// 8-bit RGB(A-free) image for people to look at; grey for one channel.
    pub fn to_rgb8(&self) -> image::RgbImage {
        let to8 = |v: f64| (v.clamp(0.0, 1.0) * 255.0).round() as u8;
        image::RgbImage::from_fn(self.width as u32, self.height as u32, |x, y| {
            let base = (y as usize * self.width + x as usize) * self.channels;
            let px = |c: usize| to8(self.data[base + c.min(self.channels - 1)]);
            image::Rgb([px(0), px(1), px(2)])
        })
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
#[serde(rename_all = "lowercase")]
pub enum Layout {
    Nchw,
    Nhwc,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
#[serde(rename_all = "lowercase")]
pub enum ChannelOrder {
    Rgb,
    Bgr,
}

/// How pixels in [0, 1] become the model's input tensor.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Preprocess {
    /// `None`: taken from the model's input shape.
    pub layout: Option<Layout>,
    pub channels: ChannelOrder,
    /// The value range the model expects before normalisation: 1 or 255.
    pub scale: f64,
    pub mean: Option<Vec<f64>>,
    pub std: Option<Vec<f64>>,
}

impl Default for Preprocess {
    fn default() -> Self {
        Preprocess {
            layout: None,
            channels: ChannelOrder::Rgb,
            scale: 1.0,
            mean: None,
            std: None,
        }
    }
}

/// Where pixels sit in the model's input tensor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Grid {
    pub height: usize,
    pub width: usize,
    pub channels: usize,
    /// `None` for inputs that are not images (rank other than 4): one row of values.
    pub layout: Option<Layout>,
}

impl Grid {
    pub fn len(&self) -> usize {
        self.height * self.width * self.channels
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Preprocess {
    /// The pixel grid of a model input of this shape.
    pub fn grid(&self, shape: &[usize]) -> Result<Grid> {
        if shape.len() != 4 {
            let n: usize = shape.iter().product();
            return Ok(Grid {
                height: 1,
                width: n,
                channels: 1,
                layout: None,
            });
        }
        if shape[0] != 1 {
            bail!(
                "blindspot works on one image at a time: the input batch must be 1, not {}",
                shape[0]
            );
        }
        let layout = self.layout.unwrap_or({
            let image_like = |c: usize| matches!(c, 1 | 3 | 4);
            if !image_like(shape[1]) && image_like(shape[3]) {
                Layout::Nhwc
            } else {
                Layout::Nchw
            }
        });
        let (c, h, w) = match layout {
            Layout::Nchw => (shape[1], shape[2], shape[3]),
            Layout::Nhwc => (shape[3], shape[1], shape[2]),
        };
        // An image has 1 (grey), 3 (colour) or 4 (with alpha) channels; a requested layout that
        // puts anything else there reads the tensor wrongly.
        if self.layout.is_some() && !matches!(c, 1 | 3 | 4) {
            let (flag, axis) = match layout {
                Layout::Nchw => ("nchw", "second"),
                Layout::Nhwc => ("nhwc", "last"),
            };
            bail!("`layout` {flag} reads the {axis} dimension of the input shape {shape:?} as channels, but an image has 1, 3 or 4, not {c}");
        }
        Ok(Grid {
            height: h,
            width: w,
            channels: c,
            layout: Some(layout),
        })
    }

    /// The affine map from pixels to the model's input tensor of `shape`.
    pub fn gather(&self, shape: &[usize]) -> Result<AffineGather> {
        let grid = self.grid(shape)?;
        let c = grid.channels;
        let per_channel = |v: &Option<Vec<f64>>, name: &str, default: f64| -> Result<Vec<f64>> {
            match v {
                None => Ok(vec![default; c]),
                Some(v) if v.len() == 1 => Ok(vec![v[0]; c]),
                Some(v) if v.len() == c => Ok(v.clone()),
                Some(v) => bail!("--{name} has {} values but the model has {c} channels", v.len()),
            }
        };
        let mean = per_channel(&self.mean, "mean", 0.0)?;
        let std = per_channel(&self.std, "std", 1.0)?;
        if let Some(bad) = std.iter().find(|s| **s == 0.0 || !s.is_finite()) {
            bail!("`std` must be finite and non-zero, got {bad}");
        }
        let n = grid.len();
        let (mut source, mut scale, mut offset) = (Vec::with_capacity(n), Vec::with_capacity(n), Vec::with_capacity(n));
        for t in 0..n {
            // Tensor index t → (channel in tensor, y, x).
            let (tc, y, x) = match grid.layout {
                None => (0, 0, t),
                Some(Layout::Nchw) => (
                    t / (grid.height * grid.width),
                    (t / grid.width) % grid.height,
                    t % grid.width,
                ),
                Some(Layout::Nhwc) => (t % c, t / (c * grid.width), (t / c) % grid.width),
            };
            let pc = if self.channels == ChannelOrder::Bgr && c == 3 {
                2 - tc
            } else {
                tc
            };
            source.push(Some((y * grid.width + x) * c + pc));
            scale.push(self.scale / std[tc]);
            offset.push(-mean[tc] / std[tc]);
        }
        Ok(AffineGather {
            input_dim: n,
            shape: shape.to_vec(),
            source,
            scale,
            offset,
        })
    }
}

/// An image decoded onto the model's grid, with what happened to it on the way.
pub type GridImage = (Pixels, ImageNotes);

/// What happened to an image on its way to the model grid, for the report.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct ImageNotes {
    pub path: String,
    pub original_size: [u32; 2],
    pub original_channels: u8,
    pub notes: Vec<String>,
}

/// Decodes an image and brings it onto the model's pixel grid (channel count, then size).
pub fn load_image(path: &Path, grid: &Grid) -> Result<GridImage> {
    if grid.layout.is_none() {
        bail!("the model input is not an image (rank 4): feed it a .npy tensor instead");
    }
    let bytes = std::fs::read(path).with_context(|| format!("cannot open image {}", path.display()))?;
    decode_image(&bytes, &path.display().to_string(), grid)
}

/// Decodes an encoded image held in memory onto the model's grid; `name` labels it in messages.
pub fn decode_image(bytes: &[u8], name: &str, grid: &Grid) -> Result<(Pixels, ImageNotes)> {
    if grid.layout.is_none() {
        bail!("the model input is not an image (rank 4): feed it a .npy tensor instead");
    }
    let img = image::ImageReader::new(std::io::Cursor::new(bytes))
        .with_guessed_format()
        .with_context(|| format!("cannot read image {name}"))?
        .decode()
        .map_err(|e| anyhow::anyhow!("cannot decode image {name}: {e}"))?;
    let mut notes = ImageNotes {
        path: name.to_string(),
        original_size: [img.width(), img.height()],
        original_channels: img.color().channel_count(),
        notes: vec![],
    };
    if img.color().has_alpha() {
        notes.notes.push("alpha channel dropped".into());
    }
    let (w, h) = (grid.width as u32, grid.height as u32);
    let filter = image::imageops::FilterType::Triangle;
    if (img.width(), img.height()) != (w, h) {
        notes.notes.push(format!(
            "resized from {}x{} to {w}x{h} (bilinear)",
            img.width(),
            img.height()
        ));
    }
    let data: Vec<f64> = match grid.channels {
        1 => {
            if img.color().has_color() {
                notes.notes.push("colour converted to grey (Rec. 709 luma)".into());
            }
            let g = image::imageops::resize(&img.to_luma32f(), w, h, filter);
            g.into_raw().into_iter().map(|v| (v as f64).clamp(0.0, 1.0)).collect()
        }
        3 => {
            if !img.color().has_color() {
                notes.notes.push("grey image repeated into 3 channels".into());
            }
            let g = image::imageops::resize(&img.to_rgb32f(), w, h, filter);
            g.into_raw().into_iter().map(|v| (v as f64).clamp(0.0, 1.0)).collect()
        }
        c => bail!("the model takes {c}-channel images; blindspot reads images into 1 or 3 channels"),
    };
    Ok((
        Pixels {
            height: grid.height,
            width: grid.width,
            channels: grid.channels,
            data,
        },
        notes,
    ))
}

/// The model's input tensor for these pixels, as f32 exactly as it is fed and saved.
pub fn to_tensor(gather: &AffineGather, pixels: &[f64]) -> Vec<f32> {
    gather.evaluate(pixels).into_iter().map(|v| v as f32).collect()
}

/// Pixels back from a model input tensor (the preprocessing map is one-to-one).
pub fn from_tensor(gather: &AffineGather, tensor: &[f32]) -> Vec<f64> {
    let mut pixels = vec![0.0; gather.input_dim];
    for (j, &t) in tensor.iter().enumerate() {
        if let Some(k) = gather.source[j] {
            pixels[k] = (t as f64 - gather.offset[j]) / gather.scale[j];
        }
    }
    pixels
}

/// Euclidean distance between two pixel (or tensor) vectors.
pub fn distance(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| (x - y).powi(2)).sum::<f64>().sqrt()
}

/// Peak signal-to-noise ratio (dB) for values in [0, 1]; infinite for identical inputs.
pub fn psnr(a: &[f64], b: &[f64]) -> f64 {
    let mse = a.iter().zip(b).map(|(x, y)| (x - y).powi(2)).sum::<f64>() / a.len() as f64;
    if mse == 0.0 {
        f64::INFINITY
    } else {
        -10.0 * mse.log10()
    }
}
