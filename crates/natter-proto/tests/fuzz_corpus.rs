//! Every seed of the fuzz corpora (`fuzz/seeds/`, from the protocol docs' examples) and every
//! input that once made a fuzz target fail (`fuzz/regressions/`) through the same checks the
//! fuzz targets run, on the stable toolchain: CI keeps checking them without cargo-fuzz.

#[allow(dead_code)]
#[path = "../../../fuzz/src/lib.rs"]
mod checks;

use std::path::{Path, PathBuf};

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz")
}

/// The inputs of `target` under `dir` (none when the folder is absent).
fn inputs(dir: &str, target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let folder = fuzz_dir().join(dir).join(target);
    let Ok(entries) = std::fs::read_dir(&folder) else {
        return Vec::new();
    };
    let mut out: Vec<_> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .map(|p| {
            let bytes = std::fs::read(&p).expect("read a corpus input");
            (p, bytes)
        })
        .collect();
    out.sort();
    out
}

fn run(dir: &str) -> usize {
    let mut count = 0;
    for (target, check) in checks::TARGETS {
        for (path, bytes) in inputs(dir, target) {
            let outcome = std::panic::catch_unwind(|| check(&bytes));
            assert!(outcome.is_ok(), "{target} failed on {}", path.display());
            count += 1;
        }
    }
    count
}

#[test]
fn every_seed_passes_every_check() {
    let seeds = run("seeds");
    for (target, _) in checks::TARGETS {
        assert!(
            !inputs("seeds", target).is_empty(),
            "no seeds for {target}: run fuzz/seeds.py"
        );
    }
    assert!(seeds > 100, "only {seeds} seeds");
}

#[test]
fn every_input_that_once_failed_passes() {
    run("regressions");
}
