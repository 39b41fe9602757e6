//! The blindspot command line: parse, call the library, render. Exit codes: 0 success,
//! 1 no exact collision exists for this model, 2 bad input or any other error.

use anyhow::{bail, Context, Result};
use blindspot::adversarial::{attack, AttackMethod, AttackSettings, VARIANT_MARGIN};
use blindspot::attack::{Norm, ThreatModel};
use blindspot::collide::{collide, CollideRequest, SearchSettings};
use blindspot::conv_spectrum::Effort;
use blindspot::explain::comparison::{explain, ExplainRequest};
use blindspot::explain::{Baseline, Method};
use blindspot::preprocess::{ChannelOrder, Layout};
use blindspot::search::{Distance, Mode};
use blindspot::{audit, compare, demo, npy, report, survey, Preprocess, RankRule};
use clap::{Args, Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use std::path::PathBuf;

#[derive(Parser)]
#[command(
    name = "blindspot",
    version,
    about = "Find the input directions a neural network cannot see, and build exact, verified feature collisions"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// No progress bar.
    #[arg(long, global = true)]
    quiet: bool,
}

/// A pixel-unit amount written as a number or a fraction: 0.03, 8/255.
fn pixel_amount(s: &str) -> Result<f64, String> {
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
fn positive_length(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 => Ok(v),
        _ => Err(format!("{s} is not a finite length > 0")),
    }
}

/// A tolerance relative to σ_max: a number in (0, 1].
fn fraction_of_sigma_max(s: &str) -> Result<f64, String> {
    let v: f64 = s.parse().map_err(|_| format!("{s} is not a number"))?;
    if v.is_finite() && v > 0.0 && v <= 1.0 {
        Ok(v)
    } else {
        Err(format!("{s} is not a fraction of sigma_max in (0, 1]"))
    }
}

#[derive(Args, Clone)]
struct ModelArgs {
    /// The ONNX model.
    model: PathBuf,
    /// Input shape where the model's is dynamic, e.g. 1,3,224,224.
    #[arg(long, value_delimiter = ',')]
    input_shape: Option<Vec<usize>>,
    /// Relative rank tolerance (× σ_max); default: numpy's matrix_rank rule for the stored precision.
    /// Above rounding level it is a budget: approximate collisions along directions whose
    /// first-layer response is at most this fraction of σ_max, with the guaranteed bound reported.
    #[arg(long, visible_alias = "budget", value_name = "REL", value_parser = fraction_of_sigma_max)]
    tol: Option<f64>,
    #[command(flatten)]
    inputs: InputArgs,
    /// Print the JSON report instead of the table.
    #[arg(long)]
    json: bool,
}

/// Models with several inputs: which one is the image, and what the others are fed.
#[derive(Args, Clone)]
struct InputArgs {
    /// The image input of a model with several inputs (default: the only one not held).
    #[arg(long = "input", value_name = "NAME")]
    image_input: Option<String>,
    /// Another input, fed unchanged to every run: NAME=FILE, an image (preprocessed like the
    /// image input) or a .npy float32 tensor exactly as fed. Repeat for each.
    #[arg(long = "hold", value_name = "NAME=FILE", value_parser = held_input)]
    hold: Vec<blindspot::HeldInput>,
}

fn held_input(s: &str) -> Result<blindspot::HeldInput, String> {
    blindspot::HeldInput::parse(s).map_err(|e| e.to_string())
}

impl InputArgs {
    fn choice(&self) -> blindspot::InputChoice {
        blindspot::InputChoice {
            image: self.image_input.clone(),
            held: self.hold.clone(),
        }
    }
}

/// What a command loads its model for (`open_with` supplies the preprocessing itself).
fn load_request<'a>(
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
struct PreprocessArgs {
    /// Input layout (default: from the model's input shape).
    #[arg(long, value_enum)]
    layout: Option<Layout>,
    /// Channel order the model expects.
    #[arg(long, value_enum, default_value = "rgb")]
    channels: ChannelOrder,
    /// Pixel value range the model expects before normalisation: 1 or 255.
    #[arg(long, default_value = "1")]
    scale: f64,
    /// Per-channel mean subtracted after scaling, e.g. 0.485,0.456,0.406.
    #[arg(long, value_delimiter = ',')]
    mean: Option<Vec<f64>>,
    /// Per-channel std divided after the mean, e.g. 0.229,0.224,0.225.
    #[arg(long, value_delimiter = ',')]
    std: Option<Vec<f64>>,
    /// Pixel grid WxH for a model with a dynamic input size, or "auto" (the model's size).
    #[arg(long, default_value = "auto")]
    resize: String,
}

#[derive(Subcommand)]
enum Command {
    /// The whole idea in one run, on the embedded digit models: audit, collisions in every mode, verification.
    Demo {
        #[arg(long, default_value = "blindspot-demo")]
        out: PathBuf,
        #[arg(long, default_value = "0")]
        seed: u64,
        /// One digit per model instead of three: a fast check.
        #[arg(long)]
        quick: bool,
        /// Print the JSON report instead of the table.
        #[arg(long)]
        json: bool,
    },
    /// Measure the null space of the model's front end and the rank of every linear layer.
    Audit {
        #[command(flatten)]
        model: ModelArgs,
        #[command(flatten)]
        pre: PreprocessArgs,
    },
    /// Build inputs that the model cannot tell from IMAGE, verified through the whole model.
    Collide {
        #[command(flatten)]
        model: ModelArgs,
        /// The image to collide with.
        image: PathBuf,
        #[command(flatten)]
        pre: PreprocessArgs,
        #[arg(long, value_enum, default_value = "random")]
        mode: Mode,
        /// Image the collision should look like (mode target).
        #[arg(long)]
        target: Option<PathBuf>,
        /// What "closest to the target" measures (mode target): l2 (a QP per block) or l1
        /// (Σ |z − target|, an LP per block).
        #[arg(long, value_enum, default_value = "l2")]
        distance: Distance,
        /// Number of collisions.
        #[arg(long, default_value = "3")]
        count: usize,
        /// L2 length in pixel units of random directions (default 0.1 × √pixels).
        #[arg(long, value_parser = positive_length)]
        strength: Option<f64>,
        #[arg(long, default_value = "0")]
        seed: u64,
        #[arg(long, default_value = "blindspot-out")]
        out: PathBuf,
    },
    /// An adversarial image by FGSM or PGD (pixel space, untargeted or targeted) and, with
    /// --variants, many more images inside the same ε-ball that the model cannot tell from it
    /// (null-space moves), every one verified through the whole model.
    Attack {
        #[command(flatten)]
        model: ModelArgs,
        /// The clean image.
        image: PathBuf,
        #[command(flatten)]
        pre: PreprocessArgs,
        /// Radius of the threat model in pixel units of [0, 1], e.g. 8/255.
        #[arg(long, value_parser = pixel_amount)]
        eps: f64,
        #[arg(long, value_enum, default_value = "linf")]
        norm: Norm,
        #[arg(long, value_enum, default_value = "pgd")]
        method: AttackMethod,
        /// PGD steps.
        #[arg(long, default_value = "40")]
        steps: usize,
        /// PGD step size in pixel units, e.g. 2/255 (default: 2.5 × eps / steps).
        #[arg(long, value_parser = pixel_amount)]
        step_size: Option<f64>,
        /// PGD from a uniform random point of the ε-ball.
        #[arg(long)]
        random_start: bool,
        /// Targeted attack towards this class (default: untargeted, away from the clean prediction).
        #[arg(long)]
        target_class: Option<usize>,
        /// Null-space variants of the adversarial image inside the same ε-ball.
        #[arg(long, default_value = "0")]
        variants: usize,
        /// With --variants: the fraction of eps kept free for them; the attack runs at
        /// (1 − margin) × eps. At 0 the attack's result has no variant (README: "Attacks").
        #[arg(long, default_value_t = VARIANT_MARGIN)]
        variant_margin: f64,
        #[arg(long, default_value = "0")]
        seed: u64,
        #[arg(long, default_value = "blindspot-attack")]
        out: PathBuf,
    },
    /// How many input directions standard vision architectures ignore at their first linear
    /// layer: the built-in catalogue computed with generic weights, and model files measured
    /// beside it. Writes the figure survey.png.
    Survey {
        /// ONNX model files to measure beside the catalogue.
        models: Vec<PathBuf>,
        /// Square input side for every catalogue entry instead of its own input size.
        #[arg(long)]
        input: Option<usize>,
        /// Input shape for model files whose input is dynamic, e.g. 1,3,224,224.
        #[arg(long, value_delimiter = ',')]
        input_shape: Option<Vec<usize>>,
        /// Print the rows as JSON.
        #[arg(long, conflicts_with_all = ["csv", "markdown"])]
        json: bool,
        /// Print the rows as CSV.
        #[arg(long, conflicts_with = "markdown")]
        csv: bool,
        /// Print the rows as a Markdown table.
        #[arg(long)]
        markdown: bool,
        /// Where the figure goes.
        #[arg(long, default_value = "survey.png")]
        figure: PathBuf,
        /// No figure.
        #[arg(long)]
        no_figure: bool,
        /// Seed of the generic random weights.
        #[arg(long, default_value = "0")]
        seed: u64,
    },
    /// Attribution maps of one output element with respect to the input tensor as fed; with
    /// --compare, the maps of a collision and of a random control of the same size beside the
    /// original's, with agreement figures.
    Explain {
        /// The ONNX model.
        model: PathBuf,
        /// The image to explain.
        image: PathBuf,
        /// Input shape where the model's is dynamic, e.g. 1,3,224,224.
        #[arg(long, value_delimiter = ',')]
        input_shape: Option<Vec<usize>>,
        #[command(flatten)]
        inputs: InputArgs,
        #[command(flatten)]
        pre: PreprocessArgs,
        #[arg(long, value_enum, default_value = "gradient")]
        method: Method,
        /// Flat index of the explained element of the first output (default: its argmax).
        #[arg(long)]
        output_index: Option<usize>,
        /// A tensor shaped like the model input (collide's collide-000.npy) to explain beside the image.
        #[arg(long)]
        compare: Option<PathBuf>,
        /// Grad-CAM layer (an ONNX value name; default: the last spatial layer).
        #[arg(long)]
        layer: Option<String>,
        /// Integrated gradients: path points (Riemann midpoint rule).
        #[arg(long, default_value = "32")]
        steps: usize,
        /// Integrated gradients: the baseline, a .npy shaped like the model input (default: zeros).
        #[arg(long)]
        baseline: Option<PathBuf>,
        /// SmoothGrad: noisy samples.
        #[arg(long, default_value = "16")]
        samples: usize,
        /// SmoothGrad: noise σ as a fraction of the input's value range.
        #[arg(long, default_value = "0.15")]
        noise: f64,
        /// Seed of SmoothGrad's noise and of the control.
        #[arg(long, default_value = "0")]
        seed: u64,
        #[arg(long, default_value = "blindspot-explain")]
        out: PathBuf,
        /// Print the JSON report instead of the table.
        #[arg(long)]
        json: bool,
    },
    /// How similar two images are to a person (PSNR, SSIM) and, with --model, to the model
    /// (LPIPS-style feature distance from its own activations, cosine distance of its
    /// penultimate features). Inputs: .png (or any image) or .npy tensors as fed.
    Compare {
        a: PathBuf,
        b: PathBuf,
        /// The ONNX model for the feature metrics.
        #[arg(long)]
        model: Option<PathBuf>,
        /// Input shape where the model's is dynamic, e.g. 1,3,224,224.
        #[arg(long, value_delimiter = ',')]
        input_shape: Option<Vec<usize>>,
        #[command(flatten)]
        inputs: InputArgs,
        #[command(flatten)]
        pre: PreprocessArgs,
        /// Layers (ONNX value names) of the feature distance (default: four spread through the network).
        #[arg(long, value_delimiter = ',', requires = "model")]
        layers: Option<Vec<String>>,
        /// Print the JSON report instead of the table.
        #[arg(long)]
        json: bool,
    },
    /// Compare two input tensors (.npy) through the whole model, value by value.
    Verify {
        #[command(flatten)]
        model: ModelArgs,
        a: PathBuf,
        b: PathBuf,
        #[command(flatten)]
        pre: PreprocessArgs,
    },
}

impl PreprocessArgs {
    fn preprocess(&self) -> Result<Preprocess> {
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
    fn input_shape(&self, given: &Option<Vec<usize>>) -> Result<Option<Vec<usize>>> {
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

fn progress_bar(quiet: bool, len: u64, what: &str) -> ProgressBar {
    if quiet || !std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(len);
    bar.set_style(
        ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} {elapsed}")
            .unwrap()
            .progress_chars("=> "),
    );
    bar.set_message(what.to_string());
    bar
}

/// An error kind that maps to exit code 1: the model simply has no exact collision.
fn exit_code(e: &anyhow::Error) -> i32 {
    let message = e.to_string();
    if message.contains("no exact collision exists") || message.starts_with("no collision inside the pixel range") {
        1
    } else {
        2
    }
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Demo { out, seed, quick, json } => {
            let opts = demo::DemoOptions {
                seed,
                pairs: if quick { 1 } else { demo::PAIRS.len() },
            };
            let bar = progress_bar(cli.quiet, opts.searches_at_most() as u64, "demo");
            let result = demo::run(&opts, &|what| {
                bar.set_message(what.to_string());
                bar.inc(1)
            })?;
            bar.finish_and_clear();
            result.write(&out)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&result.report)?);
            } else {
                print!("{}", report::demo_table(&result.report));
                println!(
                    "{:.1} s; figures, collisions (.png, .npy) and report.json in {}",
                    result.report.seconds,
                    out.display()
                );
            }
        }
        Command::Audit { model, pre } => {
            let shape = pre.input_shape(&model.input_shape)?;
            let choice = model.inputs.choice();
            let request = load_request(shape.as_deref(), None, &choice, None);
            let (m, fe) = blindspot::open_with(&model.model, &request, &pre.preprocess()?)?;
            let rule = RankRule { relative: model.tol };
            let proof_bar = progress_bar(cli.quiet, 0, "proving the rank (banded Cholesky)");
            let ns = audit::front_end_null_space_with(&fe, rule, Effort::AUDIT, &|done, blocks| {
                proof_bar.set_length(blocks as u64);
                proof_bar.set_position(done as u64);
            })?;
            proof_bar.finish_and_clear();
            let bar = progress_bar(cli.quiet, 0, "ranking layers");
            let report = audit::audit(&m, &fe, ns.as_ref(), rule, &|name| {
                bar.set_message(name.to_string());
                bar.tick()
            })?;
            bar.finish_and_clear();
            if model.json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                print!("{}", report::audit_table(&report));
            }
        }
        Command::Collide {
            model,
            image,
            pre,
            mode,
            target,
            distance,
            count,
            strength,
            seed,
            out,
        } => {
            if count == 0 {
                bail!("--count must be at least 1");
            }
            let shape = pre.input_shape(&model.input_shape)?;
            let choice = model.inputs.choice();
            let request = load_request(shape.as_deref(), Some(&image), &choice, None);
            let (m, fe) = blindspot::open_with(&model.model, &request, &pre.preprocess()?)?;
            let req = CollideRequest {
                image,
                target,
                search: SearchSettings {
                    distance,
                    mode,
                    count,
                    strength,
                    seed,
                    rule: RankRule { relative: model.tol },
                },
            };
            let bar = progress_bar(cli.quiet, count as u64, "searching");
            let result = collide(&m, &fe, &req, &|| bar.inc(1))?;
            bar.finish_and_clear();
            result.write(&out, &m.input_shape)?;
            if model.json {
                println!("{}", serde_json::to_string_pretty(&result.report)?);
            } else {
                print!("{}", report::collide_table(&result.report));
                println!("wrote {} files to {}", result.report.files.len(), out.display());
            }
        }
        Command::Attack {
            model,
            image,
            pre,
            eps,
            norm,
            method,
            steps,
            step_size,
            random_start,
            target_class,
            variants,
            variant_margin,
            seed,
            out,
        } => {
            let shape = pre.input_shape(&model.input_shape)?;
            let choice = model.inputs.choice();
            let request = load_request(shape.as_deref(), Some(&image), &choice, None);
            let (m, fe) = blindspot::open_with(&model.model, &request, &pre.preprocess()?)?;
            let settings = AttackSettings {
                threat: ThreatModel { eps, norm },
                method,
                steps,
                step_size,
                random_start,
                target_class,
                variants,
                variant_margin,
                seed,
                rule: RankRule { relative: model.tol },
            };
            let bar = progress_bar(cli.quiet, variants as u64, "variants");
            let result = attack(&m, &fe, &image, &settings, &|| bar.inc(1))?;
            bar.finish_and_clear();
            result.write(&out, &m.input_shape)?;
            if model.json {
                println!("{}", serde_json::to_string_pretty(&result.report)?);
            } else {
                print!("{}", report::attack_table(&result.report));
                println!("wrote {} files to {}", result.report.files.len(), out.display());
            }
        }
        Command::Survey {
            models,
            input,
            input_shape,
            json,
            csv,
            markdown,
            figure,
            no_figure,
            seed,
        } => {
            let settings = survey::SurveySettings { input, seed };
            let bar = progress_bar(
                cli.quiet,
                survey::CATALOGUE_LEN as u64 + models.len() as u64,
                "surveying",
            );
            let mut rows = survey::survey_catalogue(&settings, &|name| {
                bar.set_message(name.to_string());
                bar.inc(1)
            })?;
            for path in &models {
                bar.set_message(path.display().to_string());
                rows.push(survey::survey_model(path, input_shape.as_deref(), seed)?);
                bar.inc(1);
            }
            bar.finish_and_clear();
            if !no_figure {
                survey::draw_figure(&rows, &figure)?;
            }
            if json {
                println!("{}", serde_json::to_string_pretty(&rows)?);
            } else if csv {
                print!("{}", report::survey_csv(&rows));
            } else if markdown {
                print!("{}", report::survey_markdown(&rows));
            } else {
                print!("{}", report::survey_table(&rows));
                if !no_figure {
                    println!("figure: {}", figure.display());
                }
            }
        }
        Command::Explain {
            model,
            image,
            input_shape,
            inputs,
            pre,
            method,
            output_index,
            compare,
            layer,
            steps,
            baseline,
            samples,
            noise,
            seed,
            out,
            json,
        } => {
            let shape = pre.input_shape(&input_shape)?;
            let choice = inputs.choice();
            let pre_map = pre.preprocess()?;
            let m = blindspot::Model::load_with(
                &model,
                &load_request(shape.as_deref(), Some(&image), &choice, Some(&pre_map)),
            )?;
            let req = ExplainRequest {
                image,
                compare,
                method,
                output_index,
                settings: blindspot::explain::Settings {
                    baseline: baseline.map_or(Baseline::Zeros, Baseline::File),
                    steps,
                    samples,
                    noise,
                    seed,
                    layer,
                },
            };
            let bar = progress_bar(cli.quiet, req.evaluations(), method.name());
            let result = explain(&m, &pre.preprocess()?, &req, &|| bar.inc(1))?;
            bar.finish_and_clear();
            result.write(&out)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&result.report)?);
            } else {
                print!("{}", report::explain_table(&result.report));
                println!("wrote {} files to {}", result.report.files.len(), out.display());
            }
        }
        Command::Compare {
            a,
            b,
            model,
            input_shape,
            inputs,
            pre,
            layers,
            json,
        } => {
            let shape = pre.input_shape(&input_shape)?;
            let (choice, pre_map) = (inputs.choice(), pre.preprocess()?);
            let m = match &model {
                Some(path) => Some(blindspot::Model::load_with(
                    path,
                    &load_request(shape.as_deref(), None, &choice, Some(&pre_map)),
                )?),
                None => None,
            };
            let load = |p: &PathBuf| match &m {
                Some(m) => Ok::<_, anyhow::Error>(compare::load_for_model(p, m, &pre.preprocess()?)?),
                None => compare::load_plain(p),
            };
            let (ia, ib) = (load(&a)?, load(&b)?);
            let r = compare::compare(
                (&a.display().to_string(), &ia),
                (&b.display().to_string(), &ib),
                m.as_ref(),
                layers.as_deref(),
            )?;
            if json {
                println!("{}", serde_json::to_string_pretty(&r)?);
            } else {
                print!("{}", report::compare_table(&r));
            }
        }
        Command::Verify { model, a, b, pre } => {
            let shape = pre.input_shape(&model.input_shape)?;
            let choice = model.inputs.choice();
            let request = load_request(shape.as_deref(), None, &choice, None);
            let (m, fe) = blindspot::open_with(&model.model, &request, &pre.preprocess()?)?;
            let read = |p: &PathBuf| -> Result<Vec<f32>> {
                let (s, data) = npy::read_f32(p)?;
                if s != m.input_shape {
                    bail!(
                        "{} has shape {s:?} but the model input {} has shape {:?}",
                        p.display(),
                        m.input_name,
                        m.input_shape
                    );
                }
                if data.iter().any(|v| !v.is_finite()) {
                    bail!("{} holds NaN or infinite values", p.display());
                }
                Ok(data)
            };
            let (ta, tb) = (read(&a)?, read(&b)?);
            let r = blindspot::verify::verify_tensors(
                &m,
                &fe,
                (&a.display().to_string(), &ta),
                (&b.display().to_string(), &tb),
            )?;
            if model.json {
                println!("{}", serde_json::to_string_pretty(&r)?);
            } else {
                println!("{:<60} {:>12} {:>12}", "value", "max |a-b|", "relative");
                for l in &r.layers {
                    println!("{:<60} {:>12.3e} {:>12.3e}", l.name, l.max_abs_diff, l.rel_diff);
                }
                let c = &r.comparison;
                println!(
                    "front end rel diff {:?}; argmax equal {:?}; L2 {:.4}, Linf {:.4}, PSNR {:.2} dB",
                    c.front_end_rel_diff, c.argmax_equal, c.l2, c.linf, c.psnr_to_original
                );
                match &r.first_difference {
                    Some(n) => println!("first difference at {n}"),
                    None => println!("the two inputs agree at every value of the model"),
                }
                if let Some(d) = r.max_rel_diff_from_front_end_on {
                    println!("largest relative difference from the first layer's output on: {d:.3e}");
                }
            }
        }
    }
    Ok(())
}

fn main() {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        // Help and version go out as clap writes them; a bad argument is one line, like every
        // other refusal.
        Err(e) if !e.use_stderr() => e.exit(),
        Err(e) => {
            let text = e.to_string();
            let first = text.lines().next().unwrap_or("invalid arguments");
            eprintln!("blindspot: {}", first.trim_start_matches("error: "));
            std::process::exit(2);
        }
    };
    if let Err(e) = run(cli) {
        let msg = format!("{e:#}").split_whitespace().collect::<Vec<_>>().join(" ");
        eprintln!("blindspot: {msg}");
        std::process::exit(exit_code(&e));
    }
}
