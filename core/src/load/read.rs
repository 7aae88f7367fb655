//! Turning an action file's text into actions, one at a time, within fixed bounds on memory.
//!
//! JSON and YAML go through the same reader: a serde visitor that builds each action's JSON
//! value while it counts every value and every byte of text it creates, refuses a repeated key
//! and a number JSON cannot hold.
//! So no file, however it is shaped (a million `1`s, a million `{}`s, YAML aliases that repeat
//! a long string), costs more memory than the counts allow. Each action is handed on as soon
//! as it is read ([`ActionSink`]); nothing else of the document is held.

use std::fmt;

use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

use super::{too_large, Format, Problem, MAX_NESTING, MAX_YAML_BYTES};

/// The most actions one file may hold: twice the largest plan baton is built for (100,000), so
/// no plan that fits the size limit with realistic actions comes near it.
pub const MAX_ACTIONS: usize = 200_000;
/// The most values (lists, objects, strings, numbers, booleans and nulls, counted alike; keys
/// are not values) in one file: 20 for each of [`MAX_ACTIONS`], where a realistic action holds
/// 10. A file made of tiny values would otherwise cost about 100 bytes of memory per byte of
/// text.
pub const MAX_VALUES: usize = 4_000_000;
/// The most bytes of text (keys and strings) in one file once YAML aliases are expanded: a
/// short file of aliases to one long string could otherwise expand to gigabytes.
pub const MAX_TEXT_BYTES: usize = 64 * 1024 * 1024;

/// Where a value sits: the action's index, then keys and list indices below it.
#[derive(Debug, Clone)]
enum Segment {
    Key(String),
    Index(usize),
}

/// Why reading stopped, besides a syntax error. Kept beside the parser's error, which only
/// carries text, so the problem can name the action and the field.
#[derive(Debug)]
enum Stop {
    DuplicateKey(String),
    KeyNotText(&'static str),
    TooManyActions,
    TooManyValues,
    TooMuchText,
    TooDeep,
}

/// The running counts and position of one read.
struct Reader<'s> {
    values_left: usize,
    text_left: usize,
    /// Levels of lists and objects open, the list of actions included.
    depth: usize,
    /// The action being read, and the path inside it.
    action: Option<usize>,
    path: Vec<Segment>,
    /// The label of the action being read, once its `label` field has been read.
    label: Option<String>,
    stop: Option<Stop>,
    /// Problems that do not stop the reading: (action, field, message).
    found: Vec<(usize, String, String)>,
    /// Where each action goes as soon as it is read.
    sink: &'s mut dyn ActionSink,
    /// The `format` of a stored plan's wrapper object, when the document is one.
    format: Option<String>,
}

/// The text every reader error carries; the details are in [`Reader::stop`].
const STOPPED: &str = "baton: stopped reading";

impl Reader<'_> {
    fn stop<E: serde::de::Error>(&mut self, stop: Stop) -> E {
        self.stop = Some(stop);
        E::custom(STOPPED)
    }

    /// Accounts for one value holding `text` bytes of text.
    fn charge<E: serde::de::Error>(&mut self, text: usize) -> Result<(), E> {
        if self.values_left == 0 {
            return Err(self.stop(Stop::TooManyValues));
        }
        self.values_left -= 1;
        self.charge_text(text)
    }

    /// Accounts for `text` bytes of text (a key's, or a value's).
    fn charge_text<E: serde::de::Error>(&mut self, text: usize) -> Result<(), E> {
        if text > self.text_left {
            return Err(self.stop(Stop::TooMuchText));
        }
        self.text_left -= text;
        Ok(())
    }

    /// `.nan`, `.inf` or a number too large for a double: JSON (what a plan is stored as) has
    /// no such numbers, and the parser would make it `null` without a word.
    fn not_finite(&mut self, v: f64) {
        let what = if v.is_nan() {
            ".nan is not a number"
        } else {
            "an infinite number (.inf, or one too large such as 1e400) is not a number"
        };
        let message = format!(
            "{what} JSON can hold, and action files are stored as JSON; quote it to pass text"
        );
        let field = self.field();
        self.found
            .push((self.action.unwrap_or_default(), field, message));
    }

    fn open<E: serde::de::Error>(&mut self) -> Result<(), E> {
        self.charge(0)?;
        if self.depth >= MAX_NESTING {
            return Err(self.stop(Stop::TooDeep));
        }
        self.depth += 1;
        Ok(())
    }

    /// The field path inside the current action: `params.variables.x`, `depends_on[2]`.
    fn field(&self) -> String {
        let mut field = String::new();
        for segment in &self.path {
            match segment {
                Segment::Key(key) => {
                    if !field.is_empty() {
                        field.push('.');
                    }
                    field.push_str(key);
                }
                Segment::Index(i) => field.push_str(&format!("[{i}]")),
            }
        }
        field
    }
}

/// One value, counted as it is built.
struct Bounded<'r, 's>(&'r mut Reader<'s>);

impl<'de> DeserializeSeed<'de> for Bounded<'_, '_> {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Bounded<'_, '_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<Value, E> {
        self.0.charge(0)?;
        Ok(Value::Bool(v))
    }

    fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Value, E> {
        self.0.charge(0)?;
        Ok(Value::Number(v.into()))
    }

    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Value, E> {
        self.0.charge(0)?;
        Ok(Value::Number(v.into()))
    }

    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Value, E> {
        self.0.charge(0)?;
        match Number::from_f64(v) {
            Some(n) => Ok(Value::Number(n)),
            None => {
                // Refused, but the reading goes on so the file's other problems are listed.
                self.0.not_finite(v);
                Ok(Value::Null)
            }
        }
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Value, E> {
        self.0.charge(v.len())?;
        Ok(Value::String(v.to_string()))
    }

    fn visit_string<E: serde::de::Error>(self, v: String) -> Result<Value, E> {
        self.0.charge(v.len())?;
        Ok(Value::String(v))
    }

    fn visit_unit<E: serde::de::Error>(self) -> Result<Value, E> {
        self.0.charge(0)?;
        Ok(Value::Null)
    }

    fn visit_none<E: serde::de::Error>(self) -> Result<Value, E> {
        self.visit_unit()
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let reader = self.0;
        reader.open()?;
        let mut items = Vec::new();
        loop {
            reader.path.push(Segment::Index(items.len()));
            let item = seq.next_element_seed(Bounded(reader))?;
            reader.path.pop();
            match item {
                Some(item) => items.push(item),
                None => break,
            }
        }
        reader.depth -= 1;
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let reader = self.0;
        reader.open()?;
        let action_level = reader.path.is_empty();
        let mut object = Map::new();
        while let Some(key) = map.next_key_seed(Key(reader))? {
            reader.charge_text(key.len())?;
            let duplicate = object.contains_key(&key);
            reader.path.push(Segment::Key(key.clone()));
            if duplicate {
                return Err(reader.stop(Stop::DuplicateKey(key)));
            }
            let value = map.next_value_seed(Bounded(reader))?;
            reader.path.pop();
            if action_level && ["label", "Label", "Name"].contains(&key.as_str()) {
                reader.label = value.as_str().map(str::to_string);
            }
            object.insert(key, value);
        }
        reader.depth -= 1;
        Ok(Value::Object(object))
    }
}

/// A mapping key as text. YAML allows numbers and booleans as keys (`8080: web`); they are
/// taken as the text they were written as, which is what JSON would need anyway.
struct Key<'r, 's>(&'r mut Reader<'s>);

impl<'de> DeserializeSeed<'de> for Key<'_, '_> {
    type Value = String;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<String, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Key<'_, '_> {
    type Value = String;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a key")
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<String, E> {
        Ok(v.to_string())
    }

    fn visit_string<E: serde::de::Error>(self, v: String) -> Result<String, E> {
        Ok(v)
    }

    fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<String, E> {
        Ok(v.to_string())
    }

    fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<String, E> {
        Ok(v.to_string())
    }

    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<String, E> {
        Ok(v.to_string())
    }

    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<String, E> {
        Ok(v.to_string())
    }

    fn visit_unit<E: serde::de::Error>(self) -> Result<String, E> {
        Err(self.0.stop(Stop::KeyNotText("null")))
    }

    fn visit_none<E: serde::de::Error>(self) -> Result<String, E> {
        self.visit_unit()
    }

    fn visit_seq<A: SeqAccess<'de>>(self, _: A) -> Result<String, A::Error> {
        Err(self.0.stop(Stop::KeyNotText("a list")))
    }

    fn visit_map<A: MapAccess<'de>>(self, _: A) -> Result<String, A::Error> {
        Err(self.0.stop(Stop::KeyNotText("an object")))
    }
}

/// What the document holds at the top: the actions were handed out, or it is something else.
enum Top {
    Actions,
    Other(&'static str),
}

/// The whole document: a list is read one action at a time; anything else is read (within the
/// same bounds) only to say what it is.
struct Document<'r, 's>(&'r mut Reader<'s>);

impl<'de> DeserializeSeed<'de> for Document<'_, '_> {
    type Value = Top;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Top, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Document<'_, '_> {
    type Value = Top;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a list of actions")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Top, A::Error> {
        self.0.open()?;
        read_action_list(self.0, seq)?;
        Ok(Top::Actions)
    }

    /// A plan stored by earlier versions in another dialect is `{"format": …, "actions":
    /// [...]}`; any other object is read (within the same bounds) only to say what it is.
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Top, A::Error> {
        let reader = self.0;
        reader.open()?;
        let mut wrapper = true;
        let mut has_actions = false;
        while let Some(key) = map.next_key_seed(Key(reader))? {
            reader.charge_text(key.len())?;
            match key.as_str() {
                "actions" if !has_actions => {
                    has_actions = true;
                    // The wrapper is not a level of the actions' nesting: a stored plan nests
                    // exactly as deep as the file it was made from.
                    reader.depth -= 1;
                    map.next_value_seed(ActionList(reader))?;
                    reader.depth += 1;
                }
                "format" if reader.format.is_none() => {
                    let value = map.next_value_seed(Bounded(reader))?;
                    match value {
                        Value::String(format) => reader.format = Some(format),
                        _ => wrapper = false,
                    }
                }
                _ => {
                    wrapper = false;
                    map.next_value_seed(Bounded(reader))?;
                }
            }
        }
        if wrapper && has_actions && reader.format.is_some() {
            Ok(Top::Actions)
        } else {
            reader.format = None;
            Ok(Top::Other("an object"))
        }
    }

    fn visit_bool<E: serde::de::Error>(self, _: bool) -> Result<Top, E> {
        Ok(Top::Other("a boolean"))
    }

    fn visit_i64<E: serde::de::Error>(self, _: i64) -> Result<Top, E> {
        Ok(Top::Other("a number"))
    }

    fn visit_u64<E: serde::de::Error>(self, _: u64) -> Result<Top, E> {
        Ok(Top::Other("a number"))
    }

    fn visit_f64<E: serde::de::Error>(self, _: f64) -> Result<Top, E> {
        Ok(Top::Other("a number"))
    }

    fn visit_str<E: serde::de::Error>(self, _: &str) -> Result<Top, E> {
        Ok(Top::Other("a string"))
    }

    fn visit_unit<E: serde::de::Error>(self) -> Result<Top, E> {
        Ok(Top::Other("null"))
    }

    fn visit_none<E: serde::de::Error>(self) -> Result<Top, E> {
        Ok(Top::Other("null"))
    }
}

/// Whether one more element follows, without building it.
struct Skip<'r, 's>(&'r mut Reader<'s>);

impl<'de> DeserializeSeed<'de> for Skip<'_, '_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, _: D) -> Result<(), D::Error> {
        // The element exists: that alone is the problem; nothing of it is read.
        Err(self.0.stop(Stop::TooManyActions))
    }
}

/// The list of actions inside a stored plan's wrapper object.
struct ActionList<'r, 's>(&'r mut Reader<'s>);

impl<'de> DeserializeSeed<'de> for ActionList<'_, '_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for ActionList<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a list of actions")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<(), A::Error> {
        self.0.open()?;
        read_action_list(self.0, seq)
    }
}

/// Reads a list of actions one at a time, up to [`MAX_ACTIONS`]; its level is already open.
fn read_action_list<'de, A: SeqAccess<'de>>(
    reader: &mut Reader<'_>,
    mut seq: A,
) -> Result<(), A::Error> {
    let mut index = 0;
    loop {
        if index == MAX_ACTIONS {
            // One more action would be too many; a closing bracket is fine.
            reader.action = Some(index);
            seq.next_element_seed(Skip(reader))?;
            break;
        }
        reader.action = Some(index);
        reader.label = None;
        let Some(action) = seq.next_element_seed(Bounded(reader))? else {
            break;
        };
        if index == 0 && reader.format.is_none() {
            if let Some(format) = stored_plan_header(&action) {
                // What validation computed is computed again; only the dialect is kept.
                reader.format = Some(format);
                continue;
            }
        }
        reader.sink.action(index, action, reader.format.as_deref());
        index += 1;
    }
    reader.action = None;
    Ok(())
}

/// The dialect a stored plan's header (`{"plan_format": 2, "dialect": …, …}`, first in the
/// list) names, or `None` when the first element is not a header. A header of another format
/// names no dialect this version knows, so the file is refused as stored by a newer baton.
fn stored_plan_header(first: &Value) -> Option<String> {
    let header = first.as_object()?;
    let format = header.get("plan_format")?;
    if format.as_u64() != Some(u64::from(super::stored::PLAN_FORMAT)) {
        return Some(format!("plan_format {format}"));
    }
    Some(header.get("dialect")?.as_str()?.to_string())
}

/// A problem inside an action that did not stop the reading: (action, field, message).
pub(super) type Finding = (usize, String, String);

/// Takes each action as soon as it is read, so no more than one action's tree is alive at a
/// time (at 100k actions the whole list of trees would be about 80 MB).
pub(super) trait ActionSink: Send {
    /// A read starts again from the beginning (a file that is not JSON is read again as
    /// YAML): forget every action handed over so far.
    fn restart(&mut self);
    /// Action `index` as read; `format`: the stored plan's format, when the document has said
    /// it so far (a header or a wrapper's `format` before its `actions`).
    fn action(&mut self, index: usize, action: Value, format: Option<&str>);
}

/// What a file holds besides its actions (handed to the sink): problems inside them that did
/// not stop the reading, and the `format` of a stored plan's wrapper object.
pub(super) struct Read {
    pub(super) findings: Vec<Finding>,
    pub(super) format: Option<String>,
}

/// Reads the document's actions. Refuses, with one problem that has the position where reading
/// stopped: a syntax error, a repeated key, a number JSON cannot hold, a YAML tag baton does
/// not know, and input past [`MAX_ACTIONS`], [`MAX_VALUES`], [`MAX_TEXT_BYTES`] or
/// [`MAX_NESTING`].
// A cold path that runs once per file: the large error costs nothing worth boxing for.
#[allow(clippy::result_large_err)]
pub(super) fn read_actions(
    file: &str,
    text: &str,
    format: Format,
    sink: &mut dyn ActionSink,
) -> Result<Read, Problem> {
    // The parsers recurse once per level of nesting, with frames of several kilobytes in a
    // debug build: 127 levels need more than the 2 MiB a test or tokio thread has. The read
    // runs on a thread of its own with room to spare (the stack is reserved, not used).
    std::thread::scope(|scope| {
        let reading = std::thread::Builder::new()
            .name("baton-read".into())
            .stack_size(READER_STACK)
            .spawn_scoped(scope, || read_on_this_thread(file, text, format, sink));
        let failed =
            |why: String| Problem::file_level(file, format!("cannot read the file: {why}"));
        match reading {
            Ok(reading) => reading
                .join()
                .unwrap_or_else(|_| Err(failed("the reader failed unexpectedly".into()))),
            Err(e) => Err(failed(format!("cannot start a thread to read it: {e}"))),
        }
    })
}

/// The reader thread's stack: far more than 127 levels of nesting take in a debug build.
const READER_STACK: usize = 64 * 1024 * 1024;

#[allow(clippy::result_large_err)]
fn read_on_this_thread(
    file: &str,
    text: &str,
    format: Format,
    sink: &mut dyn ActionSink,
) -> Result<Read, Problem> {
    if text.trim().is_empty() {
        return Err(Problem::file_level(
            file,
            "the file is empty; expected a list of actions",
        ));
    }
    match format {
        Format::Json => read_as(file, text, true, sink),
        Format::Yaml => read_as(file, text, false, sink),
        // A file whose name does not say: JSON, and if it is not JSON, YAML (of which JSON is
        // nearly a subset). The problem shown is the one of the form the text looks like.
        Format::Detect => match read_as(file, text, true, sink) {
            Err(json) if json.message.starts_with("invalid JSON") => {
                match read_as(file, text, false, sink) {
                    Ok(read) => Ok(read),
                    Err(_) if text.trim_start().starts_with(['[', '{']) => Err(json),
                    Err(yaml) => Err(yaml),
                }
            }
            other => other,
        },
    }
}

#[allow(clippy::result_large_err)]
fn read_as(
    file: &str,
    text: &str,
    use_json: bool,
    sink: &mut dyn ActionSink,
) -> Result<Read, Problem> {
    if !use_json && text.len() as u64 > MAX_YAML_BYTES {
        return Err(Problem::file_level(
            file,
            too_large(Some(text.len() as u64), MAX_YAML_BYTES),
        ));
    }
    let mut reader = Reader {
        values_left: MAX_VALUES,
        text_left: MAX_TEXT_BYTES,
        depth: 0,
        action: None,
        path: Vec::new(),
        label: None,
        stop: None,
        found: Vec::new(),
        sink,
        format: None,
    };
    reader.sink.restart();
    let (top, failure) = if use_json {
        read_json(text, &mut reader)
    } else {
        read_yaml(text, &mut reader)
    };
    if let Some((position, message)) = failure {
        return Err(reader.problem(file, position, message, use_json));
    }
    match top {
        Some(Top::Other(kind)) => Err(Problem::file_level(
            file,
            format!("expected a list of actions (an array), found {kind}"),
        )),
        _ => Ok(Read {
            findings: reader.found,
            format: reader.format,
        }),
    }
}

type Failure = (Option<(usize, usize)>, String);

fn read_json(text: &str, reader: &mut Reader<'_>) -> (Option<Top>, Option<Failure>) {
    let mut deserializer = serde_json::Deserializer::from_str(text);
    let result = Document(reader)
        .deserialize(&mut deserializer)
        .and_then(|top| deserializer.end().map(|()| top));
    match result {
        Ok(top) => (Some(top), None),
        Err(err) => {
            // serde_json reports column 0 at the very start of a line.
            let position = Some((err.line(), err.column().max(1)));
            (None, Some((position, without_position(&err.to_string()))))
        }
    }
}

/// How deep the YAML parser itself lets collections nest. It looks ahead of the reader (up to a
/// thousand characters for a key), so its limit is set far past [`MAX_NESTING`]: the reader
/// refuses first, at the bracket that is one level too deep.
const PARSER_NESTING: usize = 4096;

fn read_yaml(text: &str, reader: &mut Reader<'_>) -> (Option<Top>, Option<Failure>) {
    use serde_saphyr::options::{DuplicateKeyPolicy, MergeKeyPolicy, NonFiniteFloatPolicy};
    // The reader counts values, text and depth itself; the parser's own budgets are set so
    // they never refuse first what the reader would accept, except alias replay, which they
    // bound before any value is built.
    let options = serde_saphyr::options! {
        budget: serde_saphyr::budget! {
            max_events: usize::MAX,
            max_nodes: usize::MAX,
            max_total_scalar_bytes: usize::MAX,
            max_depth: PARSER_NESTING,
            flow_nesting_limit: PARSER_NESTING,
            max_documents: 1,
            // Many aliases of one anchor are fine: what they expand to is counted as it is
            // built.
            enforce_alias_anchor_ratio: false,
        },
        alias_limits: serde_saphyr::alias_limits! {
            max_total_replayed_events: MAX_VALUES,
        },
        duplicate_keys: DuplicateKeyPolicy::PassThrough,
        merge_keys: MergeKeyPolicy::AsOrdinary,
        non_finite_float_policy: NonFiniteFloatPolicy::PassThrough,
        reject_unsupported_tags: true,
        with_snippet: false,
        crop_radius: 0,
    };
    let result = serde_saphyr::with_deserializer_from_str_with_options(text, options, |de| {
        Document(reader).deserialize(de)
    });
    match result {
        Ok(top) => (Some(top), None),
        Err(err) => {
            let position = err
                .location()
                .map(|l| (l.line() as usize, l.column() as usize))
                .filter(|&(line, _)| line > 0);
            (None, Some((position, yaml_message(&err))))
        }
    }
}

/// The YAML parser's message in the words the rest of the loader uses.
fn yaml_message(err: &serde_saphyr::Error) -> String {
    let text = err.to_string();
    let first = text.lines().next().unwrap_or_default();
    let first = first.split(" at line ").next().unwrap_or(first);
    let lower = first.to_ascii_lowercase();
    if lower.contains("depth") || lower.contains("nesting") || lower.contains("recursion") {
        return super::nested_too_deeply();
    }
    if lower.contains("unsupported tag") {
        return format!(
            "{first}: baton reads only YAML's standard tags (!!str, !!int, !!float, !!bool, \
             !!null, !!seq, !!map); remove it, or quote the value"
        );
    }
    if lower.contains("alias") || lower.contains("anchor") || lower.contains("replay") {
        return format!(
            "aliases expand to too much data ({first}); write the values out instead of \
             repeating anchors"
        );
    }
    first.to_string()
}

/// A parser's message without its " at line L column C" tail (the position is reported apart),
/// with the parser's guard against hostile nesting said plainly.
fn without_position(message: &str) -> String {
    let message = message.split(" at line ").next().unwrap_or(message);
    if message.starts_with("recursion limit exceeded") {
        return super::nested_too_deeply();
    }
    message.to_string()
}

impl Reader<'_> {
    /// The problem for a read that stopped at `position` with the parser's `message`.
    fn problem(
        &self,
        file: &str,
        position: Option<(usize, usize)>,
        message: String,
        json: bool,
    ) -> Problem {
        let syntax = if json { "invalid JSON" } else { "invalid YAML" };
        let Some(stop) = &self.stop else {
            let mut problem = Problem {
                position,
                ..Problem::file_level(file, format!("{syntax}: {message}"))
            };
            // A tag is refused where it stands, which the reader knows.
            if message.starts_with("unsupported tag") {
                problem.message = message;
                self.place(&mut problem);
            }
            return problem;
        };
        let message = match stop {
            Stop::DuplicateKey(key) => format!(
                "duplicate key {}: a key may appear only once in an object",
                super::quoted(key)
            ),
            Stop::KeyNotText(kind) => format!("a key must be text, not {kind}"),
            Stop::TooDeep => format!("{syntax}: {}", super::nested_too_deeply()),
            Stop::TooManyActions => format!(
                "the file holds more than {MAX_ACTIONS} actions; split the plan into several"
            ),
            Stop::TooManyValues => format!(
                "the file holds more than {MAX_VALUES} values (lists, objects, strings, \
                 numbers); split the plan into several, or move large values out of it \
                 (template_file, S3 objects)"
            ),
            Stop::TooMuchText => format!(
                "the file's text adds up to more than {} once YAML aliases are expanded; write \
                 long values once, or move them out of the plan (template_file, S3 objects)",
                super::human_size(MAX_TEXT_BYTES as u64)
            ),
        };
        let in_action = matches!(stop, Stop::DuplicateKey(_) | Stop::KeyNotText(_));
        let mut problem = Problem {
            position,
            ..Problem::file_level(file, message)
        };
        if in_action {
            self.place(&mut problem);
        }
        problem
    }

    /// Names the action and field being read in `problem`.
    fn place(&self, problem: &mut Problem) {
        if let Some(index) = self.action {
            problem.index = Some(index);
            problem.label = self
                .label
                .clone()
                .filter(|l| super::label_problem(l).is_none());
            let field = self.field();
            problem.field = (!field.is_empty()).then_some(field);
        }
    }
}
