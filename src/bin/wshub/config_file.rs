//! `--config FILE`: settings from a TOML file, one key per flag (the flag's
//! name without `--`: `max-queue = 4096`), read before the `WSHUB_*`
//! variables and the flags, which win over it.
//!
//! Pure code run once on the main thread: text in, `(key, value, line)`
//! out, every value as the text its flag would take (a list of values, for
//! a repeatable flag, joined with commas as its variable takes them). Which
//! keys exist is the flag table's business (see [`super::cli`]).

use toml::Value;

/// One setting of the file: its key, its value as flag text, its line.
#[derive(Debug, PartialEq, Eq)]
pub struct Entry {
    pub key: String,
    pub value: String,
    pub line: usize,
}

/// The file's settings, in the file's order, or why it cannot be read (with
/// the line where the parser says).
pub fn read(text: &str) -> Result<Vec<Entry>, String> {
    let table: toml::Table = toml::from_str(text).map_err(|err| {
        let line = err
            .span()
            .map(|span| line_of(text, span.start))
            .map_or(String::new(), |line| format!("line {line}: "));
        format!("{line}{}", err.message())
    })?;
    let mut entries = Vec::new();
    for (key, value) in table {
        let line = key_line(text, &key);
        let value = match value {
            Value::Array(items) => items
                .into_iter()
                .map(|item| scalar(&key, item, line))
                .collect::<Result<Vec<_>, _>>()?
                .join(","),
            other => scalar(&key, other, line)?,
        };
        entries.push(Entry { key, value, line });
    }
    entries.sort_by_key(|e| e.line);
    Ok(entries)
}

/// A string, number or boolean as flag text.
fn scalar(key: &str, value: Value, line: usize) -> Result<String, String> {
    match value {
        Value::String(text) => Ok(text),
        Value::Integer(n) => Ok(n.to_string()),
        Value::Float(x) => Ok(x.to_string()),
        Value::Boolean(b) => Ok(b.to_string()),
        _ => Err(format!(
            "line {line}: {key} takes a string, a number, a boolean or a list of them"
        )),
    }
}

/// The 1-based line of byte `at`.
fn line_of(text: &str, at: usize) -> usize {
    text[..at.min(text.len())].matches('\n').count() + 1
}

/// The line where `key` is set (`key =` at the start of a line), or 0.
fn key_line(text: &str, key: &str) -> usize {
    text.lines()
        .position(|line| {
            let line = line.trim_start();
            let rest = line
                .strip_prefix('"')
                .and_then(|l| l.strip_prefix(key).and_then(|l| l.strip_prefix('"')))
                .or_else(|| line.strip_prefix(key));
            rest.is_some_and(|rest| rest.trim_start().starts_with('='))
                || line.starts_with(&format!("[{key}]"))
        })
        .map_or(0, |n| n + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_become_flag_text_with_their_lines() {
        let text = "# a comment\nport = 3001\nheartbeat-interval = 0.5\n\
                    allow-client-publish = true\nallowed-origin = [\"https://a\", \"https://b\"]\n";
        let entries = read(text).unwrap();
        let got: Vec<(&str, &str, usize)> = entries
            .iter()
            .map(|e| (e.key.as_str(), e.value.as_str(), e.line))
            .collect();
        assert_eq!(
            got,
            [
                ("port", "3001", 2),
                ("heartbeat-interval", "0.5", 3),
                ("allow-client-publish", "true", 4),
                ("allowed-origin", "https://a,https://b", 5),
            ]
        );
    }

    #[test]
    fn bad_toml_and_tables_say_the_line() {
        let err = read("port = 3000\nhost = \n").unwrap_err();
        assert!(err.starts_with("line 2: "), "{err}");
        let err = read("port = 3000\n[server]\nport = 1\n").unwrap_err();
        assert!(err.starts_with("line 2: "), "{err}");
    }
}
