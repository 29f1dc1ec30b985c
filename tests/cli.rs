//! Pins the `paxwal` CLI contract that scripts depend on: `log append` prints each entry's LSN
//! once durable, `log dump` prints exactly what was appended (and never a wrong entry from a
//! damaged log), `log verify` exits 0 / 1 / 2 for clean / torn tail / corruption, `log inspect`
//! lists segments, and `bench --json` carries every documented key.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

fn paxwal() -> Command {
    Command::new(env!("CARGO_BIN_EXE_paxwal"))
}

fn append(dir: &Path, input: &[u8], segment_bytes: Option<u64>) -> String {
    let mut cmd = paxwal();
    cmd.args(["log", "append"]).arg(dir);
    if let Some(b) = segment_bytes {
        cmd.arg("--segment-bytes").arg(b.to_string());
    }
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "append failed");
    String::from_utf8(out.stdout).unwrap()
}

fn run(args: &[&str], dir: &Path) -> (i32, Vec<u8>, String) {
    let out = paxwal().args(args).arg(dir).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        out.stdout,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn line(i: usize) -> String {
    format!("entry {i} {}", "x".repeat(900))
}

#[test]
fn append_prints_lsns_and_dump_returns_the_lines() {
    let dir = tempfile::tempdir().unwrap();
    let input: String = (1..=50).map(|i| line(i) + "\n").collect();
    let acks = append(dir.path(), input.as_bytes(), None);
    let want: String = (1..=50).map(|i| format!("{i}\n")).collect();
    assert_eq!(acks, want);
    // A second run continues the log; a last line without a newline is an entry too.
    assert_eq!(append(dir.path(), b"tail", None), "51\n");
    let (code, out, _) = run(&["log", "dump"], dir.path());
    assert_eq!(code, 0);
    let want: String = (1..=50)
        .map(|i| format!("{i}\t{}\n", line(i)))
        .collect::<String>()
        + "51\ttail\n";
    assert_eq!(String::from_utf8(out).unwrap(), want);
    let (_, out, _) = run(&["log", "dump", "--from", "3", "--to", "4"], dir.path());
    assert_eq!(
        String::from_utf8(out).unwrap(),
        format!("3\t{}\n4\t{}\n", line(3), line(4))
    );
}

#[test]
fn verify_exit_codes_clean_torn_corrupt_and_dump_never_prints_a_wrong_entry() {
    let dir = tempfile::tempdir().unwrap();
    let input: String = (1..=150).map(|i| line(i) + "\n").collect();
    append(dir.path(), input.as_bytes(), Some(64 << 10));
    let (code, _, _) = run(&["log", "verify"], dir.path());
    assert_eq!(code, 0, "clean log");
    let (code, out, _) = run(&["log", "verify", "--json"], dir.path());
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(v["last_lsn"], 150);

    let mut segs: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "seg"))
        .collect();
    segs.sort();
    assert!(segs.len() >= 3, "{segs:?}");

    // Torn tail: garbage over the second half of the last frame of the active segment.
    let (_, out, _) = run(&["log", "inspect"], dir.path());
    let inspect = String::from_utf8(out).unwrap();
    let active = inspect
        .lines()
        .find(|l| l.ends_with("\tactive"))
        .unwrap()
        .to_owned();
    let name = active.split('\t').next().unwrap();
    let used: u64 = active
        .split('\t')
        .nth(2)
        .unwrap()
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let path = dir.path().join(name);
    let mut bytes = std::fs::read(&path).unwrap();
    let original_active = bytes.clone();
    for b in &mut bytes[used as usize - 300..used as usize] {
        *b = 0;
    }
    std::fs::write(&path, &bytes).unwrap();
    let (code, out, _) = run(&["log", "verify"], dir.path());
    assert_eq!(code, 1, "torn tail: {}", String::from_utf8_lossy(&out));
    assert!(
        String::from_utf8_lossy(&out).contains("150"),
        "names the dropped LSN"
    );
    std::fs::write(&path, &original_active).unwrap();

    // Corruption: one flipped byte inside an older, sealed segment.
    let old = &segs[0];
    let mut bytes = std::fs::read(old).unwrap();
    bytes[4096 + 56 + 4 + 200] ^= 0x20;
    std::fs::write(old, &bytes).unwrap();
    let (code, out, _) = run(&["log", "verify"], dir.path());
    assert_eq!(code, 2, "{}", String::from_utf8_lossy(&out));
    assert!(String::from_utf8_lossy(&out).contains("CORRUPTION"));
    let (code, out, err) = run(&["log", "dump"], dir.path());
    assert_ne!(code, 0, "dump of a corrupt log must fail, not print");
    assert!(err.contains("corruption"), "{err}");
    for l in String::from_utf8(out).unwrap().lines() {
        let (lsn, payload) = l.split_once('\t').unwrap();
        assert_eq!(
            payload,
            line(lsn.parse().unwrap()),
            "dump printed a wrong entry"
        );
    }
}

#[test]
fn inspect_lists_every_segment() {
    let dir = tempfile::tempdir().unwrap();
    let input: String = (1..=100).map(|i| line(i) + "\n").collect();
    append(dir.path(), input.as_bytes(), Some(64 << 10));
    let (code, out, _) = run(&["log", "inspect"], dir.path());
    assert_eq!(code, 0);
    let out = String::from_utf8(out).unwrap();
    assert!(out.lines().count() >= 2);
    assert!(
        out.lines()
            .next()
            .unwrap()
            .starts_with("00000000000000000001.seg\tLSN 1..="),
        "{out}"
    );
    assert!(out.contains("sealed") && out.contains("active"));
}

#[test]
fn bench_json_has_every_documented_key() {
    let dir = tempfile::tempdir().unwrap();
    let out = paxwal()
        .args(["bench", "--entries", "200", "--json", "--dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    for key in [
        "entries",
        "bytes",
        "seconds",
        "entries_per_sec",
        "mib_per_sec",
        "fsyncs",
        "p50_us",
        "p99_us",
        "raw_fsync_per_sec",
        "raw_seq_mib_per_sec",
    ] {
        assert!(v.get(key).is_some(), "missing {key}");
    }
    assert_eq!(v["entries"], 200);
    assert_eq!(v["bytes"], 200 * 128);
    assert!(v["fsyncs"].as_u64().unwrap() >= 1);
    assert!(v["raw_fsync_per_sec"].as_f64().unwrap() > 0.0);
    assert!(v["p99_us"].as_f64().unwrap() >= v["p50_us"].as_f64().unwrap());
}

#[test]
fn bad_input_is_a_clear_error_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope");
    for args in [
        &["log", "dump"][..],
        &["log", "verify"],
        &["log", "inspect"],
    ] {
        let (code, _, err) = run(args, &missing);
        assert_eq!(code, 1, "{args:?}");
        assert!(
            err.starts_with("paxwal: ") && !err.contains("panicked"),
            "{err}"
        );
    }
    let out = paxwal()
        .args(["bench", "--writers", "0", "--no-raw"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
}

fn sim(args: &[&str]) -> (i32, String, String) {
    let out = paxwal().arg("sim").args(args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn sim_prints_a_summary_last_and_replays_a_seed_exactly() {
    let (code, out, _) = sim(&["--seeds", "20", "--replicas", "5"]);
    assert_eq!(code, 0, "{out}");
    let last = out.lines().last().unwrap_or_default();
    assert!(last.starts_with("seeds 20 replicas 5 "), "{last}");
    assert!(last.contains(" violations 0"), "{last}");
    let once = sim(&["--seed", "7", "--steps", "300"]);
    let again = sim(&["--seed", "7", "--steps", "300"]);
    assert_eq!(once.0, 0);
    assert_eq!(once.1, again.1, "a seed must replay exactly");
}

#[test]
fn sim_exits_1_and_names_the_seed_when_a_planted_bug_is_caught() {
    let (code, out, err) = sim(&["--seeds", "50", "--planted", "d"]);
    assert_eq!(code, 1, "{out}");
    let last = out.lines().last().unwrap_or_default();
    assert!(last.contains("replay with paxwal sim --seed "), "{last}");
    // Each failing seed is also named, with the violation, on stderr.
    assert!(err.lines().any(|l| l.starts_with("seed ")), "{err}");
    let (code, _, _) = sim(&["--replicas", "0"]);
    assert_eq!(code, 64, "a bad command line is a usage error");
}
