//! How a command's answer is printed: the JSON document itself (stable,
//! for scripts), or a table for people, drawn from the same document.
//!
//! The table follows the shape of the answer, as `aws --output table`
//! does: a list of records (`{"Keys": [...]}`) becomes one row per record
//! with a column per field; anything else becomes `Field | Value` rows with
//! nested fields written as dotted paths (`KeyMetadata.KeyState`).

use std::io::Write;
use std::sync::OnceLock;

use serde_json::Value;

/// `--output`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    /// One pretty-printed JSON document.
    Json,
    /// An aligned text table.
    Table,
}

static FORMAT: OnceLock<Output> = OnceLock::new();

/// Sets the format for the rest of the process (once, at start).
pub fn set_format(f: Output) {
    let _ = FORMAT.set(f);
}

/// The chosen format (JSON unless set).
pub fn format() -> Output {
    FORMAT.get().copied().unwrap_or(Output::Json)
}

/// Prints a command's answer; a closed pipe (`kmsctl ... | head`) is not an error.
pub fn print(v: &Value) -> anyhow::Result<()> {
    let text = match format() {
        Output::Json => serde_json::to_string_pretty(v)? + "\n",
        Output::Table => render_table(v),
    };
    write_stdout(text.as_bytes())
}

/// Writes to stdout, treating a closed pipe as success.
pub fn write_stdout(bytes: &[u8]) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    match out.write_all(bytes).and_then(|()| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => Ok(other?),
    }
}

/// `s` with its control characters (terminal escape sequences, newlines)
/// and bidirectional overrides written as escapes, so that text another
/// principal chose (a key's description, a tag) cannot move the cursor,
/// recolour, reorder or rewrite what a terminal shows.
pub fn printable(s: &str) -> String {
    let hostile = |c: char| {
        c.is_control()
            || matches!(
                c,
                '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{2028}' | '\u{2029}'
            )
            || ('\u{202A}'..='\u{202E}').contains(&c)
            || ('\u{2066}'..='\u{2069}').contains(&c)
    };
    if !s.chars().any(hostile) {
        return s.to_owned();
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if hostile(c) {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// A scalar as a cell: strings bare (but [`printable`]), null empty,
/// containers as compact JSON (which escapes control characters itself).
fn cell(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => printable(s),
        Value::Array(a) if a.iter().all(|x| !x.is_object() && !x.is_array()) => {
            a.iter().map(cell).collect::<Vec<_>>().join(", ")
        }
        other => other.to_string(),
    }
}

/// Field/value pairs of an object, nested objects flattened to dotted paths.
fn flatten(prefix: &str, v: &Value, out: &mut Vec<(String, String)>) {
    match v {
        Value::Object(m) if !m.is_empty() => {
            for (k, x) in m {
                let path = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(&path, x, out);
            }
        }
        other => out.push((prefix.to_owned(), cell(other))),
    }
}

/// Rows of text, columns padded to their widest cell.
fn grid(header: &[String], rows: &[Vec<String>]) -> String {
    let mut width: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            width[i] = width[i].max(c.chars().count());
        }
    }
    let line = |cells: &[String]| {
        let mut s = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i > 0 {
                s.push_str("  ");
            }
            s.push_str(c);
            if i + 1 < cells.len() {
                s.extend(std::iter::repeat_n(' ', width[i] - c.chars().count()));
            }
        }
        let mut s = s.trim_end().to_owned();
        s.push('\n');
        s
    };
    let mut out = line(header);
    let rule: Vec<String> = width.iter().map(|w| "-".repeat(*w)).collect();
    out.push_str(&line(&rule));
    for r in rows {
        out.push_str(&line(r));
    }
    out
}

/// The table form of an answer.
pub fn render_table(v: &Value) -> String {
    let Value::Object(top) = v else {
        return cell(v) + "\n";
    };
    // A list answer: exactly one field holds an array of records; the other
    // fields (Truncated, NextMarker...) go underneath as field/value rows.
    let lists: Vec<_> = top
        .iter()
        .filter(|(_, x)| matches!(x, Value::Array(a) if a.iter().all(Value::is_object)))
        .collect();
    if let [(name, Value::Array(items))] = lists.as_slice() {
        let mut columns: Vec<String> = Vec::new();
        let mut flat = Vec::with_capacity(items.len());
        for item in items {
            let mut pairs = Vec::new();
            flatten("", item, &mut pairs);
            for (k, _) in &pairs {
                if !columns.contains(k) {
                    columns.push(k.clone());
                }
            }
            flat.push(pairs);
        }
        let rows: Vec<Vec<String>> = flat
            .into_iter()
            .map(|pairs| {
                columns
                    .iter()
                    .map(|c| {
                        pairs
                            .iter()
                            .find(|(k, _)| k == c)
                            .map(|(_, v)| v.clone())
                            .unwrap_or_default()
                    })
                    .collect()
            })
            .collect();
        let mut out = format!("{name} ({})\n", rows.len());
        if !columns.is_empty() {
            out.push_str(&grid(&columns, &rows));
        }
        let rest: Vec<Vec<String>> = top
            .iter()
            .filter(|(k, _)| k != name)
            .flat_map(|(k, x)| {
                let mut pairs = Vec::new();
                flatten(k, x, &mut pairs);
                pairs
            })
            .map(|(k, v)| vec![k, v])
            .collect();
        if !rest.is_empty() {
            out.push('\n');
            out.push_str(&grid(&["Field".into(), "Value".into()], &rest));
        }
        return out;
    }
    let mut pairs = Vec::new();
    flatten("", v, &mut pairs);
    let rows: Vec<Vec<String>> = pairs.into_iter().map(|(k, v)| vec![k, v]).collect();
    grid(&["Field".into(), "Value".into()], &rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_list_is_one_row_per_record() {
        let t = render_table(&json!({
            "Keys": [
                {"KeyId": "k1", "KeyArn": "arn:1"},
                {"KeyId": "key-2", "KeyArn": "arn:2", "Extra": {"A": 1}},
            ],
            "Truncated": false,
        }));
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines[0], "Keys (2)");
        // serde_json sorts a record's fields; columns appear as first seen.
        assert_eq!(lines[1], "KeyArn  KeyId  Extra.A");
        assert_eq!(lines[3], "arn:1   k1");
        assert_eq!(lines[4], "arn:2   key-2  1");
        assert!(t.contains("Truncated  false"));
    }

    #[test]
    fn a_record_is_field_value_rows_with_dotted_paths() {
        let t = render_table(&json!({
            "KeyMetadata": {"KeyId": "k1", "Enabled": true, "DeletionDate": null},
        }));
        assert!(t.starts_with("Field"));
        assert!(t.contains("KeyMetadata.KeyId         k1\n"), "{t}");
        assert!(t.contains("KeyMetadata.Enabled       true\n"), "{t}");
        assert!(t.contains("KeyMetadata.DeletionDate\n"), "{t}");
    }

    #[test]
    fn text_cannot_drive_the_terminal() {
        assert_eq!(printable("orders db"), "orders db");
        assert_eq!(printable("naïve ключ"), "naïve ключ");
        assert_eq!(
            printable("a\u{1b}[2Jb\nc\u{202e}d\u{200f}"),
            "a\\u{1b}[2Jb\\nc\\u{202e}d\\u{200f}"
        );
        // The line and paragraph separators break lines in some terminals.
        assert_eq!(printable("a\u{2028}b\u{2029}"), "a\\u{2028}b\\u{2029}");
        let table = render_table(&serde_json::json!({"Description": "x\u{1b}[1A\rState: Enabled"}));
        assert!(
            !table.contains('\u{1b}') && !table.contains('\r'),
            "{table:?}"
        );
    }

    #[test]
    fn scalar_lists_are_joined() {
        let t = render_table(&json!({"PolicyNames": ["default", "other"]}));
        assert!(t.contains("PolicyNames  default, other"), "{t}");
    }
}
