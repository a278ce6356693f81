//! The dotenv format of `.dev.vars`, parsed as wrangler parses it (with the `dotenv` package).
//!
//! - `KEY=value` per line; an optional `export ` prefix; spaces around the key and `=` are ignored.
//! - Unquoted values end at the first `#` (dotenv's rule, so `URL=a/#b` gives `a/`) and are trimmed.
//! - `'single'` quotes are literal; `"double"` quotes expand `\n` and `\r`; `` `backticks` ``
//!   are literal. Quoted values may span lines.
//! - Lines that are blank, start with `#`, or are not `KEY=...` are skipped, as dotenv does.
//! - No `${VAR}` expansion (wrangler does not expand either).
//!
//! A later line wins over an earlier line with the same key.

use std::collections::BTreeMap;

/// Parses a dotenv text (a `.dev.vars` file) into key-value pairs.
pub fn parse(text: &str) -> BTreeMap<String, String> {
    let text = text.replace("\r\n", "\n");
    let mut values = BTreeMap::new();
    let mut rest = text.as_str();
    while !rest.is_empty() {
        let (line_end, next) = match rest.find('\n') {
            Some(index) => (index, index + 1),
            None => (rest.len(), rest.len()),
        };
        let line = &rest[..line_end];
        let Some((key, value_start)) = split_key(line) else {
            rest = &rest[next..];
            continue;
        };
        // The value may run past this line if it opens a quote that closes later.
        let value_text = &rest[value_start..];
        let (value, consumed) = parse_value(value_text, line_end - value_start);
        values.insert(key.to_owned(), value);
        let consumed_to = value_start + consumed;
        rest = match rest[consumed_to..].find('\n') {
            Some(index) => &rest[consumed_to + index + 1..],
            None => "",
        };
    }
    values
}

/// Splits `KEY=` off a line: returns the key and the byte offset where the value starts.
fn split_key(line: &str) -> Option<(&str, usize)> {
    let trimmed_start = line.len() - line.trim_start().len();
    let mut body = &line[trimmed_start..];
    let mut offset = trimmed_start;
    if let Some(stripped) = body.strip_prefix("export ") {
        offset += body.len() - stripped.len();
        body = stripped;
    }
    let equals = body.find('=')?;
    let key = body[..equals].trim();
    let valid_key = !key.is_empty()
        && key
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || matches!(byte, b'_' | b'.' | b'-'));
    if !valid_key {
        return None;
    }
    Some((key, offset + equals + 1))
}

/// Parses the value at the start of `text`, whose first line is `line_length` bytes long.
/// Returns the value and how many bytes of `text` it used.
fn parse_value(text: &str, line_length: usize) -> (String, usize) {
    let leading = text[..line_length].len() - text[..line_length].trim_start().len();
    let body = &text[leading..];
    if let Some(quote) = body
        .chars()
        .next()
        .filter(|c| matches!(c, '"' | '\'' | '`'))
        && let Some(close) = closing_quote(&body[1..], quote)
    {
        let inner = &body[1..1 + close];
        let value = if quote == '"' {
            inner.replace("\\n", "\n").replace("\\r", "\r")
        } else {
            inner.to_owned()
        };
        return (value, leading + close + 2);
    }
    // Unquoted (or an unclosed quote, which dotenv keeps as written): up to the end of the line
    // or the first `#`.
    let line = &text[..line_length];
    let value = match line.find('#') {
        Some(index) => &line[..index],
        None => line,
    };
    (value.trim().to_owned(), line_length)
}

/// The index of the first `quote` in `text` that is not escaped with a backslash.
fn closing_quote(text: &str, quote: char) -> Option<usize> {
    let mut escaped = false;
    for (index, character) in text.char_indices() {
        match character {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            _ if character == quote => return Some(index),
            _ => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_forms_wrangler_accepts() {
        let text = "\
# secrets for local development
API_KEY=abc123
export TOKEN = \"t0k3n\"
SPACED =   padded value   # trailing comment
SINGLE='literal \\n $HOME'
DOUBLE=\"line1\\nline2\"
MULTI=\"first
second\"
EMPTY=
not a pair
URL=https://example.com/#anchor
ESCAPED=\"say \\\"hi\\\"\"
API_KEY=overridden
";
        let values = parse(text);
        assert_eq!(values["API_KEY"], "overridden");
        assert_eq!(values["TOKEN"], "t0k3n");
        assert_eq!(values["SPACED"], "padded value");
        assert_eq!(values["SINGLE"], "literal \\n $HOME");
        assert_eq!(values["DOUBLE"], "line1\nline2");
        assert_eq!(values["MULTI"], "first\nsecond");
        assert_eq!(values["EMPTY"], "");
        assert_eq!(values["URL"], "https://example.com/");
        assert_eq!(values["ESCAPED"], "say \\\"hi\\\"");
        assert_eq!(values.len(), 9);
    }

    #[test]
    fn handles_crlf_and_a_missing_final_newline() {
        let values = parse("A=1\r\nB=\"two\"");
        assert_eq!(values["A"], "1");
        assert_eq!(values["B"], "two");
    }
}
