//! The data flow as the module tree: every top-level module of the library has a stage, and a
//! module may use only modules of its own stage or earlier ones (ARCHITECTURE.md). The test reads
//! the `crate::…` paths of every file under `src/` (comments left out) and fails on an edge that
//! points back up the flow, or on a cycle between two modules of one stage.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The stages, in the order data flows through them.
const STAGES: &[(&str, usize)] = &[
    ("error", 0),
    ("linop", 0),
    ("model", 1),
    ("figure", 2),
    ("frontend", 3),
    ("nullspace", 4),
    ("search", 5),
    ("verify", 6),
    ("differentiable", 7),
    ("explain", 7),
    ("attack", 7),
    ("similarity", 7),
    ("survey", 7),
    ("piecewise", 7),
    ("pipeline", 8),
];

/// Edges allowed against the rule, each with its reason. None today.
const ALLOWED_BACK_EDGES: &[(&str, &str, &str)] = &[];

fn stage(module: &str) -> Option<usize> {
    STAGES.iter().find(|(m, _)| *m == module).map(|&(_, s)| s)
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The top-level module a file under `src/` belongs to (`None` for the crate root, and for
/// main.rs and `cli/`, which are the binary's and see the library as `blindspot::`).
fn module_of(src: &Path, file: &Path) -> Option<String> {
    let rel = file.strip_prefix(src).unwrap();
    let first = rel.components().next()?.as_os_str().to_string_lossy().to_string();
    let name = first.trim_end_matches(".rs").to_string();
    (!["lib", "main", "cli"].contains(&name.as_str())).then_some(name)
}

/// Code without its comments (`//` to the end of the line, outside string literals roughly:
/// a `//` inside a string is rare in this code base and only hides a path, never adds one).
fn code_of(text: &str) -> String {
    text.lines()
        .map(|l| match l.find("//") {
            Some(i) if !l[..i].contains('"') => &l[..i],
            _ => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Names the crate root re-exports, with the module that defines them (`pub use m::…::{A, B};`).
fn root_exports(lib: &str) -> BTreeMap<String, String> {
    let mut map = BTreeMap::new();
    let code = code_of(lib);
    for statement in code.split(';') {
        let s = statement.trim();
        let Some(path) = s.strip_prefix("pub use ") else {
            continue;
        };
        let module = path.split("::").next().unwrap_or_default().trim().to_string();
        let names: Vec<&str> = match (path.find('{'), path.rfind('}')) {
            (Some(a), Some(b)) => path[a + 1..b].split(',').collect(),
            _ => vec![path.rsplit("::").next().unwrap_or_default()],
        };
        for n in names {
            let n = n.trim();
            if !n.is_empty() {
                map.insert(n.to_string(), module.clone());
            }
        }
    }
    map
}

/// The top-level modules `code` names through `crate::`.
fn references(code: &str, exports: &BTreeMap<String, String>) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = code;
    while let Some(i) = rest.find("crate::") {
        let before = rest[..i].chars().last();
        rest = &rest[i + "crate::".len()..];
        // `$crate::` and `blindspot_crate::` are other paths.
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '$') {
            continue;
        }
        if let Some(group) = rest.strip_prefix('{') {
            let end = group.find('}').unwrap_or(group.len());
            for item in group[..end].split(',') {
                let head = item.trim().split("::").next().unwrap_or_default().trim();
                if let Some(m) = exports.get(head) {
                    out.insert(m.clone());
                } else if !head.is_empty() {
                    out.insert(head.to_string());
                }
            }
            continue;
        }
        let head: String = rest.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
        match exports.get(&head) {
            Some(m) => out.insert(m.clone()),
            None => out.insert(head),
        };
    }
    out
}

/// Every edge (from module, to module, file) of the library.
fn edges(src: &Path) -> Vec<(String, String, PathBuf)> {
    let lib = std::fs::read_to_string(src.join("lib.rs")).unwrap();
    let exports = root_exports(&lib);
    let mut files = vec![];
    rust_files(src, &mut files);
    files.sort();
    let mut out = vec![];
    for file in files {
        let Some(from) = module_of(src, &file) else {
            continue;
        };
        let code = code_of(&std::fs::read_to_string(&file).unwrap());
        for to in references(&code, &exports) {
            if to != from {
                out.push((from.clone(), to, file.clone()));
            }
        }
    }
    out
}

/// The violations among `edges`: back edges, unknown modules, cycles inside one stage.
fn violations(edges: &[(String, String, PathBuf)]) -> Vec<String> {
    let mut bad = vec![];
    let mut same_stage: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (from, to, file) in edges {
        let (Some(a), Some(b)) = (stage(from), stage(to)) else {
            bad.push(format!(
                "{}: `{from}` uses `{to}`, and one of them has no stage in STAGES",
                file.display()
            ));
            continue;
        };
        let allowed = ALLOWED_BACK_EDGES.iter().any(|(f, t, _)| f == from && t == to);
        if b > a && !allowed {
            bad.push(format!(
                "{}: `{from}` (stage {a}) uses `{to}` (stage {b}), later in the flow",
                file.display()
            ));
        }
        if a == b {
            same_stage.entry(from.clone()).or_default().insert(to.clone());
        }
    }
    for (from, tos) in &same_stage {
        for to in tos {
            if same_stage.get(to).is_some_and(|back| back.contains(from)) && from < to {
                bad.push(format!("`{from}` and `{to}` use each other"));
            }
        }
    }
    bad
}

fn src_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

#[test]
fn every_module_uses_only_earlier_stages_of_the_flow() {
    let found = edges(&src_dir());
    assert!(found.len() > 50, "the edges were read ({} found)", found.len());
    let bad = violations(&found);
    assert!(bad.is_empty(), "edges against the flow:\n{}", bad.join("\n"));
}

#[test]
fn every_top_level_module_has_a_stage() {
    let lib = std::fs::read_to_string(src_dir().join("lib.rs")).unwrap();
    for line in code_of(&lib).lines() {
        if let Some(name) = line.trim().strip_prefix("pub mod ") {
            let name = name.trim_end_matches(';');
            assert!(stage(name).is_some(), "module `{name}` has no stage in STAGES");
        }
    }
}

#[test]
fn the_check_sees_a_back_edge_and_a_cycle() {
    // The reader on a made-up file: a linear operator that reaches for the pipeline.
    let exports = root_exports("pub use frontend::{open, FrontEnd};\npub use model::preprocess::Preprocess;");
    let code = code_of(
        "use crate::pipeline::audit::AuditReport; // crate::survey in a comment\nuse crate::{open, Preprocess};\nlet s = \"$crate::x\";",
    );
    let refs = references(&code, &exports);
    assert_eq!(
        refs,
        ["frontend", "model", "pipeline"]
            .iter()
            .map(|s| s.to_string())
            .collect::<BTreeSet<_>>()
    );
    let file = PathBuf::from("src/linop/mod.rs");
    let edges = vec![
        ("linop".to_string(), "pipeline".to_string(), file.clone()),
        ("explain".to_string(), "attack".to_string(), file.clone()),
        ("attack".to_string(), "explain".to_string(), file.clone()),
        ("search".to_string(), "linop".to_string(), file),
    ];
    let bad = violations(&edges);
    assert_eq!(bad.len(), 2, "{bad:?}");
    assert!(bad[0].contains("`linop` (stage 0) uses `pipeline` (stage 8)"));
    assert!(bad[1].contains("`attack` and `explain` use each other"));
}

/// The flags a line's string literals name (`--word`), outside comments.
fn flags_named(line: &str) -> Vec<String> {
    let code = code_of(line);
    let mut found = vec![];
    for (i, literal) in code.split('"').enumerate() {
        if i % 2 == 1 {
            let mut rest = literal;
            while let Some(at) = rest.find("--") {
                let name: String = rest[at + 2..]
                    .chars()
                    .take_while(|c| c.is_ascii_lowercase() || *c == '-')
                    .collect();
                if name.starts_with(|c: char| c.is_ascii_lowercase()) {
                    found.push(format!("--{name}"));
                }
                rest = &rest[at + 2..];
            }
        }
    }
    found
}

#[test]
fn the_library_speaks_of_parameters_not_flags() {
    // Flags are the command line's; the library names a parameter as `name`, which the CLI
    // renders as --name and the Python bindings as name=.
    assert_eq!(
        flags_named(r#"bail!("give --input-shape"); // --quiet"#),
        ["--input-shape"]
    );
    assert!(flags_named(r#"bail!("give `input_shape`")"#).is_empty());
    assert!(flags_named(r#"out.push_str("|---|")"#).is_empty());
    let mut files = vec![];
    rust_files(&src_dir(), &mut files);
    let mut bad = vec![];
    for file in files.iter().filter(|f| module_of(&src_dir(), f).is_some()) {
        let text = std::fs::read_to_string(file).unwrap();
        for (n, line) in text.lines().enumerate() {
            let trimmed = line.trim_start();
            if trimmed.starts_with("//") || trimmed.starts_with("#[") {
                continue;
            }
            for flag in flags_named(line) {
                bad.push(format!("{}:{}: {flag}", file.display(), n + 1));
            }
        }
    }
    assert!(files.len() > 50, "the sources were read");
    assert!(bad.is_empty(), "library strings that name a flag:\n{}", bad.join("\n"));
}
