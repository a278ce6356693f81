//! JSON with comments (JSONC), as wrangler reads `wrangler.json` and `wrangler.jsonc`: `//` and
//! `/* */` comments and trailing commas are allowed.
//!
//! Rather than a second JSON parser, [`to_json`] rewrites the text into plain JSON of the same
//! length: every comment character and every trailing comma becomes a space, and newlines stay
//! where they were. serde_json then parses it, and its line and column numbers still point into
//! the file the user wrote.

/// Where a JSONC text cannot be made into JSON.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Unterminated {
    /// Byte offset of the `/*` that never closes.
    pub(crate) offset: usize,
}

/// Rewrites JSONC into JSON of the same byte length (see the module docs).
pub(crate) fn to_json(text: &str) -> Result<String, Unterminated> {
    let without_comments = strip_comments(text)?;
    Ok(strip_trailing_commas(&without_comments))
}

/// Replaces comments with spaces, leaving strings (and the escapes inside them) untouched.
fn strip_comments(text: &str) -> Result<String, Unterminated> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        match bytes[index] {
            b'"' => {
                let end = string_end(bytes, index);
                out.extend_from_slice(&bytes[index..end]);
                index = end;
            }
            b'/' if bytes.get(index + 1) == Some(&b'/') => {
                while index < bytes.len() && bytes[index] != b'\n' {
                    out.push(blank(bytes[index]));
                    index += 1;
                }
            }
            b'/' if bytes.get(index + 1) == Some(&b'*') => {
                let start = index;
                out.extend_from_slice(b"  ");
                index += 2;
                loop {
                    if index + 1 >= bytes.len() {
                        return Err(Unterminated { offset: start });
                    }
                    if bytes[index] == b'*' && bytes[index + 1] == b'/' {
                        out.extend_from_slice(b"  ");
                        index += 2;
                        break;
                    }
                    out.push(blank(bytes[index]));
                    index += 1;
                }
            }
            byte => {
                out.push(byte);
                index += 1;
            }
        }
    }
    // Only ASCII bytes outside strings were replaced, by ASCII spaces, so the text is still UTF-8.
    Ok(String::from_utf8(out)
        .unwrap_or_else(|error| String::from_utf8_lossy(error.as_bytes()).into_owned()))
}

/// A comment byte becomes a space, except line breaks, which keep line numbers right. Bytes of
/// multi-byte characters become spaces too, which keeps the length and the UTF-8 valid.
fn blank(byte: u8) -> u8 {
    if byte == b'\n' || byte == b'\r' {
        byte
    } else {
        b' '
    }
}

/// The index just past the string that starts at `start` (a `"`), or the end of the text if the
/// string never closes (serde_json then reports it).
fn string_end(bytes: &[u8], start: usize) -> usize {
    let mut index = start + 1;
    while index < bytes.len() {
        match bytes[index] {
            b'\\' => index += 2,
            b'"' => return index + 1,
            _ => index += 1,
        }
    }
    bytes.len()
}

/// Replaces each comma that is followed (after whitespace) by `]` or `}` with a space. Runs after
/// comments are gone, so only whitespace can stand between.
fn strip_trailing_commas(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = bytes.to_vec();
    let mut index = 0;
    while index < bytes.len() {
        match bytes[index] {
            b'"' => index = string_end(bytes, index),
            b',' => {
                let next = bytes[index + 1..]
                    .iter()
                    .find(|byte| !byte.is_ascii_whitespace());
                if matches!(next, Some(b']') | Some(b'}')) {
                    out[index] = b' ';
                }
                index += 1;
            }
            _ => index += 1,
        }
    }
    String::from_utf8(out)
        .unwrap_or_else(|error| String::from_utf8_lossy(error.as_bytes()).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> serde_json::Value {
        serde_json::from_str(&to_json(text).expect("terminated")).expect("valid JSON")
    }

    #[test]
    fn strips_comments_and_trailing_commas_but_not_strings() {
        let text = r#"{
            // a line comment
            "url": "https://example.com/*not a comment*/", /* block
            comment */ "quote": "say \"hi\" // still a string",
            "list": [1, 2, 3,],
            "nested": {"a": "b", /* c */},
        }"#;
        let value = parse(text);
        assert_eq!(value["url"], "https://example.com/*not a comment*/");
        assert_eq!(value["quote"], "say \"hi\" // still a string");
        assert_eq!(value["list"], serde_json::json!([1, 2, 3]));
        assert_eq!(value["nested"], serde_json::json!({"a": "b"}));
    }

    #[test]
    fn keeps_length_and_line_numbers() {
        let text = "{\n  // comment ✓\n  \"a\": 1,\n  /* x\n y */ \"b\": [1 2]\n}";
        let json = to_json(text).expect("terminated");
        assert_eq!(json.len(), text.len());
        assert_eq!(json.lines().count(), text.lines().count());
        let error = serde_json::from_str::<serde_json::Value>(&json).expect_err("[1 2] is invalid");
        assert_eq!(error.line(), 5);
    }

    #[test]
    fn commas_inside_strings_and_escaped_backslashes_are_kept() {
        let value = parse(r#"{"a": "x,]", "b": "c:\\", "d": ["\\",],}"#);
        assert_eq!(value["a"], "x,]");
        assert_eq!(value["b"], "c:\\");
        assert_eq!(value["d"], serde_json::json!(["\\"]));
    }

    #[test]
    fn reports_an_unterminated_block_comment() {
        assert_eq!(to_json("{ /* open"), Err(Unterminated { offset: 2 }));
    }
}
