//! Wildcard patterns as AWS policies use them: `*` matches any run of
//! characters (including none) and `?` matches exactly one character; every
//! other character is literal (there is no escape and no `${...}` policy
//! variable expansion).
//!
//! Owns compiling a pattern once at parse time and matching it without
//! allocating. Matching is a greedy scan that backtracks only to the most
//! recent `*`, so it is O(pattern x input) in the worst case, never
//! exponential. Does not know what the strings mean (actions, ARNs, values).

/// How letters compare.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Case {
    /// Exact comparison (resources, condition values, ARNs).
    Sensitive,
    /// ASCII case folding (actions, which are ASCII by validation).
    InsensitiveAscii,
}

/// One element of a compiled pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Elem {
    /// A literal character (already lowercased when case-insensitive).
    Char(char),
    /// `?`: exactly one character.
    One,
    /// `*`: any run of characters, including none.
    Star,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Kind {
    /// No wildcard at all: plain comparison.
    Exact(String),
    /// Only `*`s: matches everything.
    Anything,
    /// The general case.
    Glob(Vec<Elem>),
}

/// A compiled wildcard pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Pattern {
    kind: Kind,
    case: Case,
}

impl Pattern {
    /// Compiles `pattern`. Never fails: every string is a valid pattern.
    pub(crate) fn new(pattern: &str, case: Case) -> Pattern {
        let fold = |c: char| match case {
            Case::Sensitive => c,
            Case::InsensitiveAscii => c.to_ascii_lowercase(),
        };
        let kind = if !pattern.contains(['*', '?']) {
            Kind::Exact(pattern.chars().map(fold).collect())
        } else if pattern.chars().all(|c| c == '*') {
            Kind::Anything
        } else {
            let mut elems: Vec<Elem> = Vec::with_capacity(pattern.len());
            for c in pattern.chars() {
                let elem = match c {
                    '*' => Elem::Star,
                    '?' => Elem::One,
                    other => Elem::Char(fold(other)),
                };
                // Consecutive stars mean the same as one.
                if elem == Elem::Star && elems.last() == Some(&Elem::Star) {
                    continue;
                }
                elems.push(elem);
            }
            Kind::Glob(elems)
        };
        Pattern { kind, case }
    }

    /// Whether the whole of `input` matches the pattern.
    pub(crate) fn matches(&self, input: &str) -> bool {
        match &self.kind {
            Kind::Anything => true,
            Kind::Exact(literal) => match self.case {
                Case::Sensitive => literal == input,
                Case::InsensitiveAscii => literal.eq_ignore_ascii_case(input),
            },
            Kind::Glob(elems) => glob_match(elems, input, self.case),
        }
    }
}

fn chars_equal(pattern_char: char, input_char: char, case: Case) -> bool {
    match case {
        Case::Sensitive => pattern_char == input_char,
        // The pattern side is already lowercased.
        Case::InsensitiveAscii => pattern_char == input_char.to_ascii_lowercase(),
    }
}

/// Greedy match with backtracking to the last `*` only. This is enough for
/// `*`/`?` patterns: a later star can absorb anything an earlier one could,
/// so earlier stars never need to be revisited.
fn glob_match(elems: &[Elem], input: &str, case: Case) -> bool {
    let mut p = 0usize;
    let mut rest = input;
    // (index in `elems` just after the last star, input remaining after what
    // that star has absorbed so far)
    let mut last_star: Option<(usize, &str)> = None;
    loop {
        let mut chars = rest.chars();
        let Some(c) = chars.next() else { break };
        let after = chars.as_str();
        match elems.get(p) {
            Some(Elem::Star) => {
                p += 1;
                last_star = Some((p, rest));
                continue;
            }
            Some(Elem::One) => {
                p += 1;
                rest = after;
                continue;
            }
            Some(Elem::Char(pc)) if chars_equal(*pc, c, case) => {
                p += 1;
                rest = after;
                continue;
            }
            _ => {}
        }
        // Mismatch: let the last star absorb one more character and retry.
        let Some((star_p, star_rest)) = last_star else {
            return false;
        };
        let mut star_chars = star_rest.chars();
        if star_chars.next().is_none() {
            return false;
        }
        let next = star_chars.as_str();
        last_star = Some((star_p, next));
        p = star_p;
        rest = next;
    }
    // Input exhausted: only stars may remain.
    elems
        .get(p..)
        .is_some_and(|tail| tail.iter().all(|e| *e == Elem::Star))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    #[test]
    fn case_sensitive_table() {
        let table: &[(&str, &str, bool)] = &[
            // exact
            ("abc", "abc", true),
            ("abc", "abd", false),
            ("abc", "ab", false),
            ("abc", "abcd", false),
            ("abc", "ABC", false),
            // empty pattern and empty input
            ("", "", true),
            ("", "a", false),
            ("a", "", false),
            ("*", "", true),
            ("**", "", true),
            ("?", "", false),
            ("*?", "", false),
            // star at start, middle, end
            ("*c", "abc", true),
            ("*c", "abd", false),
            ("a*", "abc", true),
            ("a*", "a", true),
            ("a*", "ba", false),
            ("a*c", "ac", true),
            ("a*c", "abbbc", true),
            ("a*c", "abbbd", false),
            // several stars
            ("*a*b*", "xxaxxbxx", true),
            ("*a*b*", "xxbxxaxx", false),
            ("a*b*c", "abc", true),
            ("a*b*c", "aXbYc", true),
            ("a*b*c", "aXcYb", false),
            ("a**c", "abc", true),
            ("*ab", "aab", true),
            ("*aab", "aaab", true),
            ("a*a", "a", false),
            // question mark
            ("?", "a", true),
            ("?", "ab", false),
            ("a?c", "abc", true),
            ("a?c", "ac", false),
            ("??", "ab", true),
            ("?*", "a", true),
            ("*?", "ab", true),
            ("?", "é", true),
            ("a?c", "aéc", true),
            // star does not stop at separators
            (
                "arn:aws:kms:*:key/*",
                "arn:aws:kms:us-east-1:111122223333:key/k1",
                true,
            ),
            (
                "arn:aws:kms:*:key/*",
                "arn:aws:kms:us-east-1:111122223333:alias/a",
                false,
            ),
            // literal characters that look special elsewhere
            ("a.c", "abc", false),
            ("a.c", "a.c", true),
            ("${x}", "${x}", true),
            ("[ab]", "a", false),
            // case sensitivity
            ("Key/*", "key/1", false),
            ("key/*", "key/1", true),
            ("*", "*", true),
            ("a*", "A", false),
        ];
        for (pattern, input, expected) in table {
            let got = Pattern::new(pattern, Case::Sensitive).matches(input);
            assert_eq!(got, *expected, "pattern {pattern:?} input {input:?}");
        }
    }

    #[test]
    fn case_insensitive_table() {
        let table: &[(&str, &str, bool)] = &[
            ("kms:Generate*", "kms:GenerateDataKeyWithoutPlaintext", true),
            ("kms:Generate*", "kms:generatedatakey", true),
            ("kms:Generate*", "kms:Encrypt", false),
            ("kms:Generate*", "kms:Generate", true),
            ("kms:*", "kms:Encrypt", true),
            ("kms:*", "KMS:ENCRYPT", true),
            ("kms:*", "iam:CreateUser", false),
            ("kms:*", "kms", false),
            ("*", "kms:Encrypt", true),
            ("*", "", true),
            ("kms:Encrypt", "KMS:encrypt", true),
            ("kms:Encrypt", "kms:Encrypts", false),
            ("kms:ReEncrypt*", "kms:ReEncryptFrom", true),
            ("kms:ReEncrypt*", "kms:Encrypt", false),
            ("kms:?ncrypt", "kms:Encrypt", true),
            ("kms:?ncrypt", "kms:Decrypt", false),
            ("kms:*Key*", "kms:GenerateDataKeyPair", true),
            ("kms:*Key*", "kms:Decrypt", false),
            ("", "", true),
            ("", "kms:Encrypt", false),
        ];
        for (pattern, input, expected) in table {
            let got = Pattern::new(pattern, Case::InsensitiveAscii).matches(input);
            assert_eq!(got, *expected, "pattern {pattern:?} input {input:?}");
        }
    }

    #[test]
    fn many_stars_do_not_backtrack_exponentially() {
        let pattern = format!("{}b", "*a".repeat(200));
        let input = "a".repeat(20_000);
        let compiled = Pattern::new(&pattern, Case::Sensitive);
        let started = Instant::now();
        assert!(!compiled.matches(&input));
        assert!(compiled.matches(&format!("{input}b")));
        // Quadratic worst case is ~4M steps; exponential would never finish.
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn consecutive_stars_collapse() {
        let p = Pattern::new("a***b", Case::Sensitive);
        assert_eq!(
            p.kind,
            Kind::Glob(vec![Elem::Char('a'), Elem::Star, Elem::Char('b')])
        );
        assert_eq!(Pattern::new("***", Case::Sensitive).kind, Kind::Anything);
    }
}
