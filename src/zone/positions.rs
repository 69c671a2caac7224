//! Where each YAML node starts, keyed by its path (`records/mail/1/value`).
//!
//! serde_yaml turns the file into values but forgets where they were; this
//! index, built from yaml-rust2's marked parser events, lets validation errors
//! found after deserialisation still name a line and column. The same events
//! show duplicate keys, which serde_yaml refuses outright; [`without_duplicates`]
//! reads such a file anyway (the later value wins) so that its other errors
//! are reported too.

use std::collections::HashMap;

use serde_yaml::{Mapping, Value};
use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser, Tag};
use yaml_rust2::scanner::{Marker, TScalarStyle};

use super::error::Position;

/// A key given twice in one mapping.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DuplicateKey {
    pub key: String,
    pub position: Position,
    pub first: Position,
}

#[derive(Default)]
pub struct PositionIndex {
    starts: HashMap<String, Position>,
    pub duplicates: Vec<DuplicateKey>,
}

impl PositionIndex {
    /// Indexes `source`; a file that does not parse gives an empty index (the
    /// serde_yaml syntax error, with its own position, is what gets reported).
    pub fn build(source: &str) -> Self {
        let mut builder = Builder::default();
        let mut parser = Parser::new_from_str(source);
        if parser.load(&mut builder, false).is_err() {
            return PositionIndex::default();
        }
        PositionIndex {
            starts: builder.starts,
            duplicates: builder.duplicates,
        }
    }

    /// The position of the node at `path`, or of its nearest indexed ancestor.
    pub fn find(&self, path: &str) -> Option<Position> {
        let mut path = path;
        loop {
            if let Some(p) = self.starts.get(path) {
                return Some(*p);
            }
            path = &path[..path.rfind('/')?];
        }
    }
}

enum Container {
    Mapping {
        key: Option<String>,
        seen: HashMap<String, Position>,
    },
    Sequence {
        next_index: usize,
    },
}

#[derive(Default)]
struct Builder {
    stack: Vec<Container>,
    path: Vec<String>,
    starts: HashMap<String, Position>,
    duplicates: Vec<DuplicateKey>,
}

impl Builder {
    /// Called at the start of every node; returns true when the node is a
    /// mapping key rather than a value.
    fn begin_node(&mut self, mark: Marker, key_text: Option<&str>) -> bool {
        let segment = match self.stack.last_mut() {
            None => None,
            Some(Container::Sequence { next_index }) => {
                *next_index += 1;
                Some((*next_index - 1).to_string())
            }
            Some(Container::Mapping { key, seen }) => match key.take() {
                Some(k) => Some(k),
                None => {
                    // A key: remember it; the position of a key is where its entry starts.
                    let k = key_text.unwrap_or_default().to_string();
                    if key_text.is_some() {
                        match seen.get(&k) {
                            Some(first) => self.duplicates.push(DuplicateKey {
                                key: k.clone(),
                                position: position(mark),
                                first: *first,
                            }),
                            None => {
                                seen.insert(k.clone(), position(mark));
                            }
                        }
                    }
                    *key = Some(k.clone());
                    let mut full = self.path.clone();
                    full.push(k);
                    self.starts.entry(full.join("/")).or_insert(position(mark));
                    return true;
                }
            },
        };
        if let Some(s) = segment {
            self.path.push(s);
        }
        // A value's own start is more precise than its key's, so it wins.
        self.starts.insert(self.path.join("/"), position(mark));
        false
    }

    /// A scalar or alias: a key, or a value that starts and ends here.
    fn leaf(&mut self, mark: Marker, text: Option<&str>) {
        if !self.begin_node(mark, text) {
            self.end_node();
        }
    }

    fn end_node(&mut self) {
        if !self.stack.is_empty() || !self.path.is_empty() {
            self.path.pop();
        }
    }
}

fn position(mark: Marker) -> Position {
    Position {
        line: mark.line(),
        column: mark.col() + 1,
    }
}

impl MarkedEventReceiver for Builder {
    fn on_event(&mut self, event: Event, mark: Marker) {
        match event {
            Event::Scalar(text, ..) => self.leaf(mark, Some(&text)),
            Event::Alias(_) => self.leaf(mark, None),
            Event::MappingStart(..) => {
                self.begin_node(mark, None);
                self.stack.push(Container::Mapping {
                    key: None,
                    seen: HashMap::new(),
                });
            }
            Event::SequenceStart(..) => {
                self.begin_node(mark, None);
                self.stack.push(Container::Sequence { next_index: 0 });
            }
            Event::MappingEnd | Event::SequenceEnd => {
                self.stack.pop();
                self.end_node();
            }
            _ => {}
        }
    }
}

/// Reads `source` as serde_yaml would, except that a key given twice in a
/// mapping keeps its later value instead of failing the whole file; `None`
/// when the YAML does not parse.
pub fn without_duplicates(source: &str) -> Option<Value> {
    let mut builder = ValueBuilder::default();
    let mut parser = Parser::new_from_str(source);
    parser.load(&mut builder, false).ok()?;
    Some(builder.root.unwrap_or(Value::Null))
}

enum Partial {
    Mapping(Mapping, Option<Value>, usize),
    Sequence(Vec<Value>, usize),
}

#[derive(Default)]
struct ValueBuilder {
    stack: Vec<Partial>,
    anchors: HashMap<usize, Value>,
    root: Option<Value>,
}

impl ValueBuilder {
    fn complete(&mut self, value: Value, anchor: usize) {
        if anchor > 0 {
            self.anchors.insert(anchor, value.clone());
        }
        match self.stack.last_mut() {
            None => {
                // Only the first document is a zone, as serde_yaml reads it.
                if self.root.is_none() {
                    self.root = Some(value);
                }
            }
            Some(Partial::Sequence(items, _)) => items.push(value),
            Some(Partial::Mapping(map, key, _)) => match key.take() {
                None => *key = Some(value),
                Some(k) => {
                    map.insert(k, value);
                }
            },
        }
    }
}

/// A scalar's value with serde_yaml's own resolution of plain scalars
/// (numbers, booleans, null), so both readers agree on what a value is.
fn scalar_value(text: String, style: TScalarStyle, tag: Option<&Tag>) -> Value {
    let is_str_tag = tag.is_some_and(|t| t.suffix == "str");
    if style != TScalarStyle::Plain || is_str_tag {
        return Value::String(text);
    }
    match serde_yaml::from_str::<Value>(&text) {
        Ok(v @ (Value::Null | Value::Bool(_) | Value::Number(_) | Value::String(_))) => v,
        _ => Value::String(text),
    }
}

impl MarkedEventReceiver for ValueBuilder {
    fn on_event(&mut self, event: Event, _mark: Marker) {
        match event {
            Event::Scalar(text, style, anchor, tag) => {
                let value = scalar_value(text, style, tag.as_ref());
                self.complete(value, anchor);
            }
            Event::Alias(id) => {
                let value = self.anchors.get(&id).cloned().unwrap_or(Value::Null);
                self.complete(value, 0);
            }
            Event::MappingStart(anchor, _) => {
                self.stack
                    .push(Partial::Mapping(Mapping::new(), None, anchor))
            }
            Event::SequenceStart(anchor, _) => {
                self.stack.push(Partial::Sequence(Vec::new(), anchor))
            }
            Event::MappingEnd | Event::SequenceEnd => {
                let (value, anchor) = match self.stack.pop() {
                    Some(Partial::Mapping(map, _, anchor)) => (Value::Mapping(map), anchor),
                    Some(Partial::Sequence(items, anchor)) => (Value::Sequence(items), anchor),
                    None => return,
                };
                self.complete(value, anchor);
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_nested_values_and_falls_back_to_ancestors() {
        let src = "origin: a.\nrecords:\n  mail:\n    - {type: A, value: 1.2.3.4}\n    - {type: TXT, value: x}\n";
        let index = PositionIndex::build(src);
        assert_eq!(index.find("origin"), Some(Position { line: 1, column: 9 }));
        assert_eq!(
            index.find("records/mail/1/value"),
            Some(Position {
                line: 5,
                column: 26
            })
        );
        assert_eq!(
            index.find("records/mail/1/nothing"),
            index.find("records/mail/1")
        );
        assert_eq!(
            index.find("records/mail/0"),
            Some(Position { line: 4, column: 7 })
        );
    }

    #[test]
    fn duplicate_keys_are_found_and_the_later_value_wins() {
        let src = "a: 1\nb: {c: x, c: 'y'}\na: [2, 3]\n";
        let index = PositionIndex::build(src);
        let keys: Vec<(&str, usize, usize)> = index
            .duplicates
            .iter()
            .map(|d| (d.key.as_str(), d.position.line, d.first.line))
            .collect();
        assert_eq!(keys, [("c", 2, 2), ("a", 3, 1)]);
        let value = without_duplicates(src).unwrap();
        assert_eq!(
            value,
            serde_yaml::from_str::<Value>("a: [2, 3]\nb: {c: 'y'}\n").unwrap()
        );
        assert!(serde_yaml::from_str::<Value>(src).is_err());
    }
}
