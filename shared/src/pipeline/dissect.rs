//! Dissect: splits a text by the literal delimiters of a tokenizer, as Filebeat's `dissect`
//! does, without regular expressions: `%{source.ip} - %{user.name} [%{ts}] "%{verb} ...`.
//!
//! Keys: `%{name}` captures, `%{?name}` and `%{}` skip, `%{+name}` appends to `name` (with a
//! space), `%{name->}` also skips repeats of the delimiter that follows (padding).

use std::borrow::Cow;
use std::ops::Range;

use memchr::memmem::Finder;

use super::fields::{below, path_order};

/// A parsed tokenizer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tokenizer {
    /// Literal text before the first key.
    prefix: String,
    /// Each key and the literal that follows it (empty after the last key: the rest).
    keys: Vec<(Key, Delimiter)>,
    /// The names captured, in the order of the pairs [`Tokenizer::dissect`] gives.
    names: Vec<String>,
    /// Whether that is path order, no name being below another.
    in_path_order: bool,
}

/// A literal between keys, with its searcher built once (building one per search was a
/// tenth of the time of dissecting a line).
#[derive(Debug, Clone)]
struct Delimiter {
    text: String,
    finder: Finder<'static>,
}

impl Delimiter {
    fn new(text: &str) -> Delimiter {
        Delimiter {
            text: text.to_string(),
            finder: Finder::new(text).into_owned(),
        }
    }

    /// Where it first is in `haystack`.
    fn find(&self, haystack: &str) -> Option<usize> {
        self.finder.find(haystack.as_bytes())
    }
}

impl PartialEq for Delimiter {
    fn eq(&self, other: &Delimiter) -> bool {
        self.text == other.text
    }
}

impl Eq for Delimiter {}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Key {
    name: String,
    skip: bool,
    append: bool,
    padded: bool,
    /// Where its name is in `names`.
    slot: usize,
    /// Whether it appends to a value an earlier key captured.
    appends: bool,
}

impl Tokenizer {
    /// Parses `pattern`; the error says what is wrong with it.
    pub fn parse(pattern: &str) -> Result<Tokenizer, String> {
        let mut prefix = String::new();
        let mut keys: Vec<(Key, Delimiter)> = Vec::new();
        let mut rest = pattern;
        while let Some(start) = rest.find("%{") {
            let literal = &rest[..start];
            match keys.last_mut() {
                None => prefix = literal.to_string(),
                Some((_, after)) => {
                    if literal.is_empty() {
                        return Err(format!(
                            "two keys without a delimiter between them at byte {}",
                            pattern.len() - rest.len()
                        ));
                    }
                    *after = Delimiter::new(literal);
                }
            }
            let body_start = start + 2;
            let Some(len) = rest[body_start..].find('}') else {
                return Err(format!(
                    "unclosed %{{ at byte {}",
                    pattern.len() - rest.len() + start
                ));
            };
            let mut name = &rest[body_start..body_start + len];
            let padded = name.ends_with("->");
            if padded {
                name = &name[..name.len() - 2];
            }
            let (skip, append) = match name.chars().next() {
                None => (true, false),
                Some('?') => (true, false),
                Some('+') => (false, true),
                Some('&' | '*') => {
                    return Err(format!("%{{{name}}}: reference keys are not supported"))
                }
                Some(_) => (false, false),
            };
            let name = name.trim_start_matches(['?', '+']).to_string();
            if !skip && name.is_empty() {
                return Err("a key without a name".into());
            }
            keys.push((
                Key {
                    name,
                    skip,
                    append,
                    padded,
                    slot: 0,
                    appends: false,
                },
                Delimiter::new(""),
            ));
            rest = &rest[body_start + len + 1..];
        }
        match keys.last_mut() {
            None => return Err("no %{key} in the tokenizer".into()),
            Some((_, after)) => *after = Delimiter::new(rest),
        }
        // The pairs come in path order when no name is below another, for the document to
        // merge them in one pass; else in the order the names appear, the order their puts
        // must keep.
        let mut names: Vec<String> = Vec::new();
        for (key, _) in &mut keys {
            key.appends = key.append && names.contains(&key.name);
            if !key.skip && !names.contains(&key.name) {
                names.push(key.name.clone());
            }
        }
        let mut sorted = names.clone();
        sorted.sort_by(|a, b| path_order(a, b));
        let in_path_order = sorted.windows(2).all(|w| !below(&w[1], &w[0]));
        if in_path_order {
            names = sorted;
        }
        for (key, _) in &mut keys {
            key.slot = names.iter().position(|n| *n == key.name).unwrap_or(0);
        }
        Ok(Tokenizer {
            prefix,
            keys,
            names,
            in_path_order,
        })
    }

    /// The names [`Tokenizer::dissect`] gives a pair for, in the order it gives them.
    pub(super) fn names(&self) -> &[String] {
        &self.names
    }

    /// Whether [`Tokenizer::dissect`] gives its pairs in path order, no name below another.
    pub fn in_path_order(&self) -> bool {
        self.in_path_order
    }

    /// Whether a key appends to a value an earlier key captured: its values are then not
    /// all pieces of the text ([`Tokenizer::spans`] cannot give them).
    pub(super) fn appends(&self) -> bool {
        self.keys.iter().any(|(key, _)| key.appends)
    }

    /// The captured (name, value) pairs of `text`, a pair per name: in path order if
    /// [`Tokenizer::in_path_order`], else in the order the names first appear. The values
    /// are borrowed from the text (but those appended to). An error names the delimiter
    /// that was not found.
    pub fn dissect<'t>(&self, text: &'t str) -> Result<Vec<(&str, Cow<'t, str>)>, String> {
        let mut out: Vec<(&str, Cow<'t, str>)> = self
            .names
            .iter()
            .map(|name| (name.as_str(), Cow::Borrowed("")))
            .collect();
        self.cut(text, |key, value| {
            let captured = &mut out[key.slot].1;
            let value = &text[value];
            if key.appends {
                let v = captured.to_mut();
                v.push(' ');
                v.push_str(value);
            } else {
                *captured = Cow::Borrowed(value);
            }
        })?;
        Ok(out)
    }

    /// Where in `text` each name's value is, a range per name after those `spans` has, in
    /// the order of [`Tokenizer::dissect`]'s pairs; `false` if the text does not dissect.
    /// Only for a tokenizer that [`Tokenizer::appends`] not.
    pub(super) fn spans(&self, text: &str, spans: &mut Vec<Range<usize>>) -> bool {
        debug_assert!(!self.appends());
        let first = spans.len();
        spans.resize(first + self.names.len(), 0..0);
        self.cut(text, |key, value| spans[first + key.slot] = value)
            .is_ok()
    }

    /// Cuts `text`, giving each key that is not skipped the range of its value in it.
    fn cut(&self, text: &str, mut put: impl FnMut(&Key, Range<usize>)) -> Result<(), String> {
        // The prefix is compared only if there is one: glibc's compare of nothing, a masked
        // load, took 5% of the time of rendering a dissected line.
        let mut at = 0;
        if !self.prefix.is_empty() {
            if !text.starts_with(self.prefix.as_str()) {
                return Err(format!("the text does not start with {:?}", self.prefix));
            }
            at = self.prefix.len();
        }
        for (i, (key, delimiter)) in self.keys.iter().enumerate() {
            let last = i + 1 == self.keys.len();
            let literal = delimiter.text.as_str();
            let value = if literal.is_empty() {
                std::mem::replace(&mut at, text.len())..text.len()
            } else {
                let Some(found) = delimiter.find(&text[at..]) else {
                    return Err(format!("delimiter {literal:?} not found"));
                };
                let value = at..at + found;
                at = value.end + literal.len();
                if key.padded {
                    while text[at..].starts_with(literal) {
                        at += literal.len();
                    }
                }
                value
            };
            if last && !literal.is_empty() && at < text.len() {
                return Err(format!(
                    "text left after the last delimiter: {:.40?}",
                    &text[at..]
                ));
            }
            if !key.skip {
                put(key, value);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NGINX: &str = r#"%{source.ip} - %{user.name} [%{ts}] "%{http.request.method} %{url.original} %{?proto}" %{http.response.status_code} %{http.response.body.bytes}"#;

    #[test]
    fn nginx_line() {
        let t = Tokenizer::parse(NGINX).unwrap();
        let line = r#"203.0.113.9 - alice [28/Nov/2026:10:00:01 +0100] "GET /api/orders?id=7 HTTP/1.1" 200 1534"#;
        let got = t.dissect(line).unwrap();
        // In path order.
        assert!(t.in_path_order());
        let want = [
            ("http.request.method", "GET"),
            ("http.response.body.bytes", "1534"),
            ("http.response.status_code", "200"),
            ("source.ip", "203.0.113.9"),
            ("ts", "28/Nov/2026:10:00:01 +0100"),
            ("url.original", "/api/orders?id=7"),
            ("user.name", "alice"),
        ];
        let want: Vec<(&str, Cow<str>)> = want.iter().map(|(k, v)| (*k, (*v).into())).collect();
        assert_eq!(got, want);
        assert_eq!(
            t.dissect("not an access log").unwrap_err(),
            "delimiter \" - \" not found"
        );
    }

    #[test]
    fn padding_append_and_errors() {
        let t = Tokenizer::parse("%{a->} %{+a} %{b}").unwrap();
        assert_eq!(
            t.dissect("x    y z").unwrap(),
            [("a", Cow::Owned("x y".into())), ("b", Cow::Borrowed("z"))]
        );
        // A name below another: in the order they appear, the order their puts must keep.
        let t = Tokenizer::parse("%{b} %{a.x} %{?skip} %{a} %{b}").unwrap();
        assert!(!t.in_path_order());
        assert_eq!(
            t.dissect("1 2 3 4 5").unwrap(),
            [
                ("b", Cow::Borrowed("5")),
                ("a.x", "2".into()),
                ("a", "4".into())
            ]
        );
        assert_eq!(
            Tokenizer::parse("%{a}%{b}").unwrap_err(),
            "two keys without a delimiter between them at byte 4"
        );
        assert_eq!(
            Tokenizer::parse("x %{a").unwrap_err(),
            "unclosed %{ at byte 2"
        );
        assert_eq!(
            Tokenizer::parse("plain").unwrap_err(),
            "no %{key} in the tokenizer"
        );
    }
}
