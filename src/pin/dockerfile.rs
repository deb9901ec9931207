//! Image references in a Dockerfile: `FROM`, `COPY --from=` and `RUN --mount=...,from=`.
//!
//! The file is read the way BuildKit reads it: parser directives at the very top (`# escape=`
//! changes the continuation character), a BOM and CRLF line endings, continuation lines with
//! comments between them, and heredoc bodies, whose lines are not instructions. `ARG`s declared
//! before the first `FROM` are substituted; a reference that is exactly one such `ARG` is
//! rewritten where the `ARG`'s default is written. Stage names, `scratch` and stage indexes
//! are not images.

use std::collections::{HashMap, HashSet};
use std::ops::Range;
use std::path::Path;

use super::vars::{self, Expanded};
use super::{Found, Image, SourceError, parse_reference};

/// Find the image references of the Dockerfile `text`, read from `path`.
pub fn scan(path: &Path, text: &str) -> Result<Vec<Found>, SourceError> {
    let lines = physical_lines(text);
    let (escape, first) = directives(&lines);
    let mut instructions = Vec::new();
    let mut next = first;
    while next < lines.len() {
        let Some(instruction) = logical_line(path, &lines, &mut next, escape)? else {
            continue;
        };
        skip_heredocs(&instruction, &lines, &mut next);
        instructions.push(instruction);
    }

    // BuildKit lets `COPY --from` and `RUN --mount` name a stage declared further down.
    let mut state = State {
        all_stages: instructions.iter().filter_map(stage_name).collect(),
        ..State::default()
    };
    let mut found = Vec::new();
    for instruction in &instructions {
        state.apply(path, instruction, &mut found)?;
    }
    Ok(found)
}

/// The lowercase name of the stage a `FROM ... AS name` instruction starts.
fn stage_name(instruction: &Instruction) -> Option<String> {
    let words = instruction.words();
    let (_, keyword) = words.first()?;
    if !keyword.eq_ignore_ascii_case("from") {
        return None;
    }
    let mut rest = words[1..]
        .iter()
        .skip_while(|(_, w)| w.starts_with("--"))
        .skip(1);
    match (rest.next(), rest.next()) {
        (Some((_, as_word)), Some((_, name))) if as_word.eq_ignore_ascii_case("as") => {
            Some(name.to_ascii_lowercase())
        }
        _ => None,
    }
}

/// One line of the file: its start offset and its text without the line ending.
struct Line<'a> {
    start: usize,
    text: &'a str,
}

fn physical_lines(text: &str) -> Vec<Line<'_>> {
    let bom = if text.starts_with('\u{feff}') { 3 } else { 0 };
    let mut lines = Vec::new();
    let mut start = bom;
    for piece in text[bom..].split_inclusive('\n') {
        let body = piece.strip_suffix('\n').unwrap_or(piece);
        let body = body.strip_suffix('\r').unwrap_or(body);
        lines.push(Line { start, text: body });
        start += piece.len();
    }
    lines
}

/// The escape character set by a `# escape=` directive, and the index of the first line after
/// the directives.
fn directives(lines: &[Line]) -> (char, usize) {
    let mut escape = '\\';
    for (i, line) in lines.iter().enumerate() {
        let Some((key, value)) = directive(line.text) else {
            return (escape, i);
        };
        if key.eq_ignore_ascii_case("escape") && matches!(value, "\\" | "`") {
            escape = value.chars().next().unwrap_or('\\');
        }
    }
    (escape, lines.len())
}

/// `# key=value`, the form of a parser directive.
fn directive(line: &str) -> Option<(&str, &str)> {
    let (key, value) = line.trim().strip_prefix('#')?.split_once('=')?;
    let key = key.trim();
    let is_word = !key.is_empty() && key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    is_word.then(|| (key, value.trim()))
}

/// An instruction with its continuation lines joined, and the file offset of each byte.
struct Instruction {
    text: String,
    offsets: Vec<usize>,
    /// Where in `text` each physical line starts, and that line's 1-based number.
    lines: Vec<(usize, usize)>,
    line: usize,
}

impl Instruction {
    fn push(&mut self, line: &Line, number: usize, len: usize) {
        self.lines.push((self.text.len(), number));
        self.text.push_str(&line.text[..len]);
        self.offsets.extend(line.start..line.start + len);
    }

    /// The 1-based file line of byte `at` of `text`.
    fn line_of(&self, at: usize) -> usize {
        let i = self.lines.partition_point(|&(start, _)| start <= at);
        self.lines[i.saturating_sub(1)].1
    }

    /// The whitespace-separated words after the keyword, with their ranges in `text`.
    fn words(&self) -> Vec<(Range<usize>, &str)> {
        let mut words = Vec::new();
        let mut start = None;
        for (i, c) in self.text.char_indices().chain([(self.text.len(), ' ')]) {
            match (c.is_whitespace(), start) {
                (true, Some(s)) => {
                    words.push((s..i, &self.text[s..i]));
                    start = None;
                }
                (false, None) => start = Some(i),
                _ => {}
            }
        }
        words
    }

    /// The file byte range of `range` of `text`.
    fn file_span(&self, range: &Range<usize>) -> Range<usize> {
        self.offsets[range.start]..self.offsets[range.end - 1] + 1
    }
}

/// Read the instruction that starts at line `*next`, or `None` for a blank or comment line.
fn logical_line(
    path: &Path,
    lines: &[Line],
    next: &mut usize,
    escape: char,
) -> Result<Option<Instruction>, SourceError> {
    let first = *next;
    *next += 1;
    let trimmed = lines[first].text.trim_start();
    if trimmed.is_empty() || trimmed.starts_with('#') {
        return Ok(None);
    }
    let mut instruction = Instruction {
        text: String::new(),
        offsets: Vec::new(),
        lines: Vec::new(),
        line: first + 1,
    };
    let mut current = first;
    loop {
        let line = &lines[current];
        let Some(len) = continued(line.text, escape) else {
            instruction.push(line, current + 1, line.text.len());
            return Ok(Some(instruction));
        };
        instruction.push(line, current + 1, len);

        // Comment and blank lines inside a continued instruction are dropped.
        loop {
            if *next >= lines.len() {
                return Err(SourceError::UnterminatedContinuation {
                    path: path.to_owned(),
                    line: instruction.line,
                    last: current + 1,
                    escape,
                });
            }
            let t = lines[*next].text.trim_start();
            if !t.is_empty() && !t.starts_with('#') {
                break;
            }
            *next += 1;
        }
        current = *next;
        *next += 1;
    }
}

/// The length of `line` before its continuation character, if it ends with one.
fn continued(line: &str, escape: char) -> Option<usize> {
    let body = line.trim_end_matches([' ', '\t']).strip_suffix(escape)?;
    Some(body.len())
}

/// Skip the bodies of `<<EOF` heredocs the instruction opens.
fn skip_heredocs(instruction: &Instruction, lines: &[Line], next: &mut usize) {
    for (_, word) in instruction.words() {
        let Some(marker) = word.strip_prefix("<<") else {
            continue;
        };
        let (strip_tabs, marker) = match marker.strip_prefix('-') {
            Some(m) => (true, m),
            None => (false, marker),
        };
        let delimiter = marker.trim_matches(['"', '\'']);
        if delimiter.is_empty()
            || !delimiter
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_')
        {
            continue;
        }
        while *next < lines.len() {
            let text = lines[*next].text;
            let text = if strip_tabs {
                text.trim_start_matches('\t')
            } else {
                text
            };
            *next += 1;
            if text == delimiter {
                break;
            }
        }
    }
}

/// A global `ARG`: its value, and where that value is written when it is literal.
struct Arg {
    value: Option<String>,
    literal: Option<(Range<usize>, usize)>,
}

/// What the instructions so far have declared.
#[derive(Default)]
struct State {
    args: HashMap<String, Arg>,
    in_stage: bool,
    /// The stages declared before the current instruction, which a `FROM` can build on.
    stages: HashSet<String>,
    /// Every stage of the file, which `COPY --from` and `RUN --mount` can name.
    all_stages: HashSet<String>,
}

impl State {
    fn apply(
        &mut self,
        path: &Path,
        instruction: &Instruction,
        found: &mut Vec<Found>,
    ) -> Result<(), SourceError> {
        let words = instruction.words();
        let Some((_, keyword)) = words.first() else {
            return Ok(());
        };
        let args = &words[1..];
        match keyword.to_ascii_uppercase().as_str() {
            "ARG" if !self.in_stage => self.declare(instruction, args),
            "FROM" => self.from(path, instruction, args, found)?,
            "COPY" => {
                for (range, flag) in flags(args) {
                    if let Some(value) = flag.strip_prefix("--from=") {
                        let at = range.end - value.len()..range.end;
                        self.image(path, instruction, at, "COPY --from", found)?;
                    }
                }
            }
            "RUN" => {
                for (range, flag) in flags(args) {
                    if let Some(at) = mount_from(&range, flag) {
                        self.image(path, instruction, at, "RUN --mount", found)?;
                    }
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// `ARG NAME[=default] ...` before the first `FROM`.
    fn declare(&mut self, instruction: &Instruction, args: &[(Range<usize>, &str)]) {
        for (range, word) in args {
            let (name, value) = match word.split_once('=') {
                Some((name, value)) => (name, Some(value)),
                None => (*word, None),
            };
            let Some(value) = value else {
                self.args.insert(
                    name.to_owned(),
                    Arg {
                        value: None,
                        literal: None,
                    },
                );
                continue;
            };
            let unquoted = value.trim_matches(|c| c == '"' || c == '\'');
            let quote = value.len() - unquoted.len();
            let start = range.end - value.len() + quote / 2;
            let literal = (!unquoted.contains('$') && !unquoted.is_empty()).then(|| {
                let span = instruction.file_span(&(start..start + unquoted.len()));
                (span, instruction.line_of(start))
            });
            let value = match vars::expand(unquoted, &|n| self.value_of(n), false) {
                Expanded::Value(v) => Some(v),
                Expanded::Unset(_) => None,
            };
            self.args.insert(name.to_owned(), Arg { value, literal });
        }
    }

    fn value_of(&self, name: &str) -> Option<String> {
        self.args.get(name).and_then(|a| a.value.clone())
    }

    /// `FROM [--platform=...] image [AS name]`.
    fn from(
        &mut self,
        path: &Path,
        instruction: &Instruction,
        args: &[(Range<usize>, &str)],
        found: &mut Vec<Found>,
    ) -> Result<(), SourceError> {
        self.in_stage = true;
        let mut rest = args.iter().skip_while(|(_, w)| w.starts_with("--"));
        let Some((range, _)) = rest.next() else {
            return Ok(());
        };
        self.image(path, instruction, range.clone(), "FROM", found)?;

        // The stage's name counts from the next instruction on: `FROM ubuntu AS ubuntu` is fine.
        if let (Some((_, as_word)), Some((_, name))) = (rest.next(), rest.next())
            && as_word.eq_ignore_ascii_case("as")
        {
            self.stages.insert(name.to_ascii_lowercase());
        }
        Ok(())
    }

    /// Record the reference written at `range` of the instruction, unless it names a stage.
    fn image(
        &self,
        path: &Path,
        instruction: &Instruction,
        range: Range<usize>,
        context: &str,
        found: &mut Vec<Found>,
    ) -> Result<(), SourceError> {
        let written = &instruction.text[range.clone()];
        let lower = written.to_ascii_lowercase();
        let is_index = written.bytes().all(|b| b.is_ascii_digit());
        let stages = if context == "FROM" {
            &self.stages
        } else {
            &self.all_stages
        };
        if written.is_empty() || lower == "scratch" || is_index || stages.contains(&lower) {
            return Ok(());
        }
        let line = instruction.line_of(range.start);
        let image = self.resolve(path, instruction, &range, line)?;

        // A reference that is one `ARG` is written, and rewritten, where the `ARG` is.
        let line = match &image {
            Image::Literal { .. } if written.contains('$') => {
                self.arg_line(written).unwrap_or(line)
            }
            _ => line,
        };
        found.push(Found {
            file: path.to_owned(),
            line,
            context: context.to_owned(),
            written: written.to_owned(),
            image,
        });
        Ok(())
    }

    fn arg_line(&self, written: &str) -> Option<usize> {
        let name = vars::single_variable(written)?;
        self.args.get(name)?.literal.as_ref().map(|(_, line)| *line)
    }

    fn resolve(
        &self,
        path: &Path,
        instruction: &Instruction,
        range: &Range<usize>,
        line: usize,
    ) -> Result<Image, SourceError> {
        let written = &instruction.text[range.clone()];
        if !written.contains('$') {
            let reference = parse_reference(path, line, written)?;
            let span = instruction.file_span(range);
            return Ok(Image::Literal { reference, span });
        }
        let value = match vars::expand(written, &|n| self.value_of(n), false) {
            Expanded::Value(value) => value,
            Expanded::Unset(variable) => return Ok(Image::Unresolved { variable }),
        };
        let reference = parse_reference(path, line, &value)?;
        let literal = vars::single_variable(written)
            .and_then(|name| self.args.get(name))
            .and_then(|arg| arg.literal.clone());
        Ok(match literal {
            Some((span, _)) => Image::Literal { reference, span },
            None => Image::Substituted { reference },
        })
    }
}

/// The `--flag` words that precede an instruction's arguments.
fn flags<'a>(args: &'a [(Range<usize>, &'a str)]) -> impl Iterator<Item = (Range<usize>, &'a str)> {
    args.iter()
        .take_while(|(_, w)| w.starts_with("--"))
        .map(|(r, w)| (r.clone(), *w))
}

/// The range of the `from=` value in a `--mount=type=...,from=...` flag.
fn mount_from(range: &Range<usize>, flag: &str) -> Option<Range<usize>> {
    let options = flag.strip_prefix("--mount=")?;
    let mut offset = range.start + "--mount=".len();
    for option in options.split(',') {
        if let Some(value) = option.strip_prefix("from=") {
            let start = offset + "from=".len();
            return Some(start..start + value.len());
        }
        offset += option.len() + 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scan_ok(text: &str) -> Vec<Found> {
        scan(Path::new("Dockerfile"), text).unwrap()
    }

    /// `(line, reference or unresolved variable, bytes at the span)` of each reference.
    fn summary(text: &str) -> Vec<(usize, String, Option<String>)> {
        scan_ok(text)
            .into_iter()
            .map(|f| match f.image {
                Image::Literal { reference, span } => {
                    (f.line, reference.familiar(), Some(text[span].to_owned()))
                }
                Image::Substituted { reference } => (f.line, reference.familiar(), None),
                Image::Unresolved { variable } => (f.line, format!("${variable}"), None),
            })
            .collect()
    }

    fn entry(line: usize, reference: &str, span: Option<&str>) -> (usize, String, Option<String>) {
        (line, reference.to_owned(), span.map(str::to_owned))
    }

    #[test]
    fn multi_stage_builds_skip_stage_names_scratch_and_indexes() {
        let text = "FROM golang:1.22 AS build\nFROM build AS test\nFROM scratch\n\
                    COPY --from=build /a /a\nCOPY --from=0 /b /b\nCOPY --from=alpine:3.20 /c /c\n";
        assert_eq!(
            summary(text),
            vec![
                entry(1, "golang:1.22", Some("golang:1.22")),
                entry(6, "alpine:3.20", Some("alpine:3.20")),
            ]
        );
    }

    #[test]
    fn a_stage_named_like_its_base_is_still_an_image() {
        let text = "FROM ubuntu:22.04 AS ubuntu\nFROM ubuntu\n";
        assert_eq!(
            summary(text),
            vec![entry(1, "ubuntu:22.04", Some("ubuntu:22.04"))]
        );
    }

    #[test]
    fn a_stage_named_before_it_is_declared_is_not_an_image() {
        let text = "FROM alpine:3.20 AS first\n\
                    COPY --from=later /out /out\n\
                    RUN --mount=type=cache,from=Later,target=/c true\n\
                    FROM golang:1.22 AS later\n";
        assert_eq!(
            summary(text),
            vec![
                entry(1, "alpine:3.20", Some("alpine:3.20")),
                entry(4, "golang:1.22", Some("golang:1.22")),
            ]
        );
    }

    #[test]
    fn flags_and_mount_sources_are_read() {
        let text = "FROM --platform=$BUILDPLATFORM debian:12 AS b\n\
                    RUN --mount=type=bind,from=busybox:1.36,target=/x --network=none true\n";
        assert_eq!(
            summary(text),
            vec![
                entry(1, "debian:12", Some("debian:12")),
                entry(2, "busybox:1.36", Some("busybox:1.36")),
            ]
        );
    }

    #[test]
    fn global_args_are_substituted_and_rewritten_where_declared() {
        let text = "ARG V=3.12\nARG BASE=\"python:3.12\"\nARG MISSING\n\
                    FROM ${BASE}\nFROM python:${V:-3.11}-slim\nFROM $MISSING/app:1\n";
        assert_eq!(
            summary(text),
            vec![
                entry(2, "python:3.12", Some("python:3.12")),
                entry(5, "python:3.12-slim", None),
                entry(6, "$MISSING", None),
            ]
        );
    }

    #[test]
    fn args_declared_inside_a_stage_do_not_reach_from() {
        let text = "FROM alpine:3.20\nARG LATE=busybox:1\nFROM ${LATE}\n";
        assert_eq!(summary(text)[1], entry(3, "$LATE", None));
    }

    #[test]
    fn continuations_with_comments_keep_file_lines() {
        let text = "FROM \\\n# a comment\n\n  ubuntu:22.04 \\\n  AS base\nRUN true\n";
        assert_eq!(
            summary(text),
            vec![entry(4, "ubuntu:22.04", Some("ubuntu:22.04"))]
        );
    }

    #[test]
    fn bom_crlf_and_the_escape_directive() {
        let text = "\u{feff}# escape=`\r\n\r\nFROM mcr.microsoft.com/windows/nanoserver:ltsc2022 `\r\n  AS a\r\nRUN dir C:\\\r\nFROM alpine:3.20\r\n";
        assert_eq!(
            summary(text),
            vec![
                entry(
                    3,
                    "mcr.microsoft.com/windows/nanoserver:ltsc2022",
                    Some("mcr.microsoft.com/windows/nanoserver:ltsc2022")
                ),
                entry(6, "alpine:3.20", Some("alpine:3.20")),
            ]
        );
    }

    #[test]
    fn a_directive_after_a_comment_is_only_a_comment() {
        // `escape` is not applied, so the backtick is not a continuation and `AS a` stays apart.
        let text = "# hello\n# escape=`\nFROM alpine:3.20 `\n";
        assert_eq!(summary(text).len(), 1);
    }

    #[test]
    fn heredoc_bodies_are_not_instructions() {
        let text = "FROM alpine:3.20\nRUN <<EOF\nFROM fake:1\nEOF\nCOPY <<-'X' /a\n\tFROM fake:2\n\tX\nFROM debian:12\n";
        let images: Vec<String> = summary(text).into_iter().map(|e| e.1).collect();
        assert_eq!(images, ["alpine:3.20", "debian:12"]);
    }

    #[test]
    fn unterminated_continuation_is_an_error_with_both_lines() {
        let err = scan(
            Path::new("Dockerfile"),
            "FROM alpine:3.20\nRUN apk add \\\n  curl \\\n",
        )
        .unwrap_err();
        assert!(
            matches!(
                err,
                SourceError::UnterminatedContinuation {
                    line: 2,
                    last: 3,
                    ..
                }
            ),
            "{err:?}"
        );
        assert!(err.to_string().contains("line 3"), "{err}");
    }

    #[test]
    fn an_invalid_reference_names_its_line() {
        let err = scan(Path::new("Dockerfile"), "\nFROM Ubuntu:22.04\n").unwrap_err();
        assert!(
            matches!(err, SourceError::InvalidReference { line: 2, .. }),
            "{err:?}"
        );
    }

    #[test]
    fn pinned_references_keep_their_digest() {
        let digest = format!("sha256:{}", "a".repeat(64));
        let text = format!("FROM python:3.12@{digest}\n");
        let found = scan_ok(&text);
        assert_eq!(
            found[0].reference().unwrap().digest().unwrap().to_string(),
            digest
        );
    }
}
