//! A check that an error message says each clause once.
//!
//! Shared by the binary's unit tests (`src/main.rs` includes this file) and
//! the integration tests (`common`).

/// The first clause `message` says twice, if any: split at `: ` and `; `,
/// no clause may appear twice, nor be, at a word boundary, the start of
/// another one ("block 30 from URL: block 30: ...").
pub fn repeated_clause(message: &str) -> Option<(String, String)> {
    let clauses: Vec<&str> =
        message.split(": ").flat_map(|c| c.split("; ")).map(str::trim).collect();
    let starts =
        |long: &str, short: &str| short.contains(' ') && long.starts_with(&format!("{short} "));
    for (i, a) in clauses.iter().enumerate() {
        for b in &clauses[i + 1..] {
            if a == b || starts(a, b) || starts(b, a) {
                return Some((a.to_string(), b.to_string()));
            }
        }
    }
    None
}

/// Panics when `message` (what `coldchain` prints after `error: `) says a
/// clause twice ([`repeated_clause`]).
pub fn assert_no_repeated_clause(message: &str) {
    if let Some((a, b)) = repeated_clause(message) {
        panic!("the clause {a:?} is said twice ({b:?}) in: {message}");
    }
}

/// [`assert_no_repeated_clause`] on each `error: ` line of a command's
/// stderr.
pub fn assert_errors_say_each_clause_once(stderr: &str) {
    for line in stderr.lines() {
        if let Some(message) = line.strip_prefix("error: ") {
            assert_no_repeated_clause(message);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::repeated_clause;

    #[test]
    fn repeated_clauses_are_caught() {
        assert_eq!(
            repeated_clause("f.jsonl line 3: block 2: bloom mismatch; fetch it again"),
            None
        );
        for repeated in [
            "block 30 from http://n: block 30: transactions root mismatch",
            "a: x y: a",
            "backend error: db error: b; db error",
        ] {
            assert!(repeated_clause(repeated).is_some(), "{repeated}");
        }
    }
}
