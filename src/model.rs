//! ONNX models through tract: loading with a concrete input shape, and running them with any set
//! of intermediate values as outputs.

use crate::onnx_graph::OnnxGraph;
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
    inference: InferenceModel,
    /// Prepared plans by requested values and optimisation: preparing is the slow part.
    plans: std::sync::Mutex<std::collections::HashMap<(Vec<String>, bool), Runner>>,
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
        let bytes = std::fs::read(path).with_context(|| format!("cannot read model {}", path.display()))?;
        Model::from_bytes(&bytes, path, input_shape)
    }

    /// Loads `path` to run on `image`: where the model leaves its height and width open and no
    /// shape is requested, they are the image's own (its file's header is read for them).
    pub fn load_for_image(path: &Path, input_shape: Option<&[usize]>, image: &Path) -> Result<Model> {
        let bytes = std::fs::read(path).with_context(|| format!("cannot read model {}", path.display()))?;
        // An unreadable image is reported by the image loader, with its own message.
        let size = image::image_dimensions(image)
            .ok()
            .map(|(w, h)| (h as usize, w as usize));
        Model::from_bytes_sized(&bytes, path, input_shape, size)
    }

    /// Loads a model held in memory (an embedded one); `path` names it in messages and reports.
    pub fn from_bytes(bytes: &[u8], path: &Path, input_shape: Option<&[usize]>) -> Result<Model> {
        Model::from_bytes_sized(bytes, path, input_shape, None)
    }

    /// [`Model::from_bytes`], with the (height, width) an open spatial size takes.
    fn from_bytes_sized(
        bytes: &[u8],
        path: &Path,
        input_shape: Option<&[usize]>,
        image_size: Option<(usize, usize)>,
    ) -> Result<Model> {
        let mut proto = OnnxGraph::parse(bytes).with_context(|| format!("{}", path.display()))?;
        let folder = path.parent().unwrap_or(Path::new("."));
        crate::external_data::inline_external_data(&mut proto, folder)
            .with_context(|| format!("{}", path.display()))?;
        let graph = OnnxGraph::from_proto(proto.clone()).with_context(|| format!("{}", path.display()))?;
        let inputs = graph.data_inputs();
        let [input] = inputs.as_slice() else {
            let names: Vec<String> = inputs
                .iter()
                .map(|i| match OnnxGraph::declared_shape(i) {
                    Some(d) => format!("{} {}", i.name, show_dims(&d)),
                    None => i.name.clone(),
                })
                .collect();
            bail!(
                "{}: blindspot handles models with one input; this one has {}: {}",
                path.display(),
                inputs.len(),
                names.join(", ")
            );
        };
        let input_name = input.name.clone();
        if let Some(code) = OnnxGraph::declared_elem_type(input).filter(|&c| c != 0 && !FLOAT_TYPES.contains(&c)) {
            bail!(
                "the input {input_name} holds {} values (token ids or indices?): blindspot needs an image-like float input",
                elem_type_name(code)
            );
        }
        let declared = OnnxGraph::declared_shape(input);
        let shape = match (input_shape, &declared) {
            // A requested shape of the same rank re-types the input, static dimensions included,
            // as deployment code does (a declared batch of 10 run on one image).
            (Some(s), Some(d)) if s.len() != d.len() => {
                bail!(
                    "the requested input shape {s:?} (--input-shape or --resize) does not fit the model's input {input_name} of shape {}: the rank differs",
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
                            "the input {input_name} has a dynamic shape {}: give --input-shape",
                            show_dims(d)
                        )),
                    },
                )
                .collect::<Result<_>>()?,
            (None, None) => bail!("the input {input_name} declares no shape: give --input-shape"),
        };
        let values = shape.iter().try_fold(1usize, |n, &d| n.checked_mul(d));
        if values.is_none_or(|n| n > MAX_INPUT_VALUES) {
            bail!(
                "the input shape {shape:?} holds more values than blindspot's pixel maps can hold in memory (at most {MAX_INPUT_VALUES}); give a smaller --input-shape"
            );
        }
        if shape.contains(&0) {
            bail!("the input shape {shape:?} has an empty dimension");
        }
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
