//! Files fetched by `scripts/fetch-models.sh`. CI sets BLINDSPOT_REQUIRE_REAL=1 so that a missing
//! fetch fails instead of skipping.
#![allow(dead_code)]

use std::path::PathBuf;

pub fn cached(name: &str) -> Option<PathBuf> {
    let dir = std::env::var_os("BLINDSPOT_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".cache/blindspot"));
    let p = dir.join(name);
    if p.is_file() {
        Some(p)
    } else if std::env::var_os("BLINDSPOT_REQUIRE_REAL").is_some() {
        panic!("{} is missing: run scripts/fetch-models.sh", p.display());
    } else {
        eprintln!("skipping: {} not fetched (scripts/fetch-models.sh)", p.display());
        None
    }
}
