//! `$VAR`, `${VAR}` and `${VAR:-default}` substitution, as Dockerfiles and compose files do it.
//!
//! An unset variable with no default is never replaced by an empty string, as Docker and
//! compose would do: a reference built from it would be a guess, so it is reported instead.

/// The result of substituting variables in a text.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Expanded {
    /// Every variable had a value (or a default).
    Value(String),
    /// This variable has no value and no default.
    Unset(String),
}

/// Where variable values come from.
pub(super) type Lookup<'a> = dyn Fn(&str) -> Option<String> + 'a;

/// Substitute the variables of `text`. With `dollar_escape` (compose), `$$` is a literal `$`.
pub(super) fn expand(text: &str, lookup: &Lookup, dollar_escape: bool) -> Expanded {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        if dollar_escape && after.starts_with('$') {
            out.push('$');
            rest = &after[1..];
        } else if let Some(body) = after.strip_prefix('{') {
            let Some(end) = closing_brace(body) else {
                out.push_str(&rest[at..]);
                return Expanded::Value(out);
            };
            match braced(&body[..end], lookup, dollar_escape) {
                Expanded::Value(value) => out.push_str(&value),
                unset @ Expanded::Unset(_) => return unset,
            }
            rest = &body[end + 1..];
        } else {
            let len = name_len(after);
            if len == 0 {
                out.push('$');
                rest = after;
                continue;
            }
            match lookup(&after[..len]) {
                Some(value) => out.push_str(&value),
                None => return Expanded::Unset(after[..len].to_owned()),
            }
            rest = &after[len..];
        }
    }
    out.push_str(rest);
    Expanded::Value(out)
}

/// The variable `text` consists of, when it is exactly `$NAME` or `${NAME}`.
pub(super) fn single_variable(text: &str) -> Option<&str> {
    let name = text.strip_prefix('$')?;
    let name = name
        .strip_prefix('{')
        .and_then(|n| n.strip_suffix('}'))
        .unwrap_or(name);
    (name_len(name) == name.len() && !name.is_empty()).then_some(name)
}

/// The inside of `${...}`: a name, then optionally a modifier and a word.
fn braced(body: &str, lookup: &Lookup, dollar_escape: bool) -> Expanded {
    let len = name_len(body);
    let (name, modifier) = body.split_at(len);
    let value = lookup(name);
    let word = |w: &str| expand(w, lookup, dollar_escape);
    let set_and_non_empty = value.as_deref().is_some_and(|v| !v.is_empty());
    let (op, w) = split_modifier(modifier);
    match (op, value) {
        ("", Some(v)) => Expanded::Value(v),
        (":-", _) if !set_and_non_empty => word(w),
        (":+", _) if set_and_non_empty => word(w),
        ("-", None) | ("+", Some(_)) => word(w),
        (":+" | "+", _) => Expanded::Value(String::new()),
        (":-" | "-" | ":?" | "?", Some(v)) if op != ":?" || !v.is_empty() => Expanded::Value(v),
        _ => Expanded::Unset(name.to_owned()),
    }
}

fn split_modifier(modifier: &str) -> (&str, &str) {
    for op in [":-", ":+", ":?", "-", "+", "?"] {
        if let Some(word) = modifier.strip_prefix(op) {
            return (op, word);
        }
    }
    (modifier, "")
}

/// The index of the `}` that closes a `${`, counting nested `${...}`.
fn closing_brace(body: &str) -> Option<usize> {
    let mut depth = 0_usize;
    for (i, c) in body.char_indices() {
        match c {
            '{' => depth += 1,
            '}' if depth == 0 => return Some(i),
            '}' => depth -= 1,
            _ => {}
        }
    }
    None
}

/// The length of the variable name at the start of `text`: `[A-Za-z_][A-Za-z0-9_]*`.
fn name_len(text: &str) -> usize {
    let bytes = text.as_bytes();
    if !bytes
        .first()
        .is_some_and(|b| b.is_ascii_alphabetic() || *b == b'_')
    {
        return 0;
    }
    bytes
        .iter()
        .position(|b| !(b.is_ascii_alphanumeric() || *b == b'_'))
        .unwrap_or(bytes.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(text: &str) -> Expanded {
        let lookup = |name: &str| match name {
            "TAG" => Some("3.12".to_owned()),
            "EMPTY" => Some(String::new()),
            _ => None,
        };
        expand(text, &lookup, true)
    }

    fn value(text: &str) -> String {
        match run(text) {
            Expanded::Value(v) => v,
            Expanded::Unset(name) => panic!("`{name}` unset in {text}"),
        }
    }

    #[test]
    fn plain_and_braced_variables() {
        assert_eq!(value("python:$TAG"), "python:3.12");
        assert_eq!(value("python:${TAG}-slim"), "python:3.12-slim");
        assert_eq!(value("no variables"), "no variables");
    }

    #[test]
    fn defaults_and_alternatives() {
        assert_eq!(value("${MISSING:-ubuntu}:${TAG}"), "ubuntu:3.12");
        assert_eq!(value("${EMPTY:-x}"), "x");
        assert_eq!(value("${EMPTY-x}"), "");
        assert_eq!(value("${MISSING-x}"), "x");
        assert_eq!(value("${TAG:+set}${MISSING:+no}"), "set");
        assert_eq!(value("${MISSING:-${TAG}}"), "3.12");
    }

    #[test]
    fn unset_variables_are_reported_not_emptied() {
        assert_eq!(run("app:${VERSION}"), Expanded::Unset("VERSION".to_owned()));
        assert_eq!(run("$REGISTRY/app"), Expanded::Unset("REGISTRY".to_owned()));
        assert_eq!(
            run("${EMPTY:?required}"),
            Expanded::Unset("EMPTY".to_owned())
        );
    }

    #[test]
    fn dollar_escapes_and_stray_dollars() {
        assert_eq!(value("a$$b"), "a$b");
        assert_eq!(value("a$"), "a$");
        assert_eq!(value("a$-b"), "a$-b");
    }

    #[test]
    fn single_variables_are_recognized() {
        assert_eq!(single_variable("${BASE}"), Some("BASE"));
        assert_eq!(single_variable("$BASE"), Some("BASE"));
        assert_eq!(single_variable("${BASE}:1"), None);
        assert_eq!(single_variable("${BASE:-x}"), None);
    }
}
