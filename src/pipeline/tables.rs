//! What people read in a terminal: one table per command, and the survey as Markdown and CSV.

use crate::pipeline::attack::{AttackMethod, AttackReport};
use crate::pipeline::audit::AuditReport;
use crate::pipeline::collide::CollideReport;
use crate::pipeline::demo::DemoReport;
use crate::pipeline::explain::ExplainReport;
use crate::survey::tables::pipe_table;

/// The demo's table: one row per embedded model.
pub fn demo_table(r: &DemoReport) -> String {
    let header = [
        "model",
        "first layer",
        "nullity (fraction)",
        "prediction kept",
        "output deviation",
        "control deviation",
        "PSNR to target",
    ];
    let mut rows: Vec<Vec<String>> = vec![];
    let mut statements = vec![];
    for m in &r.models {
        let mut row = vec![
            m.name.clone(),
            m.first_layer.clone(),
            format!("{} of {} ({:.1}%)", m.nullity, m.input_dim, 100.0 * m.null_fraction),
        ];
        match &m.summary {
            Some(s) if s.moved > 0 => {
                let stuck = s.collisions - s.moved;
                row.extend([
                    if stuck > 0 {
                        format!("{}/{} ({stuck} without room)", s.prediction_kept, s.moved)
                    } else {
                        format!("{}/{}", s.prediction_kept, s.moved)
                    },
                    format!("{:.1e}", s.max_output_rel_diff),
                    format!("{:.1e}", s.min_control_output_rel_diff),
                    match (s.mean_psnr_to_target, s.mean_psnr_source_to_target) {
                        (Some(p), Some(b)) => format!("{p:.1} dB (source {b:.1} dB)"),
                        _ => "-".into(),
                    },
                ]);
                if stuck > 0 {
                    let reasons: Vec<String> = m
                        .collisions
                        .iter()
                        .filter(|c| c.record.comparison.l2 <= 1e-9)
                        .map(|c| {
                            format!(
                                "{}-{} {:?}: {} of {} blocks have no room",
                                c.source.label,
                                c.source.row,
                                c.mode,
                                c.record.search.blocks_without_room,
                                c.record.search.blocks
                            )
                        })
                        .collect();
                    statements.push(format!(
                        "{}: {stuck} of {} searches: no collision inside the pixel range ({})",
                        m.name,
                        s.collisions,
                        reasons.join("; ")
                    ));
                }
            }
            Some(_) => {
                row.extend(["no room in [0, 1]", "-", "-", "-"].map(String::from));
                statements.push(format!("{}: {}", m.name, m.statement.as_deref().unwrap_or("")));
            }
            None => {
                row.extend(["no exact collision", "-", "-", "-"].map(String::from));
                statements.push(format!("{}: {}", m.name, m.statement.as_deref().unwrap_or("")));
            }
        }
        rows.push(row);
    }
    let mut s = pipe_table(&header, &rows);
    s += "\noutput deviation: the largest relative change of the logits over all collisions; control deviation:\n";
    s += "the smallest relative change caused by a random perturbation of the same size (L2); PSNR to target:\n";
    s += "how closely the target-mode collisions look like the digit they imitate (the source digit's own PSNR\n";
    s += "to it in brackets). Black background cannot be painted where any positive change would show in the first\n";
    s += "layer, so patch models change mostly the strokes.\n";
    for st in statements {
        s += &format!("{st}\n");
    }
    s + &demo_explanation_table(r) + &demo_similarity_table(r) + &demo_attack_table(r)
}

/// The demo's attack panel: PGD on the first digit, then variants the model cannot tell from
/// the adversarial image, all inside the same ε-ball.
fn demo_attack_table(r: &DemoReport) -> String {
    let mut rows = vec![];
    for m in &r.models {
        if let Some(a) = &m.attack {
            rows.push(vec![
                m.name.clone(),
                format!("{}-{}", a.source.label, a.source.row),
                format!(
                    "{} → {}{}",
                    a.clean_class,
                    a.adversarial_class,
                    if a.success { "" } else { " (failed)" }
                ),
                format!(
                    "{} {}",
                    a.variants,
                    if a.variants_all_within_threat && a.variants_all_same_prediction {
                        "inside ε, same class"
                    } else {
                        "NOT all inside ε with the same class"
                    }
                ),
                format!("{:.2} / {:.2}", a.min_l2_to_adversarial, a.min_pairwise_l2),
                format!("{:.1e}", a.max_output_rel_diff),
                format!("{:.1e}", a.min_control_output_rel_diff),
            ]);
        }
    }
    if rows.is_empty() {
        return String::new();
    }
    let header = [
        "model",
        "digit",
        "class: clean → adversarial",
        "variants",
        "L2 min: to adversarial / pairwise",
        "output rel (max)",
        "control output rel (min)",
    ];
    let eps = r.models.iter().find_map(|m| m.attack.as_ref()).map_or(0.0, |a| a.eps);
    let mut s = format!(
        "\nAttack (PGD-40, L∞ ε {:.0}/255, the attack at 3/4 of it) and null-space variants of its result:\n",
        eps * 255.0
    );
    s += &pipe_table(&header, &rows);
    s
}

/// The demo's explanation panel: per model and method, how far the maps of the `far` collision
/// and of the control are from the original's.
fn demo_explanation_table(r: &DemoReport) -> String {
    let mut rows = vec![];
    for m in &r.models {
        for e in &m.explanations {
            let all_zero = e
                .agreement
                .as_ref()
                .is_some_and(|a| a.compare.pearson.is_nan() && a.compare.max_abs_diff == 0.0);
            let cells = match (&e.agreement, &e.not_defined) {
                (Some(_), _) if all_zero => [
                    "0 / -".into(),
                    "0 / -".into(),
                    "every map is zero at this layer: ReLU of Σ α_c A_c ≤ 0 (dense head)".into(),
                ],
                (Some(a), _) => [
                    format!("{:.1e} / {:.5}", a.compare.rel_diff, a.compare.pearson),
                    format!("{:.1e} / {:.3}", a.control.rel_diff, a.control.pearson),
                    match e.gradient_agreement {
                        Some(g) => format!("differs by design; gradients agree to {:.1e}", g.rel_diff),
                        None => "must agree".into(),
                    },
                ],
                (None, Some(_)) => [
                    "-".into(),
                    "-".into(),
                    "not defined: no spatial layer (report.json says why)".into(),
                ],
                (None, None) => ["-".into(), "-".into(), "-".into()],
            };
            let mut row = vec![m.name.clone(), e.method.name().to_string()];
            row.extend(cells);
            rows.push(row);
        }
    }
    if rows.is_empty() {
        return String::new();
    }
    let header = [
        "model",
        "map",
        "collision: rel diff / Pearson",
        "control: rel diff / Pearson",
        "why",
    ];
    let mut s = String::from(
        "\nExplanations of the first digit, its far collision and the control (one colour scale per figure):\n",
    );
    s += &pipe_table(&header, &rows);
    s
}

/// The demo's similarity panel: the first digit's `far` collision and the control as a person's
/// metrics (PSNR, SSIM) and the model's (feature and cosine distance) see them.
fn demo_similarity_table(r: &DemoReport) -> String {
    let f = |v: &crate::similarity::compare::SimilarityFigures| -> [String; 4] {
        [
            v.psnr.map_or("inf".into(), |p| format!("{p:.2} dB")),
            format!("{:.3}", v.ssim),
            v.feature_distance.map_or("-".into(), |d| format!("{d:.1e}")),
            v.cosine_distance.map_or("-".into(), |d| format!("{d:.1e}")),
        ]
    };
    let mut rows = vec![];
    for m in &r.models {
        if let Some(sim) = &m.similarity {
            for (what, l2, v) in [
                ("far collision", sim.l2, &sim.collision),
                ("control", sim.control_l2, &sim.control),
            ] {
                let mut row = vec![m.name.clone(), format!("{what} (L2 {l2:.2})")];
                row.extend(f(v));
                rows.push(row);
            }
        }
    }
    if rows.is_empty() {
        return String::new();
    }
    let header = ["model", "image", "PSNR", "SSIM", "feature distance", "cosine distance"];
    let mut s =
        String::from("\nSimilarity to the first digit (blindspot compare): pixels vs the model's own features:\n");
    s += &pipe_table(&header, &rows);
    s
}

pub fn audit_table(r: &AuditReport) -> String {
    let fe = &r.front_end;
    let mut s = format!(
        "model        {}\ninput        {} {:?}\nfront end    {} ({})\n",
        r.model,
        r.input.name,
        r.input.shape,
        fe.ops.join(" → "),
        serde_json::to_string(&fe.kind).unwrap_or_default().trim_matches('"')
    );
    s += &format!(
        "dimensions   {} pixels in → {} first-layer outputs\n",
        fe.input_dim, fe.output_dim
    );
    match fe.nullity {
        Some(d) if fe.response_bound.is_some() => {
            s += &format!(
                "within budget {d} of {} directions, first-layer response ‖A δ‖ ≤ {:.3e} ‖δ‖\n",
                fe.input_dim,
                fe.response_bound.unwrap_or(f64::NAN)
            )
        }
        Some(d) => {
            s += &format!(
                "nullity      {d} of {} ({:.2}% of input directions ignored)\n",
                fe.input_dim,
                100.0 * d as f64 / fe.input_dim as f64
            )
        }
        None => match fe.directions_within_budget {
            Some(d) => {
                s += &format!(
                    "within budget {d} directions whose first-layer response is at most ‖A δ‖ ≤ {:.3e} ‖δ‖\n",
                    fe.response_bound.unwrap_or(f64::NAN)
                )
            }
            None => {
                s += &format!(
                    "nullity      not proved; at least {} (input − output dimensions)\n",
                    fe.nullity_lower_bound
                )
            }
        },
    }
    if let Some(sigma) = fe.smallest_singular_value {
        s += &format!("smallest σ   {sigma:.4e}");
        if let Some(bound) = fe.smallest_singular_value_upper_bound {
            s += &format!(" (estimate; ≤ {bound:.4e} measured on a concrete direction)");
        }
        s += "\n";
    }
    if let Some(m) = &fe.method {
        s += &format!("method       {m}\n");
    }
    for b in &fe.blocks {
        s += &format!(
            "  {} block(s) {}×{}: rank {}, nullity {}, σ_max {:.4e}, σ_min {:.4e}, tolerance {:.3e}\n",
            b.count,
            b.rank.rows,
            b.rank.cols,
            b.rank.rank,
            b.rank.nullity,
            b.rank.sigma_max,
            b.rank.sigma_min,
            b.rank.tolerance
        );
    }
    if let Some(u) = fe.uncovered_pixels.filter(|&u| u > 0) {
        s += &format!("  {u} pixel(s) read by no patch\n");
    }
    if let Some(l) = &fe.limitation {
        s += &format!("note         {l}\n");
    }
    if let Some(l) = &r.first_layer {
        let m = &l.matrix;
        s += &format!("first layer  {} {} weight {:?}: matrix {}×{}, rank {}, nullity {}, σ_max {:.4e}, σ_min {:.4e}, tolerance {:.3e}\n", l.op, l.node, l.weight_shape, m.rows, m.cols, m.rank, m.nullity, m.sigma_max, m.sigma_min, m.tolerance);
    }
    s += &format!("rank rule    {}\n", fe.rank_rule);
    if !r.layers.is_empty() {
        s += &format!(
            "\n{:<48} {:<7} {:>7} {:>7} {:>7} {:>8}\n",
            "layer", "op", "rows", "cols", "rank", "nullity"
        );
        for l in &r.layers {
            let name = if l.node.len() > 47 {
                format!("…{}", &l.node[l.node.len() - 46..])
            } else {
                l.node.clone()
            };
            s += &format!(
                "{:<48} {:<7} {:>7} {:>7} {:>7} {:>8}\n",
                name, l.op, l.rows, l.cols, l.rank, l.nullity
            );
        }
    }
    s
}

fn sci(v: Option<f64>) -> String {
    v.map_or("-".into(), |v| format!("{v:.2e}"))
}

pub fn collide_table(r: &CollideReport) -> String {
    let fe = &r.front_end;
    let mut s = format!(
        "model {}  |  front end {} nullity {} of {} ({:.1}%)  |  mode {:?}, seed {}\n",
        r.model,
        fe.ops.join("→"),
        fe.nullity,
        fe.input_dim,
        100.0 * fe.null_fraction,
        r.mode,
        r.seed
    );
    s += &format!(
        "{:>3} {:>9} {:>8} {:>9} {:>11} {:>11} {:>7} {:>11} {:>11} {:>7} {:>9}\n",
        "#",
        "L2",
        "Linf",
        "PSNR(x)",
        "front rel",
        "output rel",
        "argmax",
        "ctrl front",
        "ctrl out",
        "ctrl am",
        "PSNR(tgt)"
    );
    for c in &r.collisions {
        let out_rel = c.comparison.outputs.iter().map(|o| o.rel_diff).fold(0.0, f64::max);
        let ctrl_rel = c.control.outputs.iter().map(|o| o.rel_diff).fold(0.0, f64::max);
        let am = |v: Option<bool>| v.map_or("-".into(), |b| if b { "kept".to_string() } else { "changed".into() });
        s += &format!(
            "{:>3} {:>9.3} {:>8.3} {:>9.2} {:>11} {:>11.2e} {:>7} {:>11} {:>11.2e} {:>7} {:>9}\n",
            c.index,
            c.comparison.l2,
            c.comparison.linf,
            c.comparison.psnr_to_original,
            sci(c.comparison.front_end_rel_diff),
            out_rel,
            am(c.comparison.argmax_equal),
            sci(c.control.front_end_rel_diff),
            ctrl_rel,
            am(c.control.argmax_equal),
            c.psnr_to_target.map_or("-".into(), |p| format!("{p:.2}"))
        );
    }
    for c in &r.collisions {
        let e = &c.search;
        if let Some(kkt) = e.kkt_residual {
            s += &format!(
                "{:>3} exact per block: {} blocks, {} without room, KKT residual {kkt:.1e}, objective {:.4}",
                c.index,
                e.blocks,
                e.blocks_without_room,
                e.objective.unwrap_or(f64::NAN)
            );
            if let (Some(bound), Some(reached)) = (e.far_corner_bound, e.far_corner_reached) {
                s += &format!(
                    ", L1 towards the far corner {reached:.1} of the LP bound {bound:.1} ({:.1}%)",
                    100.0 * reached / bound.max(f64::MIN_POSITIVE)
                );
            }
            s += "\n";
        }
    }
    for c in &r.collisions {
        if let (Some(response), Some(bound)) = (c.search.front_end_response, c.front_end_response_bound) {
            s += &format!(
                "{:>3} approximate: first-layer response ‖A Δ‖ = {response:.3e}, guaranteed ≤ {bound:.3e}\n",
                c.index
            );
        }
    }
    s
}

/// `blindspot attack`'s table: the attack's result, then each variant against the adversarial
/// image (whole-model deviations, beside its control) and against the original (the threat model).
pub fn attack_table(r: &AttackReport) -> String {
    let a = &r.adversarial;
    let mut s = format!(
        "model {}  |  {} {:?} ε {:.4} ({}{})  |  seed {}\n",
        r.model,
        match r.method {
            AttackMethod::Fgsm => "FGSM".to_string(),
            AttackMethod::Pgd => format!("PGD-{}", r.steps.unwrap_or(0)),
        },
        r.norm,
        r.eps,
        r.goal,
        r.target_class.map_or(String::new(), |k| format!(" → class {k}")),
        r.seed
    );
    s += &format!(
        "original: class {} ({:.4})  →  adversarial: class {} ({:.4}), {}; distance {:.4} (L2 {:.3}, L∞ {:.4}), PSNR {:.2} dB, SSIM {:.3}{}\n",
        r.original.prediction.class,
        r.original.prediction.score,
        a.prediction.class,
        a.prediction.score,
        if a.success { "success" } else { "FAILED" },
        a.to_original.distance_to_original,
        a.to_original.l2_to_original,
        a.to_original.linf_to_original,
        a.to_original.psnr_to_original,
        a.to_original.ssim_to_original,
        if a.to_original.within_threat { "" } else { "  OUTSIDE THE THREAT MODEL" }
    );
    if let Some(fe) = &r.front_end {
        s += &format!(
            "variants: null space of {} (nullity {} of {}); each against the adversarial image and the original\n",
            fe.ops.join("→"),
            fe.nullity,
            fe.input_dim
        );
        s += &format!(
            "{:>3} {:>6} {:>9} {:>8} {:>10} {:>7} {:>6} {:>11} {:>11} {:>11} {:>11}\n",
            "#",
            "class",
            "L2(adv)",
            "L∞(adv)",
            "dist(orig)",
            "inside",
            "SSIM",
            "front rel",
            "output rel",
            "ctrl front",
            "ctrl out"
        );
        for v in &r.variants {
            let out_rel = v
                .versus_adversarial
                .outputs
                .iter()
                .map(|o| o.rel_diff)
                .fold(0.0, f64::max);
            let ctrl_rel = v.control.outputs.iter().map(|o| o.rel_diff).fold(0.0, f64::max);
            s += &format!(
                "{:>3} {:>6} {:>9.3} {:>8.4} {:>10.4} {:>7} {:>6.3} {:>11} {:>11.2e} {:>11} {:>11.2e}\n",
                v.index,
                v.prediction.class,
                v.versus_adversarial.l2,
                v.versus_adversarial.linf,
                v.to_original.distance_to_original,
                if v.to_original.within_threat { "yes" } else { "NO" },
                v.to_original.ssim_to_original,
                sci(v.versus_adversarial.front_end_rel_diff),
                out_rel,
                sci(v.control.front_end_rel_diff),
                ctrl_rel
            );
        }
        if let Some(p) = &r.pairwise {
            if let (Some(min_l2), Some(mean_l2), Some(min_linf)) = (p.min_l2, p.mean_l2, p.min_linf) {
                s += &format!("pairwise among variants: L2 min {min_l2:.3}, mean {mean_l2:.3}; L∞ min {min_linf:.4}\n");
            }
        }
    }
    s
}

/// `blindspot explain`'s table: the target, scores, and how far the compared input's and the
/// control's maps agree with the original's.
pub fn explain_table(r: &ExplainReport) -> String {
    let st = &r.settings;
    let mut how = vec![];
    if let (Some(steps), Some(b)) = (st.steps, &st.baseline) {
        how.push(format!("{steps} steps, baseline {b}"));
    }
    if let (Some(n), Some(sigma)) = (st.samples, st.noise_sigma) {
        how.push(format!("{n} samples, σ {sigma:.4}, seed {}", st.seed));
    }
    if let (Some(l), Some(shape)) = (&st.layer, &st.layer_shape) {
        how.push(format!("layer {l} {shape:?}"));
    }
    let mut s = format!(
        "model {}  |  method {}{}  |  output index {} of {}\n",
        r.model,
        r.method.name(),
        if how.is_empty() {
            String::new()
        } else {
            format!(" ({})", how.join("; "))
        },
        r.output_index,
        r.output_name
    );
    s += &format!(
        "{:<9} {:>12} {:>9} {:>11} {:>11} {:>10} {:>10} {:>8}\n",
        "input", "score", "pixel L2", "output rel", "max |Δmap|", "rel diff", "pearson", "top-10%"
    );
    s += &format!(
        "{:<9} {:>12.5e} {:>9} {:>11} {:>11} {:>10} {:>10} {:>8}\n",
        "original", r.scores.original, "-", "-", "-", "-", "-", "-"
    );
    if let (Some(inputs), Some(a)) = (&r.inputs, &r.agreement) {
        let rows = [
            ("compare", r.scores.compare, &inputs.compare, &a.compare),
            ("control", r.scores.control, &inputs.control, &a.control),
        ];
        for (label, score, change, ag) in rows {
            s += &format!(
                "{:<9} {:>12.5e} {:>9.3} {:>11.2e} {:>11.2e} {:>10.2e} {:>10.6} {:>8.3}\n",
                label,
                score.unwrap_or(f64::NAN),
                change.pixel_l2,
                change.output_rel_diff,
                ag.max_abs_diff,
                ag.rel_diff,
                ag.pearson,
                ag.top10_overlap
            );
        }
    }
    if let Some(d) = &r.by_design {
        for (label, c) in [("compare", &d.compare), ("control", &d.control)] {
            s += &format!(
                "by design, {label}: gradients rel diff {:.2e}; map difference {:.3e}, of which (z − x) ⊙ gradient leaves {:.3e} unexplained\n",
                c.gradient_agreement.rel_diff, c.map_difference_max_abs, c.explained_difference_max_abs
            );
        }
    }
    if let Some(c) = &r.completeness {
        s += &format!(
            "completeness: Σ map {:.5e} vs score − baseline score {:.5e} (relative gap {:.2e})\n",
            c.original.sum, c.original.expected, c.original.rel_gap
        );
    }
    s += &format!("{}\n", r.note);
    s
}

/// `blindspot compare`: the pixel metrics, then the model's.
pub fn compare_table(r: &crate::similarity::compare::CompareReport) -> String {
    let [h, w, c] = r.pixels;
    let mut s = format!("{} vs {} ({w}x{h}, {c} channel(s))\n", r.a, r.b);
    let psnr = r
        .psnr
        .map_or("inf (identical pixels)".to_string(), |p| format!("{p:.2} dB"));
    s += &format!("  {:<18} {psnr}\n", "PSNR");
    s += &format!("  {:<18} {:.4}\n", "SSIM", r.ssim);
    if let Some(f) = &r.features {
        s += &format!(
            "  {:<18} {:.3e}  (LPIPS-style, unweighted)\n",
            "feature distance", f.feature_distance
        );
        for l in &f.layers {
            s += &format!("    {:<40} {:.3e}\n", l.name, l.distance);
        }
        s += &format!(
            "  {:<18} {:.3e}  (1 - cos of {})\n",
            "cosine distance", f.cosine_distance, f.penultimate
        );
    }
    s
}
