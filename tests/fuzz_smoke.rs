//! The CI smoke run of every fuzz target (docs/FUZZING.md): each target's committed seeds
//! (`fuzz/corpus/<target>/seed-*`) and a few thousand mutations of them, made by a seeded
//! generator so a failure repeats, go through the same entry point the cargo-fuzz target calls.
//! A panic fails the test and writes the input to `$TMPDIR/keelson-fuzz-<target>.crash`, which
//! `cargo fuzz run <target> <file>` replays. This is not coverage-guided fuzzing: the long
//! runs are `cargo fuzz run`, as docs/FUZZING.md describes.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Mutations tried per target (the run stops earlier at `BUDGET`).
const MUTATIONS: usize = 20_000;
const BUDGET: Duration = Duration::from_secs(6);

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
}

/// Bytes the decoders care about.
const INTERESTING: &[u8] = b"{}[]\":,\\0-9eE.+ \n\t\xff\x00\x7f&*!|#-?$/=(),";

fn mutate(rng: &mut Rng, seeds: &[Vec<u8>], input: &[u8]) -> Vec<u8> {
    let mut v = input.to_vec();
    for _ in 0..1 + rng.below(4) {
        match rng.below(7) {
            0 if !v.is_empty() => {
                let i = rng.below(v.len());
                v[i] ^= 1 << rng.below(8);
            }
            1 if !v.is_empty() => {
                let i = rng.below(v.len());
                v[i] = INTERESTING[rng.below(INTERESTING.len())];
            }
            2 => {
                let i = rng.below(v.len() + 1);
                let b = INTERESTING[rng.below(INTERESTING.len())];
                v.insert(i, b);
            }
            3 if !v.is_empty() => {
                let i = rng.below(v.len());
                let n = 1 + rng.below((v.len() - i).min(16));
                v.drain(i..i + n);
            }
            4 if !v.is_empty() && v.len() < 64 * 1024 => {
                // Repeat a slice: deeper nesting, longer lists.
                let i = rng.below(v.len());
                let n = 1 + rng.below((v.len() - i).min(64));
                let piece = v[i..i + n].to_vec();
                for _ in 0..1 + rng.below(8) {
                    v.splice(i..i, piece.iter().copied());
                }
            }
            5 => {
                let other = &seeds[rng.below(seeds.len())];
                if !other.is_empty() {
                    let i = rng.below(other.len());
                    let at = rng.below(v.len() + 1);
                    v.splice(at..at, other[i..].iter().copied());
                }
            }
            _ => {
                let i = rng.below(v.len() + 1);
                v.truncate(i);
            }
        }
    }
    v
}

fn seeds_of(target: &str) -> Vec<Vec<u8>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("seed-"))
        })
        .collect();
    files.sort();
    let seeds: Vec<Vec<u8>> = files
        .iter()
        .map(|p| std::fs::read(p).expect("seed"))
        .collect();
    assert!(!seeds.is_empty(), "no seeds in {}", dir.display());
    seeds
}

fn smoke(target: &str, run: fn(&[u8])) -> usize {
    let seeds = seeds_of(target);
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ target.len() as u64);
    let started = Instant::now();
    let mut ran = 0;
    let try_one = |input: &[u8]| {
        if std::panic::catch_unwind(|| run(input)).is_err() {
            let path = std::env::temp_dir().join(format!("keelson-fuzz-{target}.crash"));
            let _ = std::fs::write(&path, input);
            panic!(
                "fuzz target {target} panicked on an input of {} bytes, written to {}",
                input.len(),
                path.display()
            );
        }
    };
    for s in &seeds {
        try_one(s);
        ran += 1;
    }
    let mut current = seeds[0].clone();
    for i in 0..MUTATIONS {
        if started.elapsed() > BUDGET {
            break;
        }
        // Mostly mutate the last input further; sometimes start again from a seed.
        if i % 16 == 0 {
            current = seeds[rng.below(seeds.len())].clone();
        }
        current = mutate(&mut rng, &seeds, &current);
        try_one(&current);
        ran += 1;
    }
    ran
}

#[test]
fn every_fuzz_target_survives_its_seeds_and_their_mutations() {
    let targets = keelson_apiserver::fuzz::TARGETS
        .iter()
        .chain(keelson_store::fuzz::TARGETS);
    let mut names = Vec::new();
    for (name, run) in targets {
        let ran = smoke(name, *run);
        assert!(ran > 100, "{name}: only {ran} inputs");
        eprintln!("fuzz smoke: {name}: {ran} inputs");
        names.push(*name);
    }
    // Every target has its cargo-fuzz file, and every file is a target here.
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/fuzz_targets");
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .expect("fuzz/fuzz_targets")
        .filter_map(|e| {
            e.ok()?
                .path()
                .file_stem()
                .and_then(|s| s.to_str())
                .map(str::to_string)
        })
        .collect();
    files.sort();
    names.sort();
    assert_eq!(files, names);
}
