//! Lenient JSON as real SurePassID clients send it: trailing commas before `}` or `]` are
//! dropped (outside strings) before the body is parsed by serde_json.

use std::borrow::Cow;

/// Removes commas that are followed (after whitespace) by `}` or `]`, outside string literals.
pub fn strip_trailing_commas(input: &str) -> Cow<'_, str> {
    if !input.contains(',') {
        return Cow::Borrowed(input);
    }
    let bytes = input.as_bytes();
    let mut out = String::with_capacity(input.len());
    let mut in_string = false;
    let mut escaped = false;
    let mut changed = false;
    let mut last = 0;
    for (i, &b) in bytes.iter().enumerate() {
        if in_string {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b',' => {
                let next = bytes[i + 1..].iter().find(|c| !c.is_ascii_whitespace());
                if matches!(next, Some(b'}') | Some(b']')) {
                    out.push_str(&input[last..i]);
                    last = i + 1;
                    changed = true;
                }
            }
            _ => {}
        }
    }
    if !changed {
        return Cow::Borrowed(input);
    }
    out.push_str(&input[last..]);
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::strip_trailing_commas as s;

    #[test]
    fn drops_only_trailing_commas_outside_strings() {
        assert_eq!(s(r#"{"a":1,}"#), r#"{"a":1}"#);
        assert_eq!(s("{\"a\":[1,2, ],\n}"), "{\"a\":[1,2 ]\n}");
        assert_eq!(s(r#"{"a":",}"}"#), r#"{"a":",}"}"#);
        assert_eq!(s(r#"{"a":"\",}",}"#), r#"{"a":"\",}"}"#);
        assert_eq!(s(r#"{"a":1,"b":2}"#), r#"{"a":1,"b":2}"#);
        assert_eq!(s(",,,"), ",,,");
    }
}
