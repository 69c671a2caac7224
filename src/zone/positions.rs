//! Where each YAML node starts, keyed by its path (`records/mail/1/value`).
//!
//! serde_yaml turns the file into values but forgets where they were; this
//! index, built from yaml-rust2's marked parser events, lets validation errors
//! found after deserialisation still name a line and column.

use std::collections::HashMap;

use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::Marker;

use super::error::Position;

#[derive(Default)]
pub struct PositionIndex {
    starts: HashMap<String, Position>,
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
    Mapping { key: Option<String> },
    Sequence { next_index: usize },
}

#[derive(Default)]
struct Builder {
    stack: Vec<Container>,
    path: Vec<String>,
    starts: HashMap<String, Position>,
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
            Some(Container::Mapping { key }) => match key.take() {
                Some(k) => Some(k),
                None => {
                    // A key: remember it; the position of a key is where its entry starts.
                    let k = key_text.unwrap_or_default().to_string();
                    let mut full = self.path.clone();
                    full.push(k.clone());
                    self.starts.entry(full.join("/")).or_insert(position(mark));
                    if let Some(Container::Mapping { key }) = self.stack.last_mut() {
                        *key = Some(k);
                    }
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
                self.stack.push(Container::Mapping { key: None });
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
}
