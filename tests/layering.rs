//! Pins the layering of `src/`: each top-level module may name (`crate::…`, in `use` lines or
//! inline paths) only the modules below it, so the generic log never depends on the Paxos code
//! above it and nothing in the library depends on the simulator, the benchmarks or the runtime.
//! The table is ARCHITECTURE.md's folder map: `types`, `error` ← `wal` and the pure `paxos` core
//! (neither imports the other) ← `store` (it keeps the core's records in the log) ← `snapshot`
//! ← `node` ← `sim`, `bench`, `fuzzing` (nothing imports these three). The binary in
//! `src/bin/` uses the crate from outside and may use everything. A module missing from the
//! table fails the test, so a new folder is given its place.
//!
//! Comments are not read (a doc link to a higher layer is not a dependency of the code).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// Each top-level module and the modules it may name.
const LAYERS: &[(&str, &[&str])] = &[
    ("types", &[]),
    ("error", &["types"]),
    ("wal", &["error", "types"]),
    ("paxos", &["error", "types"]),
    ("store", &["error", "types", "wal", "paxos"]),
    ("snapshot", &["error", "types", "wal", "paxos", "store"]),
    (
        "node",
        &["error", "types", "wal", "paxos", "store", "snapshot"],
    ),
    (
        "sim",
        &[
            "error", "types", "wal", "paxos", "store", "snapshot", "node",
        ],
    ),
    (
        "bench",
        &[
            "error", "types", "wal", "paxos", "store", "snapshot", "node",
        ],
    ),
    (
        "fuzzing",
        &["error", "types", "wal", "paxos", "store", "snapshot"],
    ),
];

/// The top-level module names after `crate::` in `code`: `crate::wal::Wal` and
/// `crate::{paxos, store::X}` alike.
fn named_modules(code: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = code;
    while let Some(i) = rest.find("crate::") {
        // `$crate::` in macros and identifiers ending in "crate" are not crate paths.
        let before = rest[..i].chars().next_back();
        rest = &rest[i + "crate::".len()..];
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '$') {
            continue;
        }
        let rest_trim = rest.trim_start();
        if let Some(group) = rest_trim.strip_prefix('{') {
            // A group: the first identifier of each comma-separated item (nesting ignored: an
            // inner group's items follow a `::` and are not top-level).
            let end = group.find('}').unwrap_or(group.len());
            let mut depth = 0;
            let mut item_start = true;
            let inner = &group[..end];
            for (k, c) in inner.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' => depth -= 1,
                    ',' if depth == 0 => item_start = true,
                    c if item_start && (c.is_alphabetic() || c == '_') => {
                        let ident: String = inner[k..]
                            .chars()
                            .take_while(|c| c.is_alphanumeric() || *c == '_')
                            .collect();
                        out.insert(ident);
                        item_start = false;
                    }
                    _ => {}
                }
            }
        } else {
            let ident: String = rest_trim
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            if !ident.is_empty() {
                out.insert(ident);
            }
        }
    }
    out
}

/// `source` without `//` comments (doc comments included) and with string literals kept as
/// they are (no source line in `src/` holds `crate::` inside a string).
fn code_only(source: &str) -> String {
    source
        .lines()
        .map(|l| match l.find("//") {
            Some(i) => &l[..i],
            None => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Every `.rs` file under `dir`.
fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The crate root's re-exports (`pub use wal::{Options, Wal};` in `lib.rs`): item → module, so
/// `crate::Wal` counts as naming `wal`.
fn root_reexports(lib: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for line in code_only(lib).lines() {
        let Some(path) = line.trim().strip_prefix("pub use ") else {
            continue;
        };
        let path = path.trim_end_matches(';');
        let Some((module, items)) = path.split_once("::") else {
            continue;
        };
        let items = items.trim_start_matches('{').trim_end_matches('}');
        for item in items.split(',') {
            let name = item.split_whitespace().last().unwrap_or("");
            out.push((name.to_string(), module.to_string()));
        }
    }
    out
}

/// The layering violations of the library's files under `src` (the binary excluded), one
/// line each.
fn violations(src: &Path) -> Vec<String> {
    let reexports = root_reexports(&std::fs::read_to_string(src.join("lib.rs")).unwrap());
    let mut files = Vec::new();
    rust_files(src, &mut files);
    files.sort();
    let mut bad = Vec::new();
    for f in files {
        let rel = f.strip_prefix(src).unwrap();
        let first = rel
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_string_lossy();
        if first == "bin" || first == "lib.rs" {
            continue;
        }
        let module = first.trim_end_matches(".rs").to_string();
        let Some((_, allowed)) = LAYERS.iter().find(|(m, _)| *m == module) else {
            bad.push(format!(
                "{}: module `{module}` has no place in the layer table",
                rel.display()
            ));
            continue;
        };
        let code = code_only(&std::fs::read_to_string(&f).unwrap());
        for named in named_modules(&code) {
            let named = match reexports.iter().find(|(item, _)| *item == named) {
                Some((_, m)) => m.clone(),
                None => named,
            };
            if named != module && !allowed.contains(&named.as_str()) {
                bad.push(format!(
                    "{}: `{module}` names `crate::{named}`, which is not below it",
                    rel.display()
                ));
            }
        }
    }
    bad
}

#[test]
fn every_module_imports_only_the_layers_below_it() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let bad = violations(&src);
    assert!(bad.is_empty(), "layering violations:\n{}", bad.join("\n"));
}

#[test]
fn the_scanner_sees_every_form_of_crate_path() {
    let code = code_only(
        "use crate::paxos;\nuse crate::{store::AcceptorStore, sim};\n\
         let x = crate::bench::raw::BLOCK_BYTES; // crate::node\n\
         macro_rules! m { () => { $crate::types::Lsn } }\n",
    );
    let got: Vec<String> = named_modules(&code).into_iter().collect();
    assert_eq!(got, ["bench", "paxos", "sim", "store"]);
}

#[test]
fn root_reexports_count_as_their_modules() {
    let got = root_reexports("pub use error::{Error, Result};\npub use wal::Wal;\n");
    let want = [("Error", "error"), ("Result", "error"), ("Wal", "wal")];
    let want: Vec<(String, String)> = want
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
    assert_eq!(got, want);
}

#[test]
fn a_log_file_that_imports_paxos_is_caught() {
    // The check run on a copy of the tree with one planted upward import.
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let copy = tempfile::tempdir().unwrap();
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    for f in &files {
        let to = copy.path().join(f.strip_prefix(&src).unwrap());
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(f, &to).unwrap();
    }
    assert!(violations(copy.path()).is_empty());
    let planted = copy.path().join("wal/planted.rs");
    std::fs::write(&planted, "use crate::paxos::codec::encode_record;\n").unwrap();
    let bad = violations(copy.path());
    assert_eq!(bad.len(), 1, "{bad:?}");
    assert!(bad[0].contains("`wal` names `crate::paxos`"), "{bad:?}");
}
