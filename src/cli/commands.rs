//! One function per command: load what the arguments name, call the pipeline, print its
//! table or JSON, write its files.

use super::args::*;
use super::progress_bar;
use anyhow::{bail, Context, Result};
use blindspot::attack::ThreatModel;
use blindspot::explain::{Baseline, Method};
use blindspot::model::npy;
use blindspot::model::preprocess::load_image;
use blindspot::nullspace::conv_spectrum::Effort;
use blindspot::pipeline::attack::{attack, AttackSettings};
use blindspot::pipeline::collide::{collide, CollideRequest, SearchSettings};
use blindspot::pipeline::explain::{explain, ExplainRequest};
use blindspot::pipeline::{audit, demo, tables};
use blindspot::similarity::compare;
use blindspot::{survey, RankRule};
use std::path::PathBuf;

pub fn run_demo(args: DemoArgs, quiet: bool) -> Result<()> {
    let DemoArgs { out, seed, quick, json } = args;
    let opts = demo::DemoOptions {
        seed,
        pairs: if quick { 1 } else { demo::PAIRS.len() },
    };
    let bar = progress_bar(quiet, opts.searches_at_most() as u64, "demo");
    let result = demo::run(&opts, &|what| {
        bar.set_message(what.to_string());
        bar.inc(1)
    })?;
    bar.finish_and_clear();
    result.write(&out)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&result.report)?);
    } else {
        print!("{}", tables::demo_table(&result.report));
        println!(
            "{:.1} s; figures, collisions (.png, .npy) and report.json in {}",
            result.report.seconds,
            out.display()
        );
    }
    Ok(())
}

pub fn run_audit(args: AuditArgs, quiet: bool) -> Result<()> {
    let AuditArgs { model, pre } = args;
    let shape = pre.input_shape(&model.input_shape)?;
    let choice = model.inputs.choice();
    let request = load_request(shape.as_deref(), None, &choice, None);
    let (m, fe) = blindspot::open_with(&model.model, &request, &pre.preprocess()?)?;
    let rule = RankRule { relative: model.tol };
    let proof_bar = progress_bar(quiet, 0, "proving the rank (banded Cholesky)");
    let ns = blindspot::nullspace::front_end_null_space_with(&fe, rule, Effort::AUDIT, &|done, blocks| {
        proof_bar.set_length(blocks as u64);
        proof_bar.set_position(done as u64);
    })?;
    proof_bar.finish_and_clear();
    let bar = progress_bar(quiet, 0, "ranking layers");
    let report = audit::audit(&m, &fe, ns.as_ref(), rule, &|name| {
        bar.set_message(name.to_string());
        bar.tick()
    })?;
    bar.finish_and_clear();
    if model.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", tables::audit_table(&report));
    }
    Ok(())
}

pub fn run_collide(args: CollideArgs, quiet: bool) -> Result<()> {
    let CollideArgs {
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
    } = args;
    if count == 0 {
        bail!("--count must be at least 1");
    }
    let shape = pre.input_shape(&model.input_shape)?;
    let choice = model.inputs.choice();
    let request = load_request(shape.as_deref(), Some(&image), &choice, None);
    let (m, fe) = blindspot::open_with(&model.model, &request, &pre.preprocess()?)?;
    let req = CollideRequest {
        image: load_image(&image, &fe.grid)?,
        target: target.map(|t| load_image(&t, &fe.grid)).transpose()?,
        search: SearchSettings {
            distance,
            mode,
            count,
            strength,
            seed,
            rule: RankRule { relative: model.tol },
        },
    };
    let bar = progress_bar(quiet, count as u64, "searching");
    let result = collide(&m, &fe, &req, &|| bar.inc(1))?;
    bar.finish_and_clear();
    result.write(&out, &m.input_shape)?;
    if model.json {
        println!("{}", serde_json::to_string_pretty(&result.report)?);
    } else {
        print!("{}", tables::collide_table(&result.report));
        println!("wrote {} files to {}", result.report.files.len(), out.display());
    }
    Ok(())
}

pub fn run_attack(args: AttackArgs, quiet: bool) -> Result<()> {
    let AttackArgs {
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
    } = args;
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
    let bar = progress_bar(quiet, variants as u64, "variants");
    let result = attack(&m, &fe, &image, &settings, &|| bar.inc(1))?;
    bar.finish_and_clear();
    result.write(&out, &m.input_shape)?;
    if model.json {
        println!("{}", serde_json::to_string_pretty(&result.report)?);
    } else {
        print!("{}", tables::attack_table(&result.report));
        println!("wrote {} files to {}", result.report.files.len(), out.display());
    }
    Ok(())
}

pub fn run_survey(args: SurveyArgs, quiet: bool) -> Result<()> {
    let SurveyArgs {
        models,
        input,
        input_shape,
        json,
        csv,
        markdown,
        figure,
        no_figure,
        seed,
    } = args;
    let settings = survey::SurveySettings { input, seed };
    let bar = progress_bar(quiet, survey::CATALOGUE_LEN as u64 + models.len() as u64, "surveying");
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
        print!("{}", survey::tables::survey_csv(&rows));
    } else if markdown {
        print!("{}", survey::tables::survey_markdown(&rows));
    } else {
        print!("{}", survey::tables::survey_table(&rows));
        if !no_figure {
            println!("figure: {}", figure.display());
        }
    }
    Ok(())
}

pub fn run_explain(args: ExplainArgs, quiet: bool) -> Result<()> {
    let ExplainArgs {
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
    } = args;
    let shape = pre.input_shape(&input_shape)?;
    let choice = inputs.choice();
    let pre_map = pre.preprocess()?;
    let m = blindspot::Model::load_with(
        &model,
        &load_request(shape.as_deref(), Some(&image), &choice, Some(&pre_map)),
    )?;
    let baseline = match baseline {
        // Read only where the method starts from it; otherwise the library refuses it by name.
        Some(p) if method != Method::IntegratedGradients => Baseline::Named(p.display().to_string(), vec![]),
        Some(p) => {
            let values = npy::read_model_input(&p, &m.input_shape, None)
                .with_context(|| format!("the baseline {}", p.display()))?;
            Baseline::Named(p.display().to_string(), values.into_iter().map(f64::from).collect())
        }
        None => Baseline::Zeros,
    };
    let compare = match compare {
        Some(p) => Some((
            p.display().to_string(),
            npy::read_model_input(&p, &m.input_shape, None)?,
        )),
        None => None,
    };
    let preprocess = pre.preprocess()?;
    let image = load_image(&image, &preprocess.grid(&m.input_shape)?)?;
    let req = ExplainRequest {
        method,
        output_index,
        settings: blindspot::explain::Settings {
            baseline,
            steps,
            samples,
            noise,
            seed,
            layer,
        },
    };
    let bar = progress_bar(quiet, req.evaluations(compare.is_some()), method.name());
    let result = explain(&m, &preprocess, image, compare, &req, &|| bar.inc(1))?;
    bar.finish_and_clear();
    result.write(&out)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&result.report)?);
    } else {
        print!("{}", tables::explain_table(&result.report));
        println!("wrote {} files to {}", result.report.files.len(), out.display());
    }
    Ok(())
}

pub fn run_compare(args: CompareArgs, _quiet: bool) -> Result<()> {
    let CompareArgs {
        a,
        b,
        model,
        input_shape,
        inputs,
        pre,
        layers,
        json,
    } = args;
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
        print!("{}", tables::compare_table(&r));
    }
    Ok(())
}

pub fn run_verify(args: VerifyArgs, _quiet: bool) -> Result<()> {
    let VerifyArgs { model, a, b, pre } = args;
    let shape = pre.input_shape(&model.input_shape)?;
    let choice = model.inputs.choice();
    let request = load_request(shape.as_deref(), None, &choice, None);
    let (m, fe) = blindspot::open_with(&model.model, &request, &pre.preprocess()?)?;
    let read = |p: &PathBuf| npy::read_model_input(p, &m.input_shape, Some(&m.input_name));
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
    Ok(())
}
