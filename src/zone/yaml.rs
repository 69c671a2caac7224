//! YAML text → [`Node`]s that know where they were written, through one
//! parser: libyaml-safer, libyaml in safe Rust (the grammar and the error
//! messages of libyaml, which serde_yaml used before; its events carry the
//! line and column of every node).
//!
//! Plain scalars are resolved as YAML 1.2's core schema does (null, booleans,
//! integers, floats); anything quoted is a string. A key given twice in one
//! mapping is reported, and the later value is kept.
//!
//! A zone file is mostly its `records`: so as not to hold a tree of the whole
//! file, each entry of the top-level `records` mapping is handed to the
//! caller as soon as it is complete, then dropped.

/// foldhash, not SipHash: the keys are the zone's own names, and a load
/// hashes each several times.
type HashMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;

use libyaml_safer::{EventData, Mark, Parser, ScalarStyle};

use super::error::Position;

/// One YAML value with the position where it starts.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct Node {
    pub position: Position,
    pub value: Value,
}

#[derive(Clone, Debug, PartialEq)]
pub(super) enum Value {
    Null,
    Bool(bool),
    /// A whole number that fits in 64 bits, signed or not.
    Int(i128),
    Float(f64),
    String(String),
    Sequence(Vec<Node>),
    Mapping(Vec<(Node, Node)>),
}

impl Node {
    pub fn is_null(&self) -> bool {
        matches!(self.value, Value::Null)
    }

    pub fn as_str(&self) -> Option<&str> {
        match &self.value {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_u64(&self) -> Option<u64> {
        match self.value {
            Value::Int(n) => u64::try_from(n).ok(),
            _ => None,
        }
    }

    pub fn as_f64(&self) -> Option<f64> {
        match self.value {
            Value::Int(n) => Some(n as f64),
            Value::Float(f) => Some(f),
            _ => None,
        }
    }

    /// The entry of a mapping whose key is the string `key`.
    pub fn entry(&self, key: &str) -> Option<(&Node, &Node)> {
        match &self.value {
            Value::Mapping(entries) => entries
                .iter()
                .find(|(k, _)| k.as_str() == Some(key))
                .map(|(k, v)| (k, v)),
            _ => None,
        }
    }

    /// The value of a mapping at the string `key`.
    pub fn get(&self, key: &str) -> Option<&Node> {
        self.entry(key).map(|(_, v)| v)
    }
}

/// A key given twice in one mapping.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct DuplicateKey {
    pub key: String,
    pub position: Position,
    pub first: Position,
    /// An owner under `records`: both values were read (each was built as
    /// it came); elsewhere the later value replaces the first.
    pub both_read: bool,
}

/// The file is not YAML: where and why, in libyaml's words.
#[derive(Debug)]
pub(super) struct SyntaxError {
    pub position: Option<Position>,
    pub message: String,
}

/// What a file held: its first document (`None` when empty), with the
/// entries of its top-level `records` mapping taken out (they went to the
/// caller), and every duplicate key.
pub(super) struct Document {
    pub root: Option<Node>,
    pub duplicates: Vec<DuplicateKey>,
}

fn position(mark: Mark) -> Position {
    Position {
        line: mark.line as usize + 1,
        column: mark.column as usize + 1,
    }
}

/// Resolves a plain scalar as YAML 1.2's core schema does.
fn resolve_plain(text: String) -> Value {
    match text.as_str() {
        "" | "~" | "null" | "Null" | "NULL" => return Value::Null,
        "true" | "True" | "TRUE" => return Value::Bool(true),
        "false" | "False" | "FALSE" => return Value::Bool(false),
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" => {
            return Value::Float(f64::INFINITY);
        }
        "-.inf" | "-.Inf" | "-.INF" => return Value::Float(f64::NEG_INFINITY),
        ".nan" | ".NaN" | ".NAN" => return Value::Float(f64::NAN),
        _ => {}
    }
    if let Some(n) = resolve_int(&text) {
        return Value::Int(n);
    }
    if is_float(&text)
        && let Ok(f) = text.parse::<f64>()
    {
        return Value::Float(f);
    }
    Value::String(text)
}

fn resolve_int(text: &str) -> Option<i128> {
    let (negative, digits) = match text.as_bytes().first()? {
        b'-' => (true, &text[1..]),
        b'+' => (false, &text[1..]),
        _ => (false, text),
    };
    let (radix, digits) = if let Some(hex) = digits.strip_prefix("0x") {
        (16, hex)
    } else if let Some(octal) = digits.strip_prefix("0o") {
        (8, octal)
    } else {
        (10, digits)
    };
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    let n = i128::from_str_radix(digits, radix).ok()?;
    let n = if negative { -n } else { n };
    // Whole numbers beyond 64 bits are read as floats, as serde_yaml did.
    (i128::from(i64::MIN)..=i128::from(u64::MAX))
        .contains(&n)
        .then_some(n)
}

/// `[-+]? ( \. [0-9]+ | [0-9]+ ( \. [0-9]* )? ) ( [eE] [-+]? [0-9]+ )?`
fn is_float(text: &str) -> bool {
    let b = text.as_bytes();
    let mut i = usize::from(matches!(b.first(), Some(b'-' | b'+')));
    let int_start = i;
    while b.get(i).is_some_and(u8::is_ascii_digit) {
        i += 1;
    }
    let int_digits = i - int_start;
    let mut frac_digits = 0;
    if b.get(i) == Some(&b'.') {
        i += 1;
        let start = i;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        frac_digits = i - start;
    }
    if int_digits == 0 && frac_digits == 0 {
        return false;
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(b.get(i), Some(b'-' | b'+')) {
            i += 1;
        }
        let start = i;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        if i == start {
            return false;
        }
    }
    i == b.len()
}

enum Partial {
    Sequence {
        position: Position,
        items: Vec<Node>,
        anchor: Option<String>,
    },
    Mapping {
        position: Position,
        entries: Vec<(Node, Node)>,
        key: Option<Node>,
        anchor: Option<String>,
        /// Key text -> index in `entries`, to find duplicates; filled only
        /// past a few entries (small mappings are searched).
        index: HashMap<String, usize>,
    },
}

/// Mappings this long get an index of their keys for the duplicate check.
const INDEXED: usize = 16;

/// What the reader of a file is told while the parser goes.
pub(super) trait Handler {
    /// An entry of the top-level mapping is complete (it is kept in the tree too).
    fn top_entry(&mut self, key: &Node, value: &Node);
    /// An entry of the top-level `records` mapping, in file order (it is not
    /// kept in the tree).
    fn record(&mut self, key: &Node, value: &Node);
}

/// What the parser gives its entries to: it hands over the records it read.
pub(super) trait Sink {
    fn top_entry(&mut self, key: &Node, value: &Node);
    fn record(&mut self, key: Node, value: Node);
}

struct Builder<'f> {
    stack: Vec<Partial>,
    anchors: HashMap<String, Node>,
    root: Option<Node>,
    duplicates: Vec<DuplicateKey>,
    handler: &'f mut dyn Sink,
    /// Keys already given to `records`, for duplicates among them.
    record_keys: HashMap<String, Position>,
}

fn key_text(node: &Node) -> Option<String> {
    match &node.value {
        Value::String(s) => Some(s.clone()),
        Value::Int(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Null => Some(String::new()),
        _ => None,
    }
}

/// Whether two keys are the same key, as [`key_text`] would say.
fn same_key(a: &Node, b: &Node) -> bool {
    match (&a.value, &b.value) {
        (Value::String(x), Value::String(y)) => x == y,
        (Value::Int(x), Value::Int(y)) => x == y,
        (Value::Bool(x), Value::Bool(y)) => x == y,
        (Value::Null, Value::Null) => true,
        _ => match (key_text(a), key_text(b)) {
            (Some(p), Some(q)) => p == q,
            _ => false,
        },
    }
}

impl Builder<'_> {
    /// Whether the mapping on top of the stack is the top-level `records`.
    fn in_records(&self) -> bool {
        let [
            Partial::Mapping { key: Some(key), .. },
            Partial::Mapping { .. },
        ] = &self.stack[..]
        else {
            return false;
        };
        key.as_str() == Some("records")
    }

    fn complete(&mut self, node: Node, anchor: Option<String>) {
        if let Some(anchor) = anchor {
            self.anchors.insert(anchor, node.clone());
        }
        let streamed = self.in_records();
        let top = self.stack.len() == 1;
        match self.stack.last_mut() {
            None => {
                // Only the first document is a zone.
                if self.root.is_none() {
                    self.root = Some(node);
                }
            }
            Some(Partial::Sequence { items, .. }) => items.push(node),
            Some(Partial::Mapping {
                entries,
                key,
                index,
                ..
            }) => {
                let Some(k) = key.take() else {
                    *key = Some(node);
                    return;
                };
                if streamed {
                    if let Some(text) = key_text(&k) {
                        match self.record_keys.get(&text) {
                            Some(first) => self.duplicates.push(DuplicateKey {
                                key: text,
                                position: k.position,
                                first: *first,
                                both_read: true,
                            }),
                            None => {
                                self.record_keys.insert(text, k.position);
                            }
                        }
                    }
                    self.handler.record(k, node);
                    return;
                }
                if top {
                    self.handler.top_entry(&k, &node);
                }
                if key_text(&k).is_none() {
                    entries.push((k, node));
                    return;
                }
                let found = if entries.len() >= INDEXED {
                    if index.is_empty() {
                        for (i, (key, _)) in entries.iter().enumerate() {
                            if let Some(t) = key_text(key) {
                                index.entry(t).or_insert(i);
                            }
                        }
                    }
                    key_text(&k).and_then(|t| index.get(&t).copied())
                } else {
                    // Small mappings (a record's) compare keys without copying them.
                    entries.iter().position(|(key, _)| same_key(key, &k))
                };
                match found {
                    Some(i) => {
                        self.duplicates.push(DuplicateKey {
                            key: key_text(&k).unwrap_or_default(),
                            position: k.position,
                            first: entries[i].0.position,
                            both_read: false,
                        });
                        // The later value is the one read.
                        entries[i].1 = node;
                    }
                    None => {
                        if !index.is_empty()
                            && let Some(text) = key_text(&k)
                        {
                            index.insert(text, entries.len());
                        }
                        entries.push((k, node));
                    }
                }
            }
        }
    }

    fn end(&mut self) {
        let (node, anchor) = match self.stack.pop() {
            Some(Partial::Sequence {
                position,
                items,
                anchor,
            }) => (
                Node {
                    position,
                    value: Value::Sequence(items),
                },
                anchor,
            ),
            Some(Partial::Mapping {
                position,
                entries,
                anchor,
                ..
            }) => (
                Node {
                    position,
                    value: Value::Mapping(entries),
                },
                anchor,
            ),
            None => return,
        };
        self.complete(node, anchor);
    }
}

/// Parses `source`, telling `handler` of each top-level entry and giving it
/// each entry of the top-level `records` mapping as soon as it is read.
pub(super) fn parse(source: &str, handler: &mut dyn Sink) -> Result<Document, SyntaxError> {
    let mut parser = Parser::new();
    let mut input = source.as_bytes();
    parser.set_input_string(&mut input);
    let mut builder = Builder {
        stack: Vec::new(),
        anchors: HashMap::default(),
        root: None,
        duplicates: Vec::new(),
        handler,
        record_keys: HashMap::default(),
    };
    loop {
        let event = parser.parse().map_err(|e| SyntaxError {
            position: e.problem_mark().map(position),
            message: describe_error(&e),
        })?;
        let at = position(event.start_mark);
        match event.data {
            EventData::Scalar {
                anchor,
                tag,
                value,
                style,
                ..
            } => {
                let is_str_tag = tag.as_deref() == Some("tag:yaml.org,2002:str");
                let value = if style == ScalarStyle::Plain && !is_str_tag {
                    resolve_plain(value)
                } else {
                    Value::String(value)
                };
                builder.complete(
                    Node {
                        position: at,
                        value,
                    },
                    anchor,
                );
            }
            EventData::Alias { anchor } => {
                let value = builder
                    .anchors
                    .get(&anchor)
                    .map_or(Value::Null, |n| n.value.clone());
                builder.complete(
                    Node {
                        position: at,
                        value,
                    },
                    None,
                );
            }
            EventData::SequenceStart { anchor, .. } => builder.stack.push(Partial::Sequence {
                position: at,
                items: Vec::new(),
                anchor,
            }),
            EventData::MappingStart { anchor, .. } => builder.stack.push(Partial::Mapping {
                position: at,
                entries: Vec::new(),
                key: None,
                anchor,
                index: HashMap::default(),
            }),
            EventData::SequenceEnd | EventData::MappingEnd => builder.end(),
            // Only the first document is read.
            EventData::DocumentEnd { .. } | EventData::StreamEnd => break,
            _ => {}
        }
    }
    Ok(Document {
        root: builder.root,
        duplicates: builder.duplicates,
    })
}

/// What the parsing thread hands to the reading one, in file order.
enum Message {
    Top(Node, Node),
    Records(Vec<(Node, Node)>),
}

/// The parsing thread's handler: batches of records, a top-level entry
/// after the records before it. Batches the reader is done with come back
/// to be dropped here, where their memory was allocated: freeing it on the
/// other thread would make both fight over one malloc arena.
struct Forward {
    sender: std::sync::mpsc::SyncSender<Message>,
    done: std::sync::mpsc::Receiver<Vec<(Node, Node)>>,
    batch: Vec<(Node, Node)>,
}

/// Records per message: enough to make the channel's cost vanish, few
/// enough that little is held between the two threads.
const BATCH: usize = 1024;

impl Forward {
    fn flush(&mut self) {
        if !self.batch.is_empty() {
            let next = match self.done.try_recv() {
                Ok(mut used) => {
                    used.clear();
                    used
                }
                Err(_) => Vec::with_capacity(BATCH),
            };
            let batch = std::mem::replace(&mut self.batch, next);
            // The reader stops only when this thread is done.
            let _ = self.sender.send(Message::Records(batch));
        }
    }
}

impl Sink for Forward {
    fn top_entry(&mut self, key: &Node, value: &Node) {
        self.flush();
        let _ = self.sender.send(Message::Top(key.clone(), value.clone()));
    }

    fn record(&mut self, key: Node, value: Node) {
        self.batch.push((key, value));
        if self.batch.len() >= BATCH {
            self.flush();
        }
    }
}

/// [`parse`] on a thread of its own while `handler` reads what it gives on
/// this one: a large zone is parsed and built at the same time, on two
/// cores. The handler sees exactly what [`parse`] would show it, in order.
pub(super) fn parse_threaded(
    source: &str,
    handler: &mut dyn Handler,
) -> Result<Document, SyntaxError> {
    std::thread::scope(|scope| {
        let (sender, receiver) = std::sync::mpsc::sync_channel(4);
        let (give_back, done) = std::sync::mpsc::channel();
        let parser = scope.spawn(move || {
            let mut forward = Forward {
                sender,
                done,
                batch: Vec::with_capacity(BATCH),
            };
            let document = parse(source, &mut forward);
            forward.flush();
            document
        });
        for message in receiver {
            match message {
                Message::Top(key, value) => handler.top_entry(&key, &value),
                Message::Records(batch) => {
                    for (key, value) in &batch {
                        handler.record(key, value);
                    }
                    let _ = give_back.send(batch);
                }
            }
        }
        parser.join().unwrap_or_else(|_| {
            Err(SyntaxError {
                position: None,
                message: "the YAML parser stopped".to_string(),
            })
        })
    })
}

/// libyaml's message as serde_yaml worded it: "did not find expected ',' or
/// ']' at line 6 column 33, while parsing a flow sequence at line 6 column 23".
fn describe_error(e: &libyaml_safer::Error) -> String {
    let mut message = e.problem().to_string();
    if let Some(mark) = e.problem_mark() {
        message.push_str(&format!(" at {mark}"));
    }
    if let (Some(context), Some(mark)) = (e.context(), e.context_mark()) {
        message.push_str(&format!(", {context} at {mark}"));
    }
    message
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Default)]
    struct Records(Vec<(Node, Node)>, Vec<String>);

    impl Sink for Records {
        fn top_entry(&mut self, key: &Node, _: &Node) {
            self.1.push(key.as_str().unwrap_or_default().to_string());
        }
        fn record(&mut self, key: Node, value: Node) {
            self.0.push((key, value));
        }
    }

    fn read(src: &str) -> (Document, Vec<(Node, Node)>) {
        let mut records = Records::default();
        let doc = parse(src, &mut records).unwrap();
        (doc, records.0)
    }

    #[test]
    fn positions_and_plain_scalars() {
        let (doc, records) = read(
            "origin: a.\nttl: 300\nx: [1.5, -2, 0x10, ~, true, '7', 1.2.3.4, 2001:db8::1]\nrecords:\n  mail:\n    - {type: A, value: 1.2.3.4}\n",
        );
        let root = doc.root.unwrap();
        assert_eq!(
            root.get("origin").unwrap().position,
            Position { line: 1, column: 9 }
        );
        assert_eq!(root.get("ttl").unwrap().as_u64(), Some(300));
        let Value::Sequence(items) = &root.get("x").unwrap().value else {
            panic!()
        };
        let values: Vec<&Value> = items.iter().map(|n| &n.value).collect();
        assert_eq!(
            values,
            [
                &Value::Float(1.5),
                &Value::Int(-2),
                &Value::Int(16),
                &Value::Null,
                &Value::Bool(true),
                &Value::String("7".into()),
                &Value::String("1.2.3.4".into()),
                &Value::String("2001:db8::1".into()),
            ]
        );
        // The records went to the caller, not into the tree.
        assert_eq!(
            root.get("records").map(|r| &r.value),
            Some(&Value::Mapping(vec![]))
        );
        assert_eq!(records.len(), 1);
        let (key, value) = &records[0];
        assert_eq!(key.as_str(), Some("mail"));
        let Value::Sequence(items) = &value.value else {
            panic!()
        };
        assert_eq!(items[0].position, Position { line: 6, column: 7 });
        assert_eq!(
            items[0].get("value").unwrap().position,
            Position {
                line: 6,
                column: 24
            }
        );
    }

    #[test]
    fn duplicate_keys_are_found_and_the_later_value_wins() {
        let (doc, records) = read("a: 1\nb: {c: x, c: 'y'}\na: [2, 3]\nrecords: {n: 1, n: 2}\n");
        let keys: Vec<(&str, usize, usize)> = doc
            .duplicates
            .iter()
            .map(|d| (d.key.as_str(), d.position.line, d.first.line))
            .collect();
        assert_eq!(keys, [("c", 2, 2), ("a", 3, 1), ("n", 4, 4)]);
        let root = doc.root.unwrap();
        assert_eq!(root.get("b").unwrap().get("c").unwrap().as_str(), Some("y"));
        assert!(matches!(root.get("a").unwrap().value, Value::Sequence(_)));
        assert_eq!(records.len(), 2);
    }

    #[test]
    fn syntax_errors_say_where() {
        let e = parse("a: [1, 2\nb: 3\n", &mut Records::default())
            .err()
            .unwrap();
        assert_eq!(e.position, Some(Position { line: 2, column: 2 }));
        assert!(e.message.starts_with("did not find expected ',' or ']' at line 2 column 2, while parsing a flow sequence at line 1 column 4"), "{}", e.message);
    }
}
