//! A small YAML tree that remembers where each scalar is written, built from `saphyr-parser`
//! events, so that a value can be reported at its line and rewritten byte for byte.

use std::collections::HashMap;
use std::ops::Range;
use std::path::Path;

use saphyr_parser::{Event, Parser, ScalarStyle, Span};

use super::SourceError;

/// A YAML node. Aliases are replaced by a copy of their anchor, spans included.
#[derive(Clone, Debug)]
pub(super) enum Node {
    Scalar(Scalar),
    Mapping(Vec<(Node, Node)>),
    Sequence(Vec<Node>),
}

/// A scalar and where it is written.
#[derive(Clone, Debug)]
pub(super) struct Scalar {
    pub value: String,
    /// Whether it was written without quotes (so `null` or `5` are not strings).
    pub plain: bool,
    /// The 1-based line it starts on.
    pub line: usize,
    /// The bytes of the file that are exactly `value` without surrounding whitespace, when
    /// there are such bytes: a quoted or plain scalar on one line without escapes (after any
    /// anchor or tag), or a folded or block scalar whose content is one line.
    pub span: Option<Range<usize>>,
}

impl Node {
    /// The value of `key` in a mapping, looking through `<<` merge keys.
    pub fn get(&self, key: &str) -> Option<&Node> {
        let Node::Mapping(entries) = self else {
            return None;
        };
        let direct = entries
            .iter()
            .find(|(k, _)| k.as_str() == Some(key))
            .map(|(_, v)| v);
        direct.or_else(|| {
            let merged = entries.iter().find(|(k, _)| k.as_str() == Some("<<"))?;
            match &merged.1 {
                Node::Sequence(items) => items.iter().find_map(|m| m.get(key)),
                one => one.get(key),
            }
        })
    }

    /// The text of a scalar.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Node::Scalar(s) => Some(&s.value),
            _ => None,
        }
    }
}

/// Parse every document of `text`, read from `path`.
pub(super) fn parse(path: &Path, text: &str) -> Result<Vec<Node>, SourceError> {
    let offsets = CharOffsets::new(text);
    let mut builder = Builder::default();
    for event in Parser::new_from_str(text) {
        let (event, span) = event.map_err(|e| SourceError::Yaml {
            path: path.to_owned(),
            line: e.marker().line(),
            column: e.marker().col() + 1,
            message: e.info().to_owned(),
        })?;
        builder.event(event, span, text, &offsets);
    }
    Ok(builder.documents)
}

/// An open collection and the anchor it will be stored under.
enum Frame {
    Sequence(Vec<Node>, usize),
    Mapping(Vec<(Node, Node)>, Option<Node>, usize),
}

#[derive(Default)]
struct Builder {
    stack: Vec<Frame>,
    anchors: HashMap<usize, Node>,
    documents: Vec<Node>,
}

impl Builder {
    fn event(&mut self, event: Event, span: Span, text: &str, offsets: &CharOffsets) {
        match event {
            Event::Scalar(value, style, anchor, _) => {
                let node = Node::Scalar(scalar(&value, style, span, text, offsets));
                self.finish(node, anchor);
            }
            Event::Alias(anchor) => {
                let node = self.anchors.get(&anchor).cloned();
                self.finish(node.unwrap_or_else(empty), 0);
            }
            Event::SequenceStart(anchor, _) => self.stack.push(Frame::Sequence(Vec::new(), anchor)),
            Event::MappingStart(anchor, _) => {
                self.stack.push(Frame::Mapping(Vec::new(), None, anchor));
            }
            Event::SequenceEnd | Event::MappingEnd => match self.stack.pop() {
                Some(Frame::Sequence(items, anchor)) => self.finish(Node::Sequence(items), anchor),
                Some(Frame::Mapping(entries, _, anchor)) => {
                    self.finish(Node::Mapping(entries), anchor);
                }
                None => {}
            },
            _ => {}
        }
    }

    /// Attach a completed node to its parent, or make it a document.
    fn finish(&mut self, node: Node, anchor: usize) {
        if anchor != 0 {
            self.anchors.insert(anchor, node.clone());
        }
        match self.stack.last_mut() {
            None => self.documents.push(node),
            Some(Frame::Sequence(items, _)) => items.push(node),
            Some(Frame::Mapping(entries, key, _)) => match key.take() {
                None => *key = Some(node),
                Some(k) => entries.push((k, node)),
            },
        }
    }
}

fn empty() -> Node {
    Node::Scalar(Scalar {
        value: String::new(),
        plain: true,
        line: 0,
        span: None,
    })
}

fn scalar(
    value: &str,
    style: ScalarStyle,
    span: Span,
    text: &str,
    offsets: &CharOffsets,
) -> Scalar {
    let start = offsets.byte(span.start.index());
    let trimmed = value.trim();
    let span = match style {
        _ if trimmed.contains('\n') => None,
        ScalarStyle::Plain => Some(after_properties(text, start)),
        ScalarStyle::SingleQuoted | ScalarStyle::DoubleQuoted => text
            .get(start..)
            .and_then(|rest| rest.find(['\'', '"']))
            .map(|quote| start + quote + 1 + (value.len() - value.trim_start().len())),
        ScalarStyle::Literal | ScalarStyle::Folded => block_content(text, start, trimmed),
    }
    .map(|at| at..at + trimmed.len())
    .filter(|range| text.get(range.clone()) == Some(trimmed));
    Scalar {
        value: value.to_owned(),
        plain: style == ScalarStyle::Plain,
        line: span
            .as_ref()
            .map_or(span_line(text, start), |r| span_line(text, r.start)),
        span,
    }
}

/// Where a plain scalar's text starts at `start`: after its `&anchor` and `!tag`, if any.
fn after_properties(text: &str, start: usize) -> usize {
    let mut at = start;
    while let Some(rest) = text.get(at..)
        && (rest.starts_with('&') || rest.starts_with('!'))
    {
        let word = rest.find([' ', '\t']).unwrap_or(rest.len());
        let space = rest[word..].len() - rest[word..].trim_start_matches([' ', '\t']).len();
        at += word + space;
    }
    at
}

/// Where the one line of content of a block scalar is, when that line is exactly `trimmed`. The
/// parser reports the scalar from its content, or from its header (`>-`, `|`) when there is none.
fn block_content(text: &str, start: usize, trimmed: &str) -> Option<usize> {
    if text.get(start..)?.starts_with(trimmed) {
        return Some(start);
    }
    let header_end = start + text.get(start..)?.find('\n')? + 1;
    let mut at = header_end;
    for line in text[header_end..].split_inclusive('\n') {
        let content = line.trim();
        if content.is_empty() {
            at += line.len();
            continue;
        }
        return (content == trimmed).then(|| at + (line.len() - line.trim_start().len()));
    }
    None
}

fn span_line(text: &str, at: usize) -> usize {
    text.get(..at)
        .map_or(1, |before| before.matches('\n').count() + 1)
}

/// Character indexes (which the parser reports) to byte offsets.
struct CharOffsets {
    /// The byte offset of each character; empty when the text is ASCII.
    bytes: Vec<usize>,
    len: usize,
}

impl CharOffsets {
    fn new(text: &str) -> Self {
        let bytes = if text.is_ascii() {
            Vec::new()
        } else {
            text.char_indices().map(|(i, _)| i).collect()
        };
        Self {
            bytes,
            len: text.len(),
        }
    }

    fn byte(&self, index: usize) -> usize {
        if self.bytes.is_empty() {
            index.min(self.len)
        } else {
            self.bytes.get(index).copied().unwrap_or(self.len)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scalar_at(text: &str, key: &str) -> Scalar {
        let docs = parse(Path::new("t.yaml"), text).unwrap();
        match docs[0].get(key) {
            Some(Node::Scalar(s)) => s.clone(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn spans_cover_exactly_the_value_in_every_quoting() {
        for (text, line) in [
            ("a: 1\nimage: ubuntu:22.04\n", 2),
            ("image: 'ubuntu:22.04' # comment\n", 1),
            ("x: é\n\nimage: \"ubuntu:22.04\"\r\n", 3),
        ] {
            let s = scalar_at(text, "image");
            assert_eq!(&text[s.span.clone().unwrap()], "ubuntu:22.04", "{text}");
            assert_eq!(s.line, line, "{text}");
        }
    }

    #[test]
    fn escaped_or_multi_line_values_have_no_span() {
        assert!(scalar_at("image: \"ubun\\x74u\"\n", "image").span.is_none());
        assert!(
            scalar_at("image: >\n  ubuntu\n  jammy\n", "image")
                .span
                .is_none()
        );
        assert!(
            scalar_at("image: |\n  ubuntu\n  x\n", "image")
                .span
                .is_none()
        );
    }

    #[test]
    fn anchored_and_one_line_block_scalars_have_a_span() {
        for (text, line) in [
            ("image: &busy reg/library/busybox:1.36  # anchor\n", 1),
            ("image: &busy 'reg/library/busybox:1.36'\n", 1),
            ("image: !!str &busy reg/library/busybox:1.36\n", 1),
            ("image: >-\n  reg/library/busybox:1.36\n", 2),
            ("image: > # folded\n\n  reg/library/busybox:1.36\nx: 1\n", 3),
            ("image: |\r\n  reg/library/busybox:1.36\r\n", 2),
        ] {
            let s = scalar_at(text, "image");
            let span = s.span.clone().unwrap_or_else(|| panic!("{text:?}"));
            assert_eq!(&text[span], "reg/library/busybox:1.36", "{text:?}");
            assert_eq!(s.line, line, "{text:?}");
        }
    }

    #[test]
    fn merge_keys_and_aliases_are_followed() {
        let text = "base: &b\n  image: app:1\nsvc:\n  <<: *b\n";
        let docs = parse(Path::new("t.yaml"), text).unwrap();
        let image = docs[0].get("svc").and_then(|s| s.get("image")).unwrap();
        assert_eq!(image.as_str(), Some("app:1"));
    }

    #[test]
    fn a_syntax_error_has_a_line() {
        let err = parse(Path::new("t.yaml"), "a: 1\nb: [1, 2\nc: 3\n").unwrap_err();
        assert!(
            matches!(err, SourceError::Yaml { line: 3 | 4, .. }),
            "{err:?}"
        );
    }
}
