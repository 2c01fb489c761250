//! Dotted field names over a JSON document: `http.response.status_code` is the key
//! `status_code` of the object `response` of the object `http`. Setting a field creates the
//! objects on its way (replacing a non-object in the way).
//!
//! [`Fields`] is a document as the processors change it: a flat list of leaves by dotted
//! path, written out as nested JSON, until an operation needs objects (a JSON object as a
//! value, a whole object read or removed, JSON decoded into the top level); from then on a
//! tree of [`Map`]s. A tree per document, built, changed key by key in its B-trees,
//! serialised and freed, took four fifths of the time of rendering a processed document.

use std::borrow::Cow;
use std::cmp::Ordering;

use serde_json::{Map, Value};

use crate::clock::Rfc3339;

/// A document's fields.
#[derive(Debug, Clone)]
pub struct Fields<'a>(Repr<'a>);

#[derive(Debug, Clone)]
enum Repr<'a> {
    /// Leaves by dotted path, in [`path_order`] (the order they are written in); no path is
    /// the path of another's object (no leaf is in the way of another) and no leaf is an
    /// object.
    Flat(Vec<(Cow<'a, str>, Leaf<'a>)>),
    /// Objects, once an operation needed them.
    Tree(Map<String, Value>),
}

/// The value of a flat field: text and times of the record are made `Value`s only when a
/// processor touches them, so that a document nobody changes is written without copies.
#[derive(Debug, Clone)]
pub enum Leaf<'a> {
    /// A string, often borrowed from the record.
    Text(Cow<'a, str>),
    /// A time, written as RFC 3339.
    Time(Rfc3339),
    /// Any other value but an object.
    Value(Value),
}

impl Leaf<'_> {
    fn into_value(self) -> Value {
        match self {
            Leaf::Text(s) => Value::String(s.into_owned()),
            Leaf::Time(t) => Value::String(t.as_str().to_string()),
            Leaf::Value(v) => v,
        }
    }

    /// Made a `Value` in place, for a processor to read or change.
    fn value_mut(&mut self) -> &mut Value {
        if !matches!(self, Leaf::Value(_)) {
            let leaf = std::mem::replace(self, Leaf::Value(Value::Null));
            *self = Leaf::Value(leaf.into_value());
        }
        match self {
            Leaf::Value(v) => v,
            // Made a `Value` just above.
            Leaf::Text(_) | Leaf::Time(_) => unreachable!(),
        }
    }

    /// Its text ([`text`]), without making a `Value` of it.
    pub(super) fn text(&self) -> Option<Cow<'_, str>> {
        match self {
            Leaf::Text(s) => Some(Cow::Borrowed(s)),
            Leaf::Time(t) => Some(Cow::Borrowed(t.as_str())),
            Leaf::Value(v) => text(v),
        }
    }

    /// Writes it as a JSON value.
    pub(super) fn write_json(&self, out: &mut Vec<u8>) {
        match self {
            Leaf::Text(s) => write_str(out, s),
            Leaf::Value(Value::String(s)) => write_str(out, s),
            // RFC 3339 has nothing to escape; its bytes need no UTF-8 check.
            Leaf::Time(t) => write_plain(out, t.as_bytes()),
            Leaf::Value(v) => write_value(out, v),
        }
    }
}

/// Writes `v` as serde_json writes it; an integer (a converted one) with itoa, as serde_json
/// does, without its serializer (half the cost of converting one). Not inlined: in
/// [`Leaf::write_json`] it made the text leaves' code slower.
#[inline(never)]
fn write_value(out: &mut Vec<u8>, v: &Value) {
    match v.as_i64() {
        Some(n) => out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes()),
        // Writing into a `Vec` cannot fail.
        None => drop(serde_json::to_writer(out, v)),
    }
}

/// Writes `s` as a JSON string, escaped as serde_json escapes it (unit-tested), with SIMD:
/// serde_json's byte-by-byte loop was a fifth of the time of rendering a document. A short
/// string with nothing to escape (a key, a number's text) is copied: cheaper than setting up
/// the SIMD loop.
pub fn write_str(out: &mut Vec<u8>, s: &str) {
    if s.len() <= 16 && !s.bytes().any(|b| ESCAPED[usize::from(b)]) {
        write_plain(out, s.as_bytes());
    } else {
        json_escape_simd::escape_into(s, out);
    }
}

/// The bytes JSON escapes: control characters, `"` and `\`. A table: a short string's
/// bytes compared with the three ranges one by one took most of [`write_str`]'s time.
static ESCAPED: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        table[b] = b < 0x20 || b == b'"' as usize || b == b'\\' as usize;
        b += 1;
    }
    table
};

/// Writes `s`, which has nothing to escape (an id, a time), as a JSON string.
pub fn write_plain(out: &mut Vec<u8>, s: &[u8]) {
    out.reserve(s.len() + 2);
    out.push(b'"');
    out.extend_from_slice(s);
    out.push(b'"');
}

/// Where `path` is among flat leaves, and where it would go.
enum Found {
    /// The leaf at this index.
    Leaf(usize),
    /// Leaves below it, from this index on: it is an object.
    Object(usize),
    /// A leaf on its way, just before this index: it cannot be.
    Blocked(usize),
    Nothing(usize),
}

/// A field found: a flat leaf, or a value in the tree.
enum Slot<'f, 'a> {
    Leaf(&'f mut Leaf<'a>),
    Value(&'f mut Value),
}

impl Default for Fields<'_> {
    fn default() -> Self {
        Fields(Repr::Flat(Vec::with_capacity(24)))
    }
}

impl From<Map<String, Value>> for Fields<'_> {
    fn from(map: Map<String, Value>) -> Self {
        Fields(Repr::Tree(map))
    }
}

impl<'a> Fields<'a> {
    /// Adds a leaf at `path`, which must come after every path there is in [`path_order`]
    /// and be new, with no leaf on its way (the base document's fields, in order).
    pub(crate) fn push(&mut self, path: &'a str, leaf: Leaf<'a>) {
        match &mut self.0 {
            Repr::Flat(leaves) => {
                debug_assert!(matches!(find(leaves, path), Found::Nothing(i) if i == leaves.len()));
                leaves.push((Cow::Borrowed(path), leaf));
            }
            Repr::Tree(map) => set(map, path, leaf.into_value()),
        }
    }

    /// The value at `path`, if there is one.
    pub fn get(&mut self, path: &str) -> Option<&Value> {
        self.get_mut(path).map(|v| &*v)
    }

    /// The value at `path`, for changing it in place, if there is one.
    pub fn get_mut(&mut self, path: &str) -> Option<&mut Value> {
        match self.slot(path)? {
            Slot::Leaf(leaf) => Some(leaf.value_mut()),
            Slot::Value(value) => Some(value),
        }
    }

    /// The text of the field at `path` ([`text`]), without making a `Value` of it.
    pub fn text(&mut self, path: &str) -> Option<Cow<'_, str>> {
        match self.slot(path)? {
            Slot::Leaf(leaf) => leaf.text(),
            Slot::Value(value) => text(value),
        }
    }

    /// Replaces the field at `path` with what `f` makes of its text ([`text`]), looked up
    /// once and without making a `Value` of the text first. `None` if there is no field
    /// there, else whether it had text that `f` made something of.
    pub fn replace_text(
        &mut self,
        path: &str,
        f: impl FnOnce(&str) -> Option<Value>,
    ) -> Option<bool> {
        Some(match self.slot(path)? {
            Slot::Leaf(leaf) => {
                let made = leaf.text().and_then(|t| f(&t));
                made.map(|v| *leaf = Leaf::Value(v)).is_some()
            }
            Slot::Value(value) => {
                let made = text(value).and_then(|t| f(&t));
                made.map(|v| *value = v).is_some()
            }
        })
    }

    /// Where the field at `path` is, if there is one.
    fn slot(&mut self, path: &str) -> Option<Slot<'_, 'a>> {
        let found = match &self.0 {
            Repr::Flat(leaves) => find(leaves, path),
            Repr::Tree(_) => Found::Object(0),
        };
        match found {
            Found::Nothing(_) | Found::Blocked(_) => None,
            Found::Leaf(i) => match &mut self.0 {
                Repr::Flat(leaves) => Some(Slot::Leaf(&mut leaves[i].1)),
                Repr::Tree(_) => None, // found among flat leaves
            },
            Found::Object(_) => get_mut(self.tree(), path).map(Slot::Value),
        }
    }

    /// The text of the field at `path` ([`text`]) for as long as the record: borrowed from
    /// it where it is the record's own, else copied. What is cut from it can be leaves.
    pub fn text_to_keep(&mut self, path: &str) -> Option<Cow<'a, str>> {
        if let Repr::Flat(leaves) = &self.0 {
            if let Found::Leaf(i) = find(leaves, path) {
                if let Leaf::Text(Cow::Borrowed(s)) = leaves[i].1 {
                    return Some(Cow::Borrowed(s));
                }
            }
        }
        self.text(path).map(|t| Cow::Owned(t.into_owned()))
    }

    /// Sets `path` to `value`, replacing what was there and any non-object on its way.
    pub fn set(&mut self, path: Cow<'a, str>, value: Value) {
        self.put(path, Leaf::Value(value));
    }

    /// Sets `path` to `leaf`, as [`Fields::set`] does: text and times stay what they are
    /// until written.
    pub fn put(&mut self, path: Cow<'a, str>, leaf: Leaf<'a>) {
        match &mut self.0 {
            Repr::Flat(leaves) if !matches!(leaf, Leaf::Value(Value::Object(_))) => {
                match find(leaves, &path) {
                    Found::Leaf(i) => leaves[i].1 = leaf,
                    Found::Nothing(i) => leaves.insert(i, (path, leaf)),
                    // It takes the place of the leaf in its way, in the same order.
                    Found::Blocked(i) => leaves[i - 1] = (path, leaf),
                    Found::Object(i) => {
                        let end = i + leaves[i..]
                            .iter()
                            .take_while(|(p, _)| below(p, &path))
                            .count();
                        leaves.splice(i..end, [(path, leaf)]);
                    }
                }
            }
            _ => set(self.tree(), &path, leaf.into_value()),
        }
    }

    /// Sets each path of `texts` to its text, as [`Fields::put`] one after another would.
    ///
    /// If `in_path_order`, their paths are in path order, none below another: then the
    /// order of the puts does not matter, and among flat leaves none of which is in their
    /// way (the fields a dissect adds) they are merged in one pass, instead of a binary
    /// search and an insertion each that moves the leaves after it (5% of rendering a line
    /// with the nginx pipeline).
    pub fn put_texts(&mut self, mut texts: Vec<(&'a str, Cow<'a, str>)>, in_path_order: bool) {
        debug_assert!(
            !in_path_order
                || texts.windows(2).all(|w| {
                    path_order(w[0].0, w[1].0) == Ordering::Less && !below(w[1].0, w[0].0)
                })
        );
        match &mut self.0 {
            Repr::Flat(leaves) if in_path_order && fit_between(leaves, &texts) => {
                // From the end: each leaf moves once, to where it ends up.
                let mut old = leaves.len();
                let mut end = old + texts.len();
                leaves.resize_with(end, || (Cow::Borrowed(""), Leaf::Value(Value::Null)));
                while let Some((path, text)) = texts.pop() {
                    while old > 0 && path_order(&leaves[old - 1].0, path) == Ordering::Greater {
                        old -= 1;
                        end -= 1;
                        leaves.swap(old, end);
                    }
                    end -= 1;
                    leaves[end] = (Cow::Borrowed(path), Leaf::Text(text));
                }
            }
            _ => {
                for (path, text) in texts {
                    self.put(path.into(), Leaf::Text(text));
                }
            }
        }
    }

    /// Removes `path` and returns what was there; an object left empty goes too.
    pub fn remove(&mut self, path: &str) -> Option<Value> {
        if let Repr::Flat(leaves) = &mut self.0 {
            match find(leaves, path) {
                Found::Nothing(_) | Found::Blocked(_) => return None,
                Found::Leaf(i) => return Some(leaves.remove(i).1.into_value()),
                Found::Object(_) => {}
            }
        }
        remove(self.tree(), path)
    }

    /// The leaves by dotted path in [`path_order`], unless the document is a tree.
    pub(super) fn flat(&self) -> Option<&[(Cow<'a, str>, Leaf<'a>)]> {
        match &self.0 {
            Repr::Flat(leaves) => Some(leaves),
            Repr::Tree(_) => None,
        }
    }

    /// The document as a tree of objects (made one if it was flat), for changes at its top
    /// level by key rather than by path.
    pub fn tree(&mut self) -> &mut Map<String, Value> {
        if let Repr::Flat(leaves) = &mut self.0 {
            let mut map = Map::new();
            for (path, leaf) in leaves.drain(..) {
                set(&mut map, &path, leaf.into_value());
            }
            self.0 = Repr::Tree(map);
        }
        match &mut self.0 {
            Repr::Tree(map) => map,
            // Made a tree just above.
            Repr::Flat(_) => unreachable!(),
        }
    }

    /// The document as a `Value`.
    pub fn into_value(mut self) -> Value {
        Value::Object(std::mem::take(self.tree()))
    }

    /// Writes the document as JSON, its keys in name order as a tree of `Map`s writes them
    /// (so both give the same bytes).
    pub fn write_json(&mut self, out: &mut Vec<u8>) {
        let leaves = match &mut self.0 {
            Repr::Tree(map) => {
                // Writing into a `Vec` cannot fail.
                let _ = serde_json::to_writer(out, map);
                return;
            }
            Repr::Flat(leaves) => leaves,
        };
        let mut json = Nested::new(out);
        for (path, leaf) in leaves.iter() {
            json.leaf(path, leaf);
        }
        json.end();
    }
}

/// Writes leaves given in path order (that of nested objects with sorted keys) as one JSON
/// object of nested objects.
///
/// What goes before a leaf's value (closing braces, a comma, keys, opening braces) depends
/// only on the paths so far, and a log's documents mostly have the same paths: it is copied
/// from the document before (a `Shape`, one per thread) for as long as the paths are its.
/// Working it out per leaf took a seventh of the time of rendering a processed document.
pub struct Nested<'o, 'p> {
    out: &'o mut Vec<u8>,
    /// The last leaf's path: the objects open are those on its way, as many as it has dots.
    last: &'p str,
    open: usize,
    /// Whether the innermost object open has no member yet.
    first: bool,
    /// The document before's, taken from the thread while this one is written.
    shape: Shape,
    /// How many leaves were written.
    written: usize,
    /// Whether their paths were the shape's first ones.
    same: bool,
}

/// The paths of a document, and what was written before each leaf's value.
#[derive(Default)]
struct Shape {
    /// The paths, one after another.
    paths: String,
    /// What was written before each value, one after another.
    before: Vec<u8>,
    leaves: Vec<Known>,
}

/// A leaf of a [`Shape`].
struct Known {
    /// Where its path ends in `paths`.
    path_end: usize,
    /// Where what was written before its value ends in `before`.
    before_end: usize,
    /// The objects open after it.
    open: usize,
}

impl Shape {
    const EMPTY: Shape = Shape {
        paths: String::new(),
        before: Vec::new(),
        leaves: Vec::new(),
    };

    /// Leaf `i`'s path and what was written before its value, if it has a leaf `i`.
    fn leaf(&self, i: usize) -> Option<(&str, &[u8], usize)> {
        let known = self.leaves.get(i)?;
        let (path_start, before_start) = match i.checked_sub(1) {
            Some(j) => (self.leaves[j].path_end, self.leaves[j].before_end),
            None => (0, 0),
        };
        Some((
            &self.paths[path_start..known.path_end],
            &self.before[before_start..known.before_end],
            known.open,
        ))
    }

    /// Forgets leaf `i` and those after it.
    fn truncate(&mut self, i: usize) {
        self.leaves.truncate(i);
        let (paths, before) = self
            .leaves
            .last()
            .map_or((0, 0), |k| (k.path_end, k.before_end));
        self.paths.truncate(paths);
        self.before.truncate(before);
    }

    /// Adds a leaf at the end.
    fn push(&mut self, path: &str, before: &[u8], open: usize) {
        self.paths.push_str(path);
        self.before.extend_from_slice(before);
        self.leaves.push(Known {
            path_end: self.paths.len(),
            before_end: self.before.len(),
            open,
        });
    }
}

thread_local! {
    /// The shape of the last document this thread wrote.
    static SHAPE: std::cell::Cell<Shape> = const { std::cell::Cell::new(Shape::EMPTY) };
}

impl<'o, 'p> Nested<'o, 'p> {
    /// Starts the object.
    pub fn new(out: &'o mut Vec<u8>) -> Self {
        out.push(b'{');
        Nested {
            out,
            last: "",
            open: 0,
            first: true,
            shape: SHAPE.take(),
            written: 0,
            same: true,
        }
    }

    /// Writes `leaf` at `path`, which comes after the last path in path order.
    pub fn leaf(&mut self, path: &'p str, leaf: &Leaf<'_>) {
        self.before(path);
        leaf.write_json(self.out);
    }

    /// Writes what goes before the value at `path`, which comes after the last path in path
    /// order.
    fn before(&mut self, path: &'p str) {
        if self.same {
            match self.shape.leaf(self.written) {
                Some((known, before, open)) if same_path(known, path) => {
                    self.out.extend_from_slice(before);
                    self.open = open;
                }
                _ => {
                    self.same = false;
                    self.shape.truncate(self.written);
                }
            }
        }
        if !self.same {
            let start = self.out.len();
            self.open_path(path);
            self.shape.push(path, &self.out[start..], self.open);
        }
        self.first = false;
        self.last = path;
        self.written += 1;
    }

    /// Writes what goes before the value at `path`: closes the objects of the last path that
    /// are not on its way, opens those on its way that are not open, and writes its key.
    fn open_path(&mut self, path: &str) {
        // The objects both paths share: the dots in their common beginning. Paths are short:
        // plain loops beat memchr's calls.
        let bytes = path.as_bytes();
        let same = &bytes[..same_start(bytes, self.last.as_bytes())];
        let mut depth = same.iter().filter(|&&b| b == b'.').count();
        let mut start = same
            .iter()
            .rposition(|&b| b == b'.')
            .map_or(0, |dot| dot + 1);
        for _ in depth..self.open {
            self.out.push(b'}');
            self.first = false;
        }
        while let Some(dot) = bytes[start..].iter().position(|&b| b == b'.') {
            self.key(&path[start..start + dot]);
            self.out.push(b'{');
            self.first = true;
            (depth, start) = (depth + 1, start + dot + 1);
        }
        self.key(&path[start..]);
        self.open = depth;
    }

    fn key(&mut self, key: &str) {
        if !self.first {
            self.out.push(b',');
        }
        write_str(self.out, key);
        self.out.push(b':');
    }

    /// Closes the objects still open, and the document.
    pub fn end(self) {
        for _ in 0..=self.open {
            self.out.push(b'}');
        }
    }
}

/// What goes around the values of a document whose leaves are at `paths` (in path order):
/// what is written before each value, and after the last.
pub(super) fn frame<'p>(paths: impl IntoIterator<Item = &'p str>) -> (Vec<Box<[u8]>>, Box<[u8]>) {
    let mut out = Vec::new();
    let mut json = Nested::new(&mut out);
    let (mut befores, mut start) = (Vec::new(), 0);
    for path in paths {
        json.before(path);
        befores.push(json.out[start..].into());
        start = json.out.len();
    }
    json.end();
    (befores, out[start..].into())
}

/// What goes around the values of documents whose leaves are at some of a fixed list of
/// paths, in its order (path order), worked out once for every pair of paths: what goes
/// before a value depends only on the path of the value before it. Rendering a plain
/// document spent a quarter of its time comparing its paths with the thread's last shape
/// in [`Nested`].
#[derive(Debug)]
pub struct Frames {
    /// How many paths.
    count: usize,
    /// What goes before the value at path `j` after one at path `i`, at `i * count + j`;
    /// before the first value, at `count * count + j`.
    before: Vec<Box<[u8]>>,
    /// What goes after the last value, at path `i` at `i`; after none at `count`.
    end: Vec<Box<[u8]>>,
}

impl Frames {
    /// The frames of documents with leaves at some of `paths`, which must be in path order.
    pub fn new(paths: &[&str]) -> Frames {
        debug_assert!(paths
            .windows(2)
            .all(|w| path_order(w[0], w[1]) == Ordering::Less));
        let count = paths.len();
        let mut before = vec![Box::default(); (count + 1) * count];
        let mut end = Vec::with_capacity(count + 1);
        for (i, &last) in paths.iter().enumerate() {
            let (mut first, after) = frame([last]);
            before[count * count + i] = first.swap_remove(0);
            end.push(after);
            for (j, &next) in paths.iter().enumerate().skip(i + 1) {
                before[i * count + j] = frame([last, next]).0.swap_remove(1);
            }
        }
        end.push(frame([]).1);
        Frames { count, before, end }
    }

    /// Starts a document written into `out`.
    pub fn writer<'f, 'o>(&'f self, out: &'o mut Vec<u8>) -> Framed<'f, 'o> {
        Framed {
            frames: self,
            out,
            last: self.count,
        }
    }
}

/// A document being written by its [`Frames`], a leaf at a time.
pub struct Framed<'f, 'o> {
    frames: &'f Frames,
    out: &'o mut Vec<u8>,
    /// The path of the last value written; `count` before the first.
    last: usize,
}

impl Framed<'_, '_> {
    /// Writes `leaf` at path `path` (an index into the paths of the frames), which comes
    /// after the last one written.
    pub fn leaf(&mut self, path: usize, leaf: &Leaf<'_>) {
        let frames = self.frames;
        debug_assert!(path < frames.count && (self.last == frames.count || self.last < path));
        self.out
            .extend_from_slice(&frames.before[self.last * frames.count + path]);
        leaf.write_json(self.out);
        self.last = path;
    }

    /// Closes the objects still open, and the document.
    pub fn end(self) {
        self.out.extend_from_slice(&self.frames.end[self.last]);
    }
}

impl Drop for Nested<'_, '_> {
    /// Gives the shape back to the thread, for its next document.
    fn drop(&mut self) {
        SHAPE.set(std::mem::take(&mut self.shape));
    }
}

/// Whether two paths are the same, compared 8 bytes at a time as `path_order` compares them
/// (a call to glibc's memcmp per leaf is what `same_start` spares).
pub(super) fn same_path(a: &str, b: &str) -> bool {
    a.len() == b.len() && same_start(a.as_bytes(), b.as_bytes()) == a.len()
}

/// Where `path` is among `leaves`.
fn find(leaves: &[(Cow<'_, str>, Leaf<'_>)], path: &str) -> Found {
    // In path order the leaves below a path come right after it, and a leaf on its way
    // (with nothing below it but `path`) right before it.
    match leaves.binary_search_by(|(p, _)| path_order(p, path)) {
        Ok(i) => Found::Leaf(i),
        Err(i) if leaves.get(i).is_some_and(|(p, _)| below(p, path)) => Found::Object(i),
        Err(i) if i > 0 && below(path, &leaves[i - 1].0) => Found::Blocked(i),
        Err(i) => Found::Nothing(i),
    }
}

/// Whether each path of `pairs` (in path order) would be a new leaf among `leaves`: no leaf
/// at its path, below it or in its way.
fn fit_between(leaves: &[(Cow<'_, str>, Leaf<'_>)], pairs: &[(&str, Cow<'_, str>)]) -> bool {
    let mut i = 0;
    pairs.iter().all(|&(path, _)| {
        while leaves
            .get(i)
            .is_some_and(|(p, _)| path_order(p, path) == Ordering::Less)
        {
            i += 1;
        }
        // It goes before leaf `i`: the first not before it.
        let at_or_above = leaves
            .get(i)
            .is_some_and(|(p, _)| p == path || below(p, path));
        let in_its_way = i > 0 && below(path, &leaves[i - 1].0);
        !at_or_above && !in_its_way
    })
}

/// Whether `path` is below the object `object` (`a.b` is below `a`).
pub(super) fn below(path: &str, object: &str) -> bool {
    path.len() > object.len() && path.as_bytes()[object.len()] == b'.' && path.starts_with(object)
}

/// The order of paths as nested objects with sorted keys write them: by their first key,
/// then their second, ... (`a.b` before `a-c`: the key `a` before `a-c`).
pub(super) fn path_order(a: &str, b: &str) -> Ordering {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let i = same_start(a, b);
    match (a.get(i), b.get(i)) {
        (Some(b'.'), Some(_)) => Ordering::Less,
        (Some(_), Some(b'.')) => Ordering::Greater,
        (Some(x), Some(y)) => x.cmp(y),
        _ => a.len().cmp(&b.len()),
    }
}

/// How many bytes `a` and `b` start with in common, compared 8 at a time: paths often share
/// their first keys (`http.request.` and `http.response.`).
fn same_start(a: &[u8], b: &[u8]) -> usize {
    let mut i = 0;
    for (x, y) in a.chunks_exact(8).zip(b.chunks_exact(8)) {
        let word = |c: &[u8]| c.try_into().map_or(0, u64::from_le_bytes);
        let diff = word(x) ^ word(y);
        if diff != 0 {
            // The lowest differing byte comes first in little-endian order.
            return i + diff.trailing_zeros() as usize / 8;
        }
        i += 8;
    }
    let n = a.len().min(b.len());
    while i < n && a[i] == b[i] {
        i += 1;
    }
    i
}

/// The value at `path`, for changing it in place, if there is one.
fn get_mut<'a>(doc: &'a mut Map<String, Value>, path: &str) -> Option<&'a mut Value> {
    // Asked first, then borrowed: returning a borrow taken on only one path does not pass
    // today's borrow checker.
    if doc.contains_key(path) {
        return doc.get_mut(path);
    }
    let (head, rest) = path.split_once('.')?;
    get_mut(doc.get_mut(head)?.as_object_mut()?, rest)
}

/// Sets `path` to `value`, creating objects on the way.
fn set(doc: &mut Map<String, Value>, path: &str, value: Value) {
    // Looked up before anything is inserted: a key is allocated only when it is new.
    let Some((head, rest)) = path.split_once('.') else {
        match doc.get_mut(path) {
            Some(slot) => *slot = value,
            None => {
                doc.insert(path.to_string(), value);
            }
        }
        return;
    };
    if let Some(slot) = doc.get_mut(head) {
        if !slot.is_object() {
            *slot = Value::Object(Map::new());
        }
        if let Value::Object(inner) = slot {
            set(inner, rest, value);
        }
        return;
    }
    let mut inner = Map::new();
    set(&mut inner, rest, value);
    doc.insert(head.to_string(), Value::Object(inner));
}

/// Removes `path` and returns what was there; an object left empty goes too.
fn remove(doc: &mut Map<String, Value>, path: &str) -> Option<Value> {
    if let Some(v) = doc.remove(path) {
        return Some(v);
    }
    let (head, rest) = path.split_once('.')?;
    let inner = doc.get_mut(head)?.as_object_mut()?;
    let removed = remove(inner, rest);
    if inner.is_empty() {
        doc.remove(head);
    }
    removed
}

/// The text of a field for matching: a string as it is, a number or boolean as JSON.
pub fn text(value: &Value) -> Option<std::borrow::Cow<'_, str>> {
    match value {
        Value::String(s) => Some(s.as_str().into()),
        Value::Number(_) | Value::Bool(_) => Some(value.to_string().into()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Runs `ops` on a flat document and on a tree, and checks that both give the same
    /// document and the same bytes; returns the document.
    fn both(ops: impl Fn(&mut Fields<'_>)) -> Value {
        let mut flat = Fields::default();
        let mut tree = Fields::from(Map::new());
        ops(&mut flat);
        ops(&mut tree);
        let (mut a, mut b) = (Vec::new(), Vec::new());
        flat.write_json(&mut a);
        tree.write_json(&mut b);
        assert_eq!(String::from_utf8(a).unwrap(), String::from_utf8(b).unwrap());
        let value = flat.into_value();
        assert_eq!(value, tree.into_value());
        value
    }

    #[test]
    fn dotted_paths_nest() {
        let doc = both(|d| {
            d.set("http.response.status_code".into(), json!(200));
            d.set("http.request.method".into(), json!("GET"));
            assert_eq!(d.get("http.request.method"), Some(&json!("GET")));
            assert_eq!(d.get("http.nothing"), None);
            // Beneath a leaf: nothing.
            assert_eq!(d.get("http.request.method.x"), None);
        });
        assert_eq!(
            doc,
            json!({"http": {"response": {"status_code": 200}, "request": {"method": "GET"}}})
        );
        let doc = both(|d| {
            d.set("http.response.status_code".into(), json!(200));
            d.set("http.request.method".into(), json!("GET"));
            assert_eq!(d.remove("http.request.method"), Some(json!("GET")));
            assert_eq!(d.remove("http.request.method"), None);
            *d.get_mut("http.response.status_code").unwrap() = json!(204);
            assert_eq!(d.get_mut("http.response.nothing"), None);
        });
        // `request` was left empty: it went too.
        assert_eq!(doc, json!({"http": {"response": {"status_code": 204}}}));
    }

    #[test]
    fn what_is_in_the_way_is_replaced() {
        // A leaf on the way of a path becomes an object; an object set to a value goes.
        let doc = both(|d| {
            d.set("a".into(), json!("x"));
            d.set("a.b.c".into(), json!(1));
            d.set("z.y".into(), json!(1));
            d.set("z.x".into(), json!(2));
            d.set("z".into(), json!([3]));
        });
        assert_eq!(doc, json!({"a": {"b": {"c": 1}}, "z": [3]}));
        // Objects as values, whole objects read and removed: the same as a tree.
        let doc = both(|d| {
            d.set("a.b".into(), json!(1));
            d.set("a.c".into(), json!(2));
            assert_eq!(d.get("a"), Some(&json!({"b": 1, "c": 2})));
            d.set("o".into(), json!({"k": {"l": true}}));
            d.set("o.k.m".into(), json!(null));
            assert_eq!(d.remove("a"), Some(json!({"b": 1, "c": 2})));
        });
        assert_eq!(doc, json!({"o": {"k": {"l": true, "m": null}}}));
    }

    #[test]
    fn written_in_the_order_of_a_tree() {
        // Keys sort per object: `a` (and its object) before `a-c` before `ab`, though `-`
        // sorts before `.` byte by byte.
        let doc = both(|d| {
            for (i, path) in ["ab", "a-c", "a.b-x", "a.b", "a.a.z", "@t", "q\"k.v"]
                .into_iter()
                .enumerate()
            {
                d.set(path.into(), json!(i));
            }
            d.set("s".into(), json!("tab\there \u{1} caf\u{e9} \"q\" \\"));
        });
        assert_eq!(doc["a"], json!({"a": {"z": 4}, "b": 3, "b-x": 2}));
        assert_eq!(doc["q\"k"]["v"], 6);
    }

    #[test]
    fn texts_in_path_order_put_as_one_after_another() {
        // Random documents and random texts in path order, none below another: merged or
        // put one by one, the same document, its leaves in path order.
        let pool = [
            "@timestamp",
            "a",
            "a.b",
            "a.b.c",
            "a.d",
            "a-c",
            "ab",
            "b",
            "http.request.method",
            "http.response.status_code",
            "m",
            "message",
            "z",
            "zz",
        ];
        let mut seed = 7u64;
        let mut pick = |n: usize| {
            seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            (seed >> 33) as usize % n
        };
        let (mut merged, mut put) = (0, 0);
        for _ in 0..3000 {
            let mut doc = Fields::default();
            for _ in 0..pick(8) {
                doc.set(pool[pick(pool.len())].into(), json!(pick(100)));
            }
            let mut texts: Vec<&str> = (0..pick(6)).map(|_| pool[pick(pool.len())]).collect();
            texts.sort_by(|a, b| path_order(a, b));
            texts.dedup_by(|b, a| b == a || below(b, a));
            let pairs: Vec<(&str, Cow<str>)> = texts
                .iter()
                .map(|&p| (p, Cow::Owned(format!("v-{p}"))))
                .collect();
            let mut one_by_one = doc.clone();
            for (path, text) in pairs.clone() {
                one_by_one.put(path.into(), Leaf::Text(text));
            }
            match &doc.0 {
                Repr::Flat(leaves) if fit_between(leaves, &pairs) => merged += 1,
                _ => put += 1,
            }
            doc.put_texts(pairs, true);
            if let Repr::Flat(leaves) = &doc.0 {
                assert!(leaves
                    .windows(2)
                    .all(|w| path_order(&w[0].0, &w[1].0).is_lt()));
            }
            let (mut a, mut b) = (Vec::new(), Vec::new());
            doc.write_json(&mut a);
            one_by_one.write_json(&mut b);
            assert_eq!(String::from_utf8(a).unwrap(), String::from_utf8(b).unwrap());
        }
        assert!(merged > 500 && put > 500, "merged {merged}, put {put}");
    }

    #[test]
    fn documents_of_other_shapes_one_after_another() {
        // What goes before a value is copied from the document before while the paths are
        // its: documents the same, different in the middle, shorter, longer, empty.
        let docs = [
            json!({"a": {"b": 1, "c": {"d": 2}}, "e": 3}),
            json!({"a": {"b": 4, "c": {"d": 5}}, "e": 6}),
            json!({"a": {"b": 1, "c": {"x": 2}}, "e": 3}),
            json!({"a": {"b": 1}}),
            json!({"a": {"b": 1, "c": {"x": 2}}, "e": 3, "f": {"g": 4}}),
            json!({"a": {"b": 1, "c": {"x": 2}}, "e": 3, "f": {"g": 4}}),
            json!({}),
            json!({"a": {"b": 1, "c": {"x": 2}}}),
        ];
        for want in docs {
            let leaves = leaves_of(&want, "");
            let doc = both(|d| {
                for (path, value) in &leaves {
                    d.set(path.clone().into(), value.clone());
                }
            });
            assert_eq!(doc, want);
        }
    }

    #[test]
    fn documents_written_by_frames() {
        // Every subset of the paths, written by the frames of all of them: the JSON of the
        // same leaves as a tree of objects.
        let paths = ["@t", "a.b", "a.c.d", "a.c.e", "a.f", "g", "h.i.j", "k"];
        let frames = Frames::new(&paths);
        for subset in 0..1_u32 << paths.len() {
            let mut out = Vec::new();
            let mut want = Fields::default();
            let mut json = frames.writer(&mut out);
            for (i, path) in paths.iter().enumerate() {
                if subset & 1 << i != 0 {
                    let leaf = Leaf::Value(json!(i));
                    json.leaf(i, &leaf);
                    want.set((*path).into(), json!(i));
                }
            }
            json.end();
            let want = serde_json::to_string(&want.into_value()).unwrap();
            assert_eq!(String::from_utf8(out).unwrap(), want, "{subset:b}");
        }
    }

    /// The leaves of `value` by dotted path.
    fn leaves_of(value: &Value, path: &str) -> Vec<(String, Value)> {
        let Value::Object(map) = value else {
            return vec![(path.to_string(), value.clone())];
        };
        let dotted = |k: &str| match path {
            "" => k.to_string(),
            _ => format!("{path}.{k}"),
        };
        map.iter()
            .flat_map(|(k, v)| leaves_of(v, &dotted(k)))
            .collect()
    }

    #[test]
    fn values_are_written_as_serde_json_writes_them() {
        let values = [
            json!(0),
            json!(-5),
            json!(i64::MIN),
            json!(i64::MAX),
            json!(u64::MAX),
            json!(1.5),
            json!(-0.0),
            json!(true),
            json!(null),
            json!([1, "a\n"]),
        ];
        for v in values {
            let mut out = Vec::new();
            Leaf::Value(v.clone()).write_json(&mut out);
            assert_eq!(String::from_utf8(out).unwrap(), v.to_string());
        }
    }

    #[test]
    fn strings_are_escaped_as_serde_json_escapes_them() {
        let mut all: String = (0u8..0x80).map(char::from).collect();
        all.push_str("é☃😀\u{2028}\u{7f}");
        // Short strings are checked by a table, longer ones escaped by SIMD: every ASCII
        // byte alone and in a string of 16.
        let short =
            (0u8..0x80).flat_map(|b| [char::from(b).to_string(), format!("{:>16}", char::from(b))]);
        let long = [
            all,
            "".into(),
            "plain".into(),
            "é☃😀".into(),
            "\"".into(),
            "x\n".repeat(40),
        ];
        for s in short.chain(long) {
            let s = s.as_str();
            let mut out = Vec::new();
            write_str(&mut out, s);
            assert_eq!(
                String::from_utf8(out).unwrap(),
                serde_json::to_string(s).unwrap()
            );
        }
    }
}
