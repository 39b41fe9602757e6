//! FGSM and PGD on the embedded models' held-out digits: the pixel-space gradient is the
//! derivative of the objective, every result stays inside the ε-ball and [0, 1], PGD fools the
//! models at least as often as FGSM (checked with tract), targeted PGD reaches its class, and the
//! same seed gives the same result.

use blindspot::attack::{Attack, Classifier, Fgsm, Goal, Pgd, ThreatModel};
use blindspot::differentiable::{DType, Device};
use blindspot::model::argmax;
use blindspot::model::digits::{png_name, EMBEDDED};
use blindspot::model::embedded::MODELS;
use blindspot::model::preprocess::{decode_image, to_tensor};
use blindspot::model::Model;
use blindspot::Preprocess;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

struct Case {
    model: Model,
    classifier: Classifier,
    /// (label, pixels) of the first two held-out digits of every class.
    digits: Vec<(usize, Vec<f64>)>,
}

fn case(name: &str, dtype: DType) -> Case {
    let embedded = MODELS.iter().find(|m| m.name == name).unwrap();
    let model = embedded.load().unwrap();
    let pre = Preprocess::default();
    let map = pre.gather(&model.input_shape).unwrap();
    let grid = pre.grid(&model.input_shape).unwrap();
    let digits = EMBEDDED
        .iter()
        .filter(|d| d.row % 500 < 402)
        .map(|d| {
            let (p, _) = decode_image(d.png, &png_name(d.label, d.row), &grid).unwrap();
            (d.label as usize, p.data)
        })
        .collect();
    let classifier = Classifier::on(&model, map, &Device::Cpu, dtype).unwrap();
    Case {
        model,
        classifier,
        digits,
    }
}

/// tract's prediction on the pixels, fed as the f32 tensor the model receives.
fn tract_predict(case: &Case, pixels: &[f64]) -> usize {
    let tensor = to_tensor(case.classifier.map(), pixels);
    let runner = case.model.runner(&case.model.output_names, true).unwrap();
    argmax(&runner.run(&tensor).unwrap()[0].data)
}

/// Inside the ε-ball and [0, 1], checked here independently of `ThreatModel::contains`.
fn assert_feasible(threat: &ThreatModel, x: &[f64], z: &[f64]) {
    assert!(z.iter().all(|&v| (0.0..=1.0).contains(&v)), "outside [0, 1]");
    match threat.norm {
        blindspot::attack::Norm::Linf => {
            for (a, b) in x.iter().zip(z) {
                assert!((b - a).abs() <= threat.eps, "|{b} - {a}| > {}", threat.eps);
            }
        }
        blindspot::attack::Norm::L2 => {
            let n = x.iter().zip(z).map(|(a, b)| (b - a) * (b - a)).sum::<f64>().sqrt();
            assert!(n <= threat.eps, "‖z − x‖₂ = {n} > {}", threat.eps);
        }
    }
}

#[test]
fn pixel_gradient_equals_central_difference() {
    for name in ["mlp", "lenet", "vit_tiny", "patch_cnn"] {
        let c = case(name, DType::F64);
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let (label, x) = &c.digits[3];
        // Off the 1/255 lattice and towards the boundary, so that no ReLU or max-pool sits at a tie.
        let x = &ThreatModel::linf(0.1).random_start(x, &mut rng);
        for goal in [
            Goal::Untargeted { label: *label },
            Goal::Targeted {
                class: (label + 1) % 10,
            },
        ] {
            let v: Vec<f64> = x.iter().map(|_| rng.gen_range(-1.0..1.0)).collect();
            let (_, g) = c.classifier.objective(x, goal).unwrap();
            let analytic: f64 = g.iter().zip(&v).map(|(a, b)| a * b).sum();
            let h = 1e-6;
            let at = |t: f64| {
                let p: Vec<f64> = x.iter().zip(&v).map(|(a, b)| a + t * b).collect();
                c.classifier.objective(&p, goal).unwrap().0
            };
            let numeric = (at(h) - at(-h)) / (2.0 * h);
            let err = (analytic - numeric).abs() / numeric.abs().max(1e-8);
            assert!(err < 1e-5, "{name} {goal:?}: analytic {analytic}, numeric {numeric}");
        }
    }
}

/// The adjoint of a preprocessing map that is not the identity (0–255 range, mean/std): the pixel
/// gradient is still the derivative with respect to the pixels.
#[test]
fn pixel_gradient_chains_through_normalisation() {
    let model = MODELS[0].load().unwrap();
    let pre = Preprocess {
        scale: 255.0,
        mean: Some(vec![0.5]),
        std: Some(vec![2.0]),
        ..Preprocess::default()
    };
    let map = pre.gather(&model.input_shape).unwrap();
    assert!(
        map.scale.iter().all(|&s| (s - 127.5).abs() < 1e-9),
        "{:?}",
        &map.scale[..3]
    );
    let classifier = Classifier::on(&model, map, &Device::Cpu, DType::F64).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let x: Vec<f64> = (0..784).map(|_| rng.gen_range(0.0..0.02)).collect();
    let v: Vec<f64> = x.iter().map(|_| rng.gen_range(-1.0..1.0)).collect();
    let goal = Goal::Targeted { class: 3 };
    let (_, g) = classifier.objective(&x, goal).unwrap();
    let analytic: f64 = g.iter().zip(&v).map(|(a, b)| a * b).sum();
    let h = 1e-8;
    let at = |t: f64| {
        let p: Vec<f64> = x.iter().zip(&v).map(|(a, b)| a + t * b).collect();
        classifier.objective(&p, goal).unwrap().0
    };
    let numeric = (at(h) - at(-h)) / (2.0 * h);
    assert!(
        (analytic - numeric).abs() <= 1e-5 * numeric.abs(),
        "analytic {analytic}, numeric {numeric}"
    );
}

#[test]
fn projection_is_exact_on_random_points() {
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    for threat in [
        ThreatModel::linf(8.0 / 255.0),
        ThreatModel::linf(0.1),
        ThreatModel::l2(0.7),
        ThreatModel::l2(1.5),
    ] {
        for _ in 0..200 {
            let x: Vec<f64> = (0..784).map(|_| rng.gen_range(0..=255) as f64 / 255.0).collect();
            let mut z: Vec<f64> = x.iter().map(|a| a + rng.gen_range(-0.5..0.5)).collect();
            threat.project(&x, &mut z);
            assert_feasible(&threat, &x, &z);
            assert!(threat.contains(&x, &z));
            let mut s = threat.random_start(&x, &mut rng);
            assert_feasible(&threat, &x, &s);
            // A feasible point is left where it is.
            let before = s.clone();
            threat.project(&x, &mut s);
            assert_eq!(s, before);
        }
    }
}

/// Success rate of an attack over the correctly classified digits, predictions by tract.
fn success_rate(c: &Case, attack: &dyn Attack, targeted: bool) -> (usize, usize) {
    let (mut fooled, mut total) = (0, 0);
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    for (label, x) in &c.digits {
        if tract_predict(c, x) != *label {
            continue;
        }
        let goal = if targeted {
            Goal::Targeted {
                class: (label + 1) % 10,
            }
        } else {
            Goal::Untargeted { label: *label }
        };
        let z = attack.perturb(&c.classifier, x, goal, &mut rng).unwrap();
        assert_feasible(&attack.threat(), x, &z);
        total += 1;
        fooled += goal.achieved(tract_predict(c, &z)) as usize;
    }
    (fooled, total)
}

#[test]
fn pgd_fools_the_models_at_least_as_often_as_fgsm() {
    let mut table = String::from("model      norm eps     fgsm      pgd-40\n");
    let mut strictly_better = 0;
    for m in MODELS {
        let c = case(m.name, DType::F32);
        for threat in [
            ThreatModel::linf(8.0 / 255.0),
            ThreatModel::linf(0.1),
            ThreatModel::l2(1.5),
        ] {
            let eps = threat.eps;
            let (f, n) = success_rate(&c, &Fgsm { threat }, false);
            let (p, _) = success_rate(&c, &Pgd::madry(threat, 40), false);
            table += &format!(
                "{:<10} {:<4} {eps:.4}  {f:>2}/{n:<2}    {p:>2}/{n:<2}\n",
                m.name,
                format!("{:?}", threat.norm)
            );
            assert!(p >= f, "{}: PGD {p} < FGSM {f} at {threat:?}", m.name);
            strictly_better += (p > f) as usize;
        }
    }
    eprintln!("untargeted attack success (tract predictions, correctly classified digits)\n{table}");
    assert!(strictly_better > 0, "PGD never beat FGSM\n{table}");
}

#[test]
fn targeted_pgd_reaches_the_target_class() {
    let mut table = String::from("model      eps   targeted pgd-40 (class label+1)\n");
    for m in MODELS {
        let c = case(m.name, DType::F32);
        let threat = ThreatModel::linf(0.2);
        let (p, n) = success_rate(&c, &Pgd::madry(threat, 40), true);
        table += &format!("{:<10} {:.2}  {p:>2}/{n:<2}\n", m.name, threat.eps);
        assert!(2 * p > n, "{}: targeted PGD reached the class on {p} of {n}", m.name);
    }
    eprintln!("{table}");
}

#[test]
fn same_seed_same_result() {
    let c = case("patch_cnn", DType::F32);
    let (label, x) = &c.digits[0];
    let goal = Goal::Untargeted { label: *label };
    for threat in [ThreatModel::linf(0.1), ThreatModel::l2(1.5)] {
        let pgd = Pgd::madry(threat, 5);
        let run = |seed| {
            pgd.perturb(&c.classifier, x, goal, &mut ChaCha8Rng::seed_from_u64(seed))
                .unwrap()
        };
        let a = run(1);
        assert_eq!(a, run(1));
        assert_ne!(a, run(2));
        assert_feasible(&threat, x, &a);
    }
}

#[test]
fn attacks_refuse_pixels_outside_the_box_and_bad_eps() {
    let c = case("mlp", DType::F32);
    let (label, x) = &c.digits[0];
    let goal = Goal::Untargeted { label: *label };
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let mut bad = x.clone();
    bad[0] = 1.5;
    let fgsm = Fgsm {
        threat: ThreatModel::linf(0.1),
    };
    assert!(fgsm.perturb(&c.classifier, &bad, goal, &mut rng).is_err());
    let negative = Fgsm {
        threat: ThreatModel::l2(-1.0),
    };
    assert!(negative.perturb(&c.classifier, x, goal, &mut rng).is_err());
}
