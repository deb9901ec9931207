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
    /// The bytes of the file that are exactly `value`, when there are such bytes: a quoted or
    /// plain scalar on one line without escapes.
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
    let content = match style {
        ScalarStyle::Plain => Some(start),
        ScalarStyle::SingleQuoted | ScalarStyle::DoubleQuoted => Some(start + 1),
        ScalarStyle::Literal | ScalarStyle::Folded => None,
    };
    let span = content
        .map(|at| at..at + value.len())
        .filter(|range| !value.contains('\n') && text.get(range.clone()) == Some(value));
    Scalar {
        value: value.to_owned(),
        plain: style == ScalarStyle::Plain,
        line: span
            .as_ref()
            .map_or(span_line(text, start), |r| span_line(text, r.start)),
        span,
    }
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
    fn escaped_or_folded_values_have_no_span() {
        assert!(scalar_at("image: \"ubun\\x74u\"\n", "image").span.is_none());
        assert!(scalar_at("image: >\n  ubuntu\n", "image").span.is_none());
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
