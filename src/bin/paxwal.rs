//! The `paxwal` command-line tool.
fn main() {}
