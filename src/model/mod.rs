//! ONNX models through tract: loading with a concrete input shape, and running them with any set
//! of intermediate values as outputs.

pub mod constant_folding;
pub mod digits;
pub mod embedded;
pub mod external_data;
pub mod npy;
pub mod onnx_graph;
#[doc(hidden)]
pub mod onnx_write;
pub mod preprocess;

use crate::model::onnx_graph::OnnxGraph;
use crate::model::preprocess::Preprocess;
use anyhow::{anyhow, bail, Context, Result};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tract_onnx::prelude::*;

pub struct Model {
    pub path: PathBuf,
    pub graph: OnnxGraph,
    pub input_name: String,
    pub input_shape: Vec<usize>,
    pub output_names: Vec<String>,
    /// The other inputs, fed the same value in every run (`--hold`), in the graph's order.
    pub held_inputs: Vec<String>,
    inference: InferenceModel,
    /// Prepared plans by requested values and optimisation: preparing is the slow part.
    plans: std::sync::Mutex<std::collections::HashMap<(Vec<String>, bool), Runner>>,
}

/// Which input of a model is the image, and what each other input is fed.
#[derive(Clone, Debug, Default)]
pub struct InputChoice {
    /// The image input (`--input`); default: the only input the held ones leave.
    pub image: Option<String>,
    /// The other inputs (`--hold NAME=FILE`).
    pub held: Vec<HeldInput>,
}

/// An input fed the same value in every run: an image, preprocessed as the image input is, or a
/// `.npy` float32 tensor exactly as fed.
#[derive(Clone, Debug)]
pub struct HeldInput {
    pub name: String,
    pub file: PathBuf,
}

impl HeldInput {
    /// Parses `NAME=FILE`.
    pub fn parse(spec: &str) -> Result<HeldInput> {
        match spec.split_once('=') {
            Some((name, file)) if !name.is_empty() && !file.is_empty() => Ok(HeldInput {
                name: name.to_string(),
                file: PathBuf::from(file),
            }),
            _ => bail!("`hold` takes NAME=FILE (an image or a .npy tensor), not {spec}"),
        }
    }
}

/// What a model is loaded for.
#[derive(Clone, Copy, Default)]
pub struct LoadRequest<'a> {
    /// The image input's shape where the model's is open or is to be overridden.
    pub input_shape: Option<&'a [usize]>,
    /// The image the model runs on: an open height and width take its size.
    pub image: Option<&'a Path>,
    pub inputs: Option<&'a InputChoice>,
    /// How a held image becomes its tensor (default: pixels in [0, 1]).
    pub preprocess: Option<&'a Preprocess>,
}

/// One named value the model computed, widened to f64.
#[derive(Clone, Debug)]
pub struct Value {
    pub name: String,
    pub shape: Vec<usize>,
    pub data: Vec<f64>,
}

#[derive(Clone)]
pub struct Runner {
    plan: Arc<TypedRunnableModel>,
    names: Vec<String>,
    input_shape: Vec<usize>,
}

thread_local! {
    /// Whether this thread is inside a tract call whose panic becomes an error.
    static IN_TRACT_CALL: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Installs, once per process, a panic hook that stays quiet for panics inside tract calls on
/// the calling thread and reports every other panic as before. Swapping the hook around each call
/// instead would race between threads and could leave the process silent.
fn install_quiet_hook() {
    static INSTALL: std::sync::Once = std::sync::Once::new();
    INSTALL.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !IN_TRACT_CALL.with(|flag| flag.get()) {
                previous(info);
            }
        }));
    });
}

/// tract may panic on inputs it does not expect; a user gets a message instead.
fn guarded<T>(what: &str, f: impl FnOnce() -> TractResult<T>) -> Result<T> {
    install_quiet_hook();
    let outer = IN_TRACT_CALL.with(|flag| flag.replace(true));
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    IN_TRACT_CALL.with(|flag| flag.set(outer));
    match result {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(anyhow!("{what}: {}", one_line(&format!("{e:#}")))),
        Err(p) => {
            let msg = p
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()));
            Err(anyhow!(
                "{what}: tract failed ({})",
                msg.unwrap_or_else(|| "panic".into())
            ))
        }
    }
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// ONNX's float element types: FLOAT, FLOAT16, DOUBLE, BFLOAT16.
const FLOAT_TYPES: [i32; 4] = [1, 10, 11, 16];

/// The most values an input may hold: every pixel map keeps ~40 bytes per value (a 4K RGB frame
/// holds 25 million values, 1 GB of maps).
const MAX_INPUT_VALUES: usize = 1 << 27;

/// The image's extent along axis `i` of a 4-D declared shape whose channels are fixed and whose
/// height and width are open: NCHW (channels at 1) or NHWC (channels at 3).
fn spatial_size(declared: &[Option<usize>], i: usize, (h, w): (usize, usize)) -> Option<usize> {
    if declared.len() != 4 {
        return None;
    }
    let open = |axes: [usize; 2]| axes.iter().all(|&a| declared[a].is_none());
    match (declared[1], declared[3]) {
        (Some(_), _) if open([2, 3]) => [None, None, Some(h), Some(w)][i],
        (None, Some(_)) if open([1, 2]) => [None, Some(h), Some(w), None][i],
        _ => None,
    }
}

/// ONNX's name of an element type code.
fn elem_type_name(code: i32) -> String {
    let name = match code {
        2 => "uint8",
        3 => "int8",
        4 => "uint16",
        5 => "int16",
        6 => "int32",
        7 => "int64",
        8 => "string",
        9 => "bool",
        12 => "uint32",
        13 => "uint64",
        14 => "complex64",
        15 => "complex128",
        _ => return format!("element type {code}"),
    };
    name.to_string()
}

impl Model {
    /// Loads `path`; `input_shape` is required only where the model's own shape is not fixed
    /// (a symbolic batch dimension is taken as 1).
    pub fn load(path: &Path, input_shape: Option<&[usize]>) -> Result<Model> {
        Model::load_with(
            path,
            &LoadRequest {
                input_shape,
                ..Default::default()
            },
        )
    }

    /// Loads `path` to run on `image`: where the model leaves its height and width open and no
    /// shape is requested, they are the image's own (its file's header is read for them).
    pub fn load_for_image(path: &Path, input_shape: Option<&[usize]>, image: &Path) -> Result<Model> {
        Model::load_with(
            path,
            &LoadRequest {
                input_shape,
                image: Some(image),
                ..Default::default()
            },
        )
    }

    /// Loads `path` as `request` says: the image input, its shape, and the held inputs.
    pub fn load_with(path: &Path, request: &LoadRequest) -> Result<Model> {
        let bytes = std::fs::read(path).with_context(|| format!("cannot read model {}", path.display()))?;
        Model::from_bytes_with(&bytes, path, request)
    }

    /// Loads a model held in memory (an embedded one); `path` names it in messages and reports.
    pub fn from_bytes(bytes: &[u8], path: &Path, input_shape: Option<&[usize]>) -> Result<Model> {
        Model::from_bytes_with(
            bytes,
            path,
            &LoadRequest {
                input_shape,
                ..Default::default()
            },
        )
    }

    /// [`Model::load_with`] for a model held in memory.
    pub fn from_bytes_with(bytes: &[u8], path: &Path, request: &LoadRequest) -> Result<Model> {
        let input_shape = request.input_shape;
        // An unreadable image is reported by the image loader, with its own message.
        let image_size = request
            .image
            .and_then(|image| image::image_dimensions(image).ok())
            .map(|(w, h)| (h as usize, w as usize));
        let mut proto = OnnxGraph::parse(bytes).with_context(|| format!("{}", path.display()))?;
        let folder = path.parent().unwrap_or(Path::new("."));
        crate::model::external_data::inline_external_data(&mut proto, folder)
            .with_context(|| format!("{}", path.display()))?;
        let no_choice = InputChoice::default();
        let choice = request.inputs.unwrap_or(&no_choice);
        let (input, held) = choose_inputs(&proto, choice).with_context(|| format!("{}", path.display()))?;
        let input_name = input.name.clone();
        if let Some(code) = OnnxGraph::declared_elem_type(&input).filter(|&c| c != 0 && !FLOAT_TYPES.contains(&c)) {
            bail!(
                "the input {input_name} holds {} values (token ids or indices?): blindspot needs an image-like float input",
                elem_type_name(code)
            );
        }
        let declared = OnnxGraph::declared_shape(&input);
        let shape = match (input_shape, &declared) {
            // A requested shape of the same rank re-types the input, static dimensions included,
            // as deployment code does (a declared batch of 10 run on one image).
            (Some(s), Some(d)) if s.len() != d.len() => {
                bail!(
                    "the requested input shape {s:?} (`input_shape` or `resize`) does not fit the model's input {input_name} of shape {}: the rank differs",
                    show_dims(d)
                )
            }
            (Some(s), _) => s.to_vec(),
            (None, Some(d)) => d
                .iter()
                .enumerate()
                .map(
                    |(i, v)| match (i, v, image_size.and_then(|hw| spatial_size(d, i, hw))) {
                        (_, Some(v), _) => Ok(*v),
                        (0, None, _) => Ok(1),
                        (_, None, Some(v)) => Ok(v),
                        _ => Err(anyhow!(
                            "the input {input_name} has a dynamic shape {}: give `input_shape`",
                            show_dims(d)
                        )),
                    },
                )
                .collect::<Result<_>>()?,
            (None, None) => bail!("the input {input_name} declares no shape: give `input_shape`"),
        };
        check_size(&shape)?;
        let no_preprocess = Preprocess::default();
        let preprocess = request.preprocess.unwrap_or(&no_preprocess);
        let mut held_inputs = vec![];
        for (info, file) in &held {
            let tensor = held_tensor(info, file, &shape, preprocess)?;
            proto
                .graph
                .as_mut()
                .context("the ONNX file has no graph")?
                .initializer
                .push(tensor);
            held_inputs.push(info.name.clone());
        }
        // Held inputs are initializers now: constants to blindspot's reading of the graph (and
        // to its constant folding), and values tract feeds unchanged to every run.
        let graph = OnnxGraph::from_proto(proto.clone()).with_context(|| format!("{}", path.display()))?;
        let what = format!("{}: tract cannot load this model", path.display());
        let inference = guarded(&what, || {
            // Shapes recorded in the file for intermediate values and outputs may hold symbols
            // (a dynamic batch) that contradict the concrete input: tract derives them instead.
            let m = tract_onnx::onnx()
                .with_ignore_value_info(true)
                .with_ignore_output_shapes(true)
                .model_for_proto_model(&proto)?;
            m.with_input_fact(0, f32::fact(&shape).into())
        })?;
        let output_names = graph.graph.output.iter().map(|o| o.name.clone()).collect();
        Ok(Model {
            path: path.to_path_buf(),
            graph,
            input_name,
            input_shape: shape,
            output_names,
            held_inputs,
            inference,
            plans: Default::default(),
        })
    }

    /// A plan that returns the named values (ONNX value names) in this order; prepared once per
    /// model and request.
    pub fn runner(&self, names: &[String], optimise: bool) -> Result<Runner> {
        let key = (names.to_vec(), optimise);
        if let Some(r) = self.plans.lock().ok().and_then(|p| p.get(&key).cloned()) {
            return Ok(r);
        }
        let runner = self.prepare(names, optimise)?;
        if let Ok(mut plans) = self.plans.lock() {
            plans.insert(key, runner.clone());
        }
        Ok(runner)
    }

    fn prepare(&self, names: &[String], optimise: bool) -> Result<Runner> {
        let mut model = self.inference.clone();
        let outlets = names
            .iter()
            .map(|n| {
                model
                    .find_outlet_label(n)
                    .with_context(|| format!("the model has no value named {n}"))
            })
            .collect::<Result<Vec<_>>>()?;
        let what = format!("{}: tract cannot prepare this model", self.path.display());
        let plan = guarded(&what, move || {
            model.select_output_outlets(&outlets)?;
            let typed = if optimise {
                model.into_optimized()?
            } else {
                model.into_typed()?
            };
            typed.into_runnable()
        })?;
        Ok(Runner {
            plan,
            names: names.to_vec(),
            input_shape: self.input_shape.clone(),
        })
    }

    /// Every value computed from the input, in graph order (for layer-by-layer comparisons).
    pub fn all_value_names(&self) -> Vec<String> {
        let mut names = vec![];
        for node in &self.graph.graph.node {
            if matches!(node.op_type.as_str(), "Constant" | "Shape") {
                continue;
            }
            for o in &node.output {
                if !o.is_empty() && self.inference.find_outlet_label(o).is_some() {
                    names.push(o.clone());
                }
            }
        }
        names
    }
}

/// Refuses shapes that would not fit in memory, or hold nothing.
fn check_size(shape: &[usize]) -> Result<()> {
    let values = shape.iter().try_fold(1usize, |n, &d| n.checked_mul(d));
    if values.is_none_or(|n| n > MAX_INPUT_VALUES) {
        bail!(
            "the input shape {shape:?} holds more values than blindspot's pixel maps can hold in memory (at most {MAX_INPUT_VALUES}); give a smaller `input_shape`"
        );
    }
    if shape.contains(&0) {
        bail!("the input shape {shape:?} has an empty dimension");
    }
    Ok(())
}

/// The graph inputs a user feeds (initializers listed as inputs are constants).
fn fed_inputs(proto: &tract_onnx::pb::ModelProto) -> Vec<tract_onnx::pb::ValueInfoProto> {
    let Some(graph) = proto.graph.as_ref() else {
        return vec![];
    };
    let constants: std::collections::HashSet<&str> = graph.initializer.iter().map(|t| t.name.as_str()).collect();
    graph
        .input
        .iter()
        .filter(|i| !constants.contains(i.name.as_str()))
        .cloned()
        .collect()
}

fn describe(inputs: &[tract_onnx::pb::ValueInfoProto]) -> String {
    let names: Vec<String> = inputs
        .iter()
        .map(|i| match OnnxGraph::declared_shape(i) {
            Some(d) => format!("{} {}", i.name, show_dims(&d)),
            None => i.name.clone(),
        })
        .collect();
    names.join(", ")
}

type HeldValue = (tract_onnx::pb::ValueInfoProto, PathBuf);

/// The image input and the held ones, as `choice` names them: every fed input is either the
/// image or held.
fn choose_inputs(
    proto: &tract_onnx::pb::ModelProto,
    choice: &InputChoice,
) -> Result<(tract_onnx::pb::ValueInfoProto, Vec<HeldValue>)> {
    let inputs = fed_inputs(proto);
    let find = |name: &str| inputs.iter().find(|i| i.name == name);
    let mut held = vec![];
    for h in &choice.held {
        let info = find(&h.name).with_context(|| {
            format!(
                "`hold` {}: the model has no input of that name; its inputs: {}",
                h.name,
                describe(&inputs)
            )
        })?;
        if held.iter().any(|(i, _): &HeldValue| i.name == h.name) {
            bail!("`hold` {} is given twice", h.name);
        }
        held.push((info.clone(), h.file.clone()));
    }
    let left: Vec<_> = inputs
        .iter()
        .filter(|i| !held.iter().any(|(h, _)| h.name == i.name))
        .cloned()
        .collect();
    let image = match &choice.image {
        Some(name) => {
            if held.iter().any(|(h, _)| &h.name == name) {
                bail!("the input {name} is both the image (`input`) and held (`hold`)");
            }
            find(name)
                .with_context(|| format!("`input` {name}: the model has no input of that name; its inputs: {}", describe(&inputs)))?
                .clone()
        }
        None => match left.as_slice() {
            [only] => only.clone(),
            [] => bail!("every input is held: name the image input with `input` NAME"),
            _ => bail!(
                "the model has {} inputs ({}): name the image input with `input` NAME and give every other one with `hold` NAME=FILE (an image or a .npy)",
                left.len(),
                describe(&left)
            ),
        },
    };
    let unfed: Vec<_> = left.iter().filter(|i| i.name != image.name).cloned().collect();
    if !unfed.is_empty() {
        bail!(
            "the model has other inputs besides {}: {}; give each with `hold` NAME=FILE (an image or a .npy)",
            image.name,
            describe(&unfed)
        );
    }
    Ok((image, held))
}

/// A held input's value as an initializer: its declared float type, its declared shape with
/// open dimensions taken from the file (a .npy) or from the image input's shape (an image).
fn held_tensor(
    info: &tract_onnx::pb::ValueInfoProto,
    file: &Path,
    image_shape: &[usize],
    preprocess: &Preprocess,
) -> Result<tract_onnx::pb::TensorProto> {
    let name = &info.name;
    let code = OnnxGraph::declared_elem_type(info).unwrap_or(1);
    if code != 1 && code != 11 {
        bail!(
            "the held input {name} holds {} values; `hold` feeds float or double tensors",
            if code == 10 {
                "float16".to_string()
            } else {
                elem_type_name(code)
            }
        );
    }
    let declared = OnnxGraph::declared_shape(info);
    let is_npy = file.extension().is_some_and(|e| e.eq_ignore_ascii_case("npy"));
    let (shape, data) = if is_npy {
        let (shape, data) = crate::model::npy::read_f32(file)?;
        check_size(&shape)?;
        if let Some(d) = &declared {
            let fits = d.len() == shape.len() && d.iter().zip(&shape).all(|(d, s)| d.is_none_or(|d| d == *s));
            if !fits {
                bail!(
                    "`hold` {name}: {} has shape {shape:?}, the input {name} is declared {}",
                    file.display(),
                    show_dims(d)
                );
            }
        }
        (shape, data)
    } else {
        let shape: Vec<usize> = match &declared {
            Some(d) if d.len() == image_shape.len() => d
                .iter()
                .zip(image_shape)
                .enumerate()
                .map(|(i, (d, s))| d.unwrap_or(if i == 0 { 1 } else { *s }))
                .collect(),
            Some(d) if d.iter().all(Option::is_some) => d.iter().flatten().copied().collect(),
            _ => bail!(
                "`hold` {name}: the input's shape {} cannot be taken from the image input's; give a .npy tensor",
                declared.as_deref().map_or("(none)".into(), show_dims)
            ),
        };
        check_size(&shape)?;
        let grid = preprocess.grid(&shape)?;
        let (pixels, _) =
            crate::model::preprocess::load_image(file, &grid).with_context(|| format!("`hold` {name}"))?;
        let data = crate::model::preprocess::to_tensor(&preprocess.gather(&shape)?, &pixels.data);
        (shape, data)
    };
    if data.iter().any(|v| !v.is_finite()) {
        bail!("`hold` {name}: {} holds NaN or infinite values", file.display());
    }
    let mut tensor = tract_onnx::pb::TensorProto {
        name: name.clone(),
        dims: shape.iter().map(|&d| d as i64).collect(),
        data_type: code,
        ..Default::default()
    };
    if code == 11 {
        tensor.double_data = data.iter().map(|&v| v as f64).collect();
    } else {
        tensor.float_data = data;
    }
    Ok(tensor)
}

fn show_dims(d: &[Option<usize>]) -> String {
    let parts: Vec<String> = d.iter().map(|v| v.map_or("?".into(), |v| v.to_string())).collect();
    format!("[{}]", parts.join(","))
}

impl Runner {
    pub fn run(&self, input: &[f32]) -> Result<Vec<Value>> {
        let tensor = Tensor::from_shape(&self.input_shape, input)?;
        let outputs = guarded("running the model", || self.plan.run(tvec!(tensor.into_tvalue())))?;
        let mut values = Vec::with_capacity(outputs.len());
        for (name, t) in self.names.iter().zip(outputs.iter()) {
            let shape = t.shape().to_vec();
            let data = match t.cast_to::<f64>() {
                Ok(c) => c.to_plain_array_view::<f64>()?.iter().copied().collect(),
                Err(_) => continue,
            };
            values.push(Value {
                name: name.clone(),
                shape,
                data,
            });
        }
        Ok(values)
    }
}

/// Index of the largest value (the first on ties).
pub fn argmax(v: &[f64]) -> usize {
    v.iter()
        .enumerate()
        .fold(
            (0, f64::NEG_INFINITY),
            |(bi, bv), (i, &x)| if x > bv { (i, x) } else { (bi, bv) },
        )
        .0
}
