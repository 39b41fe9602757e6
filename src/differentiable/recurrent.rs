//! RNN, GRU and LSTM as their recurrences unrolled over time: per step, matrix products and
//! gates from candle operations, so that backpropagation through time is candle's to derive.
//! Gate order as ONNX writes it: LSTM i, o, f, c; GRU z, r, h.

use super::ops::{ints, matmul};
use crate::model::onnx_graph::{attr_int, attr_string, attribute};
use anyhow::{bail, Context, Result};
use candle_core::Tensor;
use tract_onnx::pb::NodeProto;

#[derive(Clone, Copy, PartialEq)]
enum Cell {
    Rnn,
    Gru,
    Lstm,
}

pub fn eval(node: &NodeProto, inputs: &[Option<Tensor>]) -> Result<Vec<Tensor>> {
    let cell = match node.op_type.as_str() {
        "RNN" => Cell::Rnn,
        "GRU" => Cell::Gru,
        _ => Cell::Lstm,
    };
    let arg = |i: usize| inputs.get(i).and_then(Option::as_ref);
    let gates = match cell {
        Cell::Rnn => 1,
        Cell::Gru => 3,
        Cell::Lstm => 4,
    };
    let batch_first = attr_int(node, "layout", 0) != 0;
    let x = arg(0).context("a recurrent op without input")?;
    // Time-major: [seq, batch, input].
    let x = if batch_first {
        x.transpose(0, 1)?.contiguous()?
    } else {
        x.clone()
    };
    let (steps, batch, _) = x.dims3()?;
    let w = arg(1).context("a recurrent op without W")?;
    let r = arg(2).context("a recurrent op without R")?;
    let hidden = r.dim(2)?;
    let directions = directions_of(node, cell, r)?;
    let lengths = match arg(4) {
        Some(t) => Some(ints(t)?),
        None => None,
    };
    let activations = activation_names(node, cell, directions.len())?;
    let linear_before_reset = attr_int(node, "linear_before_reset", 0) != 0;
    let mut ys = vec![];
    let (mut last_h, mut last_c) = (vec![], vec![]);
    for (d, &reverse) in directions.iter().enumerate() {
        let wd = w.get(d)?; // [gates·hidden, input]
        let rd = r.get(d)?; // [gates·hidden, hidden]
        let bias = match arg(3) {
            Some(b) => {
                let b = b.get(d)?;
                Some((
                    b.narrow(0, 0, gates * hidden)?,
                    b.narrow(0, gates * hidden, gates * hidden)?,
                ))
            }
            None => None,
        };
        let mut h = match arg(5) {
            Some(h0) => h0.get(d)?,
            None => Tensor::zeros((batch, hidden), x.dtype(), x.device())?,
        };
        let mut c = match arg(6) {
            Some(c0) if cell == Cell::Lstm => c0.get(d)?,
            _ => Tensor::zeros((batch, hidden), x.dtype(), x.device())?,
        };
        let peephole = match arg(7) {
            Some(p) if cell == Cell::Lstm => Some(p.get(d)?),
            _ => None,
        };
        let act = &activations[d];
        let mut outputs = vec![None; steps];
        for s in 0..steps {
            let t = if reverse { steps - 1 - s } else { s };
            // Samples whose sequence has ended keep their state and output zeros.
            let live = match &lengths {
                Some(l) if reverse && l.iter().any(|&n| n as usize != steps) => bail!(
                    "a reverse {} over sequences of unequal lengths is not supported",
                    node.op_type
                ),
                Some(l) => Some(live_mask(l, t, (batch, hidden), x.device())?),
                None => None,
            };
            let xt = x.get(t)?;
            let mut xw = matmul(&xt, &wd.t()?)?;
            let mut hr = matmul(&h, &rd.t()?)?;
            if let Some((wb, rb)) = &bias {
                xw = xw.broadcast_add(wb)?;
                hr = hr.broadcast_add(rb)?;
            }
            let (new_h, new_c) = match cell {
                Cell::Rnn => (apply(&act[0], &(xw + hr)?)?, None),
                Cell::Gru => {
                    let rb = bias.as_ref().map(|(_, rb)| rb);
                    let reset = (&rd, rb, linear_before_reset);
                    (gru_step(act, (&xw, &hr), &h, reset, hidden)?, None)
                }
                Cell::Lstm => {
                    let (h, c) = lstm_step(act, (xw + hr)?, &c, peephole.as_ref(), hidden)?;
                    (h, Some(c))
                }
            };
            let (new_h, new_c) = match &live {
                Some(m) => (
                    m.where_cond(&new_h, &h)?,
                    new_c.map(|nc| m.where_cond(&nc, &c)).transpose()?,
                ),
                None => (new_h, new_c),
            };
            outputs[t] = Some(match &live {
                Some(m) => m.where_cond(&new_h, &new_h.zeros_like()?)?,
                None => new_h.clone(),
            });
            h = new_h;
            if let Some(nc) = new_c {
                c = nc;
            }
        }
        let outputs: Vec<Tensor> = outputs
            .into_iter()
            .map(|o| o.context("a step was not run"))
            .collect::<Result<_>>()?;
        ys.push(Tensor::stack(&outputs, 0)?); // [seq, batch, hidden]
        last_h.push(h);
        last_c.push(c);
    }
    stacked(&ys, &last_h, &last_c, batch_first)
}

/// Y, Y_h and Y_c from every direction's outputs and last states, in the op's layout.
fn stacked(ys: &[Tensor], last_h: &[Tensor], last_c: &[Tensor], batch_first: bool) -> Result<Vec<Tensor>> {
    let y = Tensor::stack(ys, 1)?; // [seq, dirs, batch, hidden]
    let (y_h, y_c) = (Tensor::stack(last_h, 0)?, Tensor::stack(last_c, 0)?);
    Ok(if batch_first {
        vec![
            y.permute((2, 0, 1, 3))?.contiguous()?,
            y_h.transpose(0, 1)?.contiguous()?,
            y_c.transpose(0, 1)?.contiguous()?,
        ]
    } else {
        vec![y, y_h, y_c]
    })
}

/// The directions the op runs (`true`: reverse), after refusing the attributes not translated.
fn directions_of(node: &NodeProto, cell: Cell, r: &Tensor) -> Result<Vec<bool>> {
    let hidden = r.dim(2)?;
    if attr_int(node, "hidden_size", hidden as i64) as usize != hidden {
        bail!("hidden_size differs from R's shape {:?}", r.dims());
    }
    if attribute(node, "clip").is_some() {
        bail!("{} with clip is not supported", node.op_type);
    }
    if cell == Cell::Lstm && attr_int(node, "input_forget", 0) != 0 {
        bail!("LSTM with input_forget is not supported");
    }
    let direction = attr_string(node, "direction").unwrap_or_else(|| "forward".into());
    Ok(match direction.as_str() {
        "forward" => vec![false],
        "reverse" => vec![true],
        "bidirectional" => vec![false, true],
        other => bail!("direction {other} is not one ONNX defines"),
    })
}

/// 1 where step `t` is inside a sample's sequence, 0 after its end, shaped (batch, hidden).
fn live_mask(lengths: &[i64], t: usize, shape: (usize, usize), device: &candle_core::Device) -> Result<Tensor> {
    let mask: Vec<u8> = lengths.iter().map(|&n| u8::from((t as i64) < n)).collect();
    Ok(Tensor::from_vec(mask, (shape.0, 1), device)?.broadcast_as(shape)?)
}

/// One GRU step from the input's and the state's gate products: the new hidden state. `reset`:
/// R, its bias and whether the reset gate multiplies after R (`linear_before_reset`).
fn gru_step(
    act: &[String],
    (xw, hr): (&Tensor, &Tensor),
    h: &Tensor,
    (rd, rb, linear_before_reset): (&Tensor, Option<&Tensor>, bool),
    hidden: usize,
) -> Result<Tensor> {
    let gate = |t: &Tensor, k: usize| t.narrow(1, k * hidden, hidden);
    let z = apply(&act[0], &(gate(xw, 0)? + gate(hr, 0)?)?)?;
    let rg = apply(&act[0], &(gate(xw, 1)? + gate(hr, 1)?)?)?;
    let candidate = if linear_before_reset {
        (gate(xw, 2)? + rg.mul(&gate(hr, 2)?)?)?
    } else {
        let rh = matmul(&rg.mul(h)?, &rd.narrow(0, 2 * hidden, hidden)?.t()?)?;
        let rh = match rb {
            Some(rb) => rh.broadcast_add(&rb.narrow(0, 2 * hidden, hidden)?)?,
            None => rh,
        };
        (gate(xw, 2)? + rh)?
    };
    let candidate = apply(&act[1], &candidate)?;
    let keep = z.affine(-1.0, 1.0)?;
    Ok((keep.mul(&candidate)? + z.mul(h)?)?)
}

/// One LSTM step from the summed gate products `pre`: the new hidden and cell states. P holds
/// the peepholes of gates i, o, f in the order of the gates themselves.
fn lstm_step(
    act: &[String],
    pre: Tensor,
    c: &Tensor,
    peephole: Option<&Tensor>,
    hidden: usize,
) -> Result<(Tensor, Tensor)> {
    let gate = |t: &Tensor, k: usize| t.narrow(1, k * hidden, hidden);
    let peep = |k: usize, state: &Tensor| -> Result<Tensor> {
        let g = gate(&pre, k)?;
        Ok(match peephole {
            Some(p) => g.broadcast_add(&state.broadcast_mul(&p.narrow(0, k * hidden, hidden)?)?)?,
            None => g,
        })
    };
    let i = apply(&act[0], &peep(0, c)?)?;
    let f = apply(&act[0], &peep(2, c)?)?;
    let candidate = apply(&act[1], &gate(&pre, 3)?)?;
    let cell_state = (f.mul(c)? + i.mul(&candidate)?)?;
    let o = apply(&act[0], &peep(1, &cell_state)?)?;
    Ok((o.mul(&apply(&act[2], &cell_state)?)?, cell_state))
}

/// The activation functions per direction: given (`activations`, one list per direction in turn)
/// or the defaults (RNN tanh; GRU sigmoid, tanh; LSTM sigmoid, tanh, tanh).
fn activation_names(node: &NodeProto, cell: Cell, directions: usize) -> Result<Vec<Vec<String>>> {
    let defaults: &[&str] = match cell {
        Cell::Rnn => &["Tanh"],
        Cell::Gru => &["Sigmoid", "Tanh"],
        Cell::Lstm => &["Sigmoid", "Tanh", "Tanh"],
    };
    let given: Vec<String> = attribute(node, "activations")
        .map(|a| {
            a.strings
                .iter()
                .map(|s| String::from_utf8_lossy(s).into_owned())
                .collect()
        })
        .unwrap_or_default();
    if attribute(node, "activation_alpha").is_some() || attribute(node, "activation_beta").is_some() {
        bail!("{} activations with alpha or beta are not supported", node.op_type);
    }
    let per = defaults.len();
    Ok((0..directions)
        .map(|d| {
            if given.len() >= per * (d + 1) {
                given[per * d..per * (d + 1)].to_vec()
            } else {
                defaults.iter().map(|s| s.to_string()).collect()
            }
        })
        .collect())
}

fn apply(name: &str, t: &Tensor) -> Result<Tensor> {
    Ok(match name.to_ascii_lowercase().as_str() {
        "sigmoid" => super::ops::sigmoid(t)?,
        "tanh" => t.tanh()?,
        "relu" => t.relu()?,
        other => bail!("the recurrent activation {other} is not supported"),
    })
}
