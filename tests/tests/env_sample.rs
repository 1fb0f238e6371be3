//! `.env.sample` documents every setting: each variable the API or the worker
//! reads is in it, and everything in it is read by something.

use std::collections::BTreeSet;

fn read(path: &str) -> String {
    let full = tests::workspace_root().join(path);
    std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("{}: {e}", full.display()))
}

/// Every `env = "NAME"` in a clap config.
fn env_names(source: &str) -> BTreeSet<String> {
    source
        .split("env = \"")
        .skip(1)
        .filter_map(|rest| rest.split('"').next())
        .map(str::to_string)
        .collect()
}

/// `NAME=` at the start of a line, commented out or not.
fn sample_names(sample: &str) -> BTreeSet<String> {
    sample
        .lines()
        .map(|l| l.trim_start_matches('#').trim())
        .filter_map(|l| l.split_once('=').map(|(name, _)| name.trim()))
        .filter(|name| {
            !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
        })
        .map(str::to_string)
        .collect()
}

#[test]
fn every_setting_is_documented_and_every_documented_setting_is_read() {
    let read_by_code: BTreeSet<String> = env_names(&read("api/src/config.rs"))
        .union(&env_names(&read("worker/src/config.rs")))
        .cloned()
        .collect();
    assert!(read_by_code.len() > 20, "found only {read_by_code:?}");
    let documented = sample_names(&read(".env.sample"));
    let missing: Vec<&String> = read_by_code.difference(&documented).collect();
    assert!(missing.is_empty(), ".env.sample lacks {missing:?}");
    let run_script = read("scripts/run");
    let unused: Vec<&String> = documented
        .difference(&read_by_code)
        .filter(|name| !run_script.contains(name.as_str()))
        .collect();
    assert!(
        unused.is_empty(),
        ".env.sample documents settings nothing reads: {unused:?}"
    );
}
