//! The configuration file: defaults per kind, named stacks, named rate limiters;
//! read from TOML, YAML or JSON, checked whole when loaded.

use std::fmt;
use std::path::Path;

use super::ConfigError;
use super::layout::{FileModel, Seg, StackConfig, key, path_text, to_toml};
use super::stack::StackSettings;

/// The text formats a configuration file may be written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Format {
    /// TOML (`.toml`).
    Toml,
    /// YAML (`.yaml`, `.yml`).
    Yaml,
    /// JSON (`.json`).
    Json,
}

impl Format {
    /// The format a file's extension names.
    pub fn of_path(path: &Path) -> Option<Format> {
        match path.extension()?.to_str()? {
            "toml" => Some(Format::Toml),
            "yaml" | "yml" => Some(Format::Yaml),
            "json" => Some(Format::Json),
            _ => None,
        }
    }
}

/// A configuration file that cannot be used, and where: the file, the line and
/// column, the path of the field, and why.
///
/// Displayed as `fortify.toml:12:20: stacks.payments.breaker.failure_rate: must lie
/// in 0..=1 (got 1.5)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileError {
    pub(crate) file: Option<String>,
    pub(crate) line: Option<usize>,
    pub(crate) column: Option<usize>,
    pub(crate) path: String,
    pub(crate) message: String,
}

impl FileError {
    pub(crate) fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            file: None,
            line: None,
            column: None,
            path: path.into(),
            message: message.into(),
        }
    }

    /// The file, as it was named when loaded (`None` for text parsed directly).
    pub fn file(&self) -> Option<&str> {
        self.file.as_deref()
    }

    /// The 1-based line of the mistake, when known.
    pub fn line(&self) -> Option<usize> {
        self.line
    }

    /// The 1-based column of the mistake, when known.
    pub fn column(&self) -> Option<usize> {
        self.column
    }

    /// The path of the field in the file, such as
    /// `stacks.payments.breaker.failure_rate` (empty for a syntax error).
    pub fn path(&self) -> &str {
        &self.path
    }

    /// Why it was refused.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for FileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut sep = false;
        if let Some(file) = &self.file {
            f.write_str(file)?;
            sep = true;
        }
        if let Some(line) = self.line {
            if sep {
                f.write_str(":")?;
            }
            write!(f, "{line}")?;
            if let Some(col) = self.column {
                write!(f, ":{col}")?;
            }
            sep = true;
        }
        if sep {
            f.write_str(": ")?;
        }
        if !self.path.is_empty() {
            write!(f, "{}: ", self.path)?;
        }
        f.write_str(&self.message)
    }
}

impl std::error::Error for FileError {}

/// A configuration file, read and checked: the defaults, every named stack and rate
/// limiter. See the [module docs](super) for the format.
#[derive(Debug, Clone)]
pub struct FortifyConfig {
    pub(crate) model: FileModel,
    source: Source,
}

#[derive(Debug, Clone)]
struct Source {
    file: Option<String>,
    text: String,
    format: Format,
}

impl FortifyConfig {
    /// Reads the file at `path`, in the format its extension names (`.toml`,
    /// `.yaml`/`.yml`, `.json`), and checks every stack and rate limiter in it.
    pub fn from_path(path: impl AsRef<Path>) -> Result<Self, FileError> {
        let path = path.as_ref();
        let name = path.display().to_string();
        let with_file = |mut e: FileError| {
            e.file = Some(name.clone());
            e
        };
        let format = Format::of_path(path).ok_or_else(|| {
            with_file(FileError::new(
                "",
                "unknown format: the file name must end in .toml, .yaml, .yml or .json",
            ))
        })?;
        let text = std::fs::read_to_string(path)
            .map_err(|e| with_file(FileError::new("", format!("cannot read: {e}"))))?;
        Self::parse_named(&text, format, Some(name))
    }

    /// Parses `text` in `format` and checks it. Errors name no file.
    pub fn parse(text: &str, format: Format) -> Result<Self, FileError> {
        Self::parse_named(text, format, None)
    }

    /// Parses TOML text and checks it.
    pub fn from_toml_str(text: &str) -> Result<Self, FileError> {
        Self::parse(text, Format::Toml)
    }

    fn parse_named(text: &str, format: Format, file: Option<String>) -> Result<Self, FileError> {
        let source = Source {
            file,
            text: text.to_string(),
            format,
        };
        let model = deserialize(text, format).map_err(|e| source.name(e))?;
        let config = Self { model, source };
        config.check()?;
        Ok(config)
    }

    /// Checks every stack and rate limiter, in name order.
    fn check(&self) -> Result<(), FileError> {
        for name in self.model.stacks.keys() {
            self.stack(name)?;
        }
        #[cfg(feature = "rate-limit")]
        for name in self.model.rate_limits.keys() {
            self.rate_limit(name)?;
        }
        Ok(())
    }

    /// The `[defaults]` tables, as read.
    pub fn defaults(&self) -> &super::layout::Defaults {
        &self.model.defaults
    }

    /// The `[stacks.NAME]` tables as read (overrides only; [`stack`](Self::stack)
    /// merges them with the defaults).
    pub fn stack_config(&self, name: &str) -> Option<&StackConfig> {
        self.model.stacks.get(name)
    }

    /// The names of the stacks, in order.
    pub fn stack_names(&self) -> impl Iterator<Item = &str> {
        self.model.stacks.keys().map(String::as_str)
    }

    /// The stack `name`'s settings: the defaults with its overrides, checked. Build
    /// it with [`StackSettings::builder`] or [`StackSettings::http`].
    pub fn stack(&self, name: &str) -> Result<StackSettings, FileError> {
        let Some(over) = self.model.stacks.get(name) else {
            return Err(self.source.name(FileError::new(
                format!("stacks.{name}"),
                format!(
                    "no stack named `{name}` (the file has: {})",
                    self.names(self.model.stacks.keys())
                ),
            )));
        };
        let settings = StackSettings::resolve(name, &self.model.defaults, over);
        settings
            .check()
            .map_err(|(rel, e)| self.locate_stack(name, over, &rel, e))?;
        Ok(settings)
    }

    /// The rate limiter `name`'s table as read (`[rate_limits.NAME]` over
    /// `[defaults.rate_limit]`): give it to a running limiter after a reload with
    /// [`RateLimitConfig::reconfigure`](super::RateLimitConfig::reconfigure).
    #[cfg(feature = "rate-limit")]
    pub fn rate_limit_config(&self, name: &str) -> Result<super::RateLimitConfig, FileError> {
        let Some(over) = self.model.rate_limits.get(name) else {
            return Err(self.source.name(FileError::new(
                format!("rate_limits.{name}"),
                format!(
                    "no rate limiter named `{name}` (the file has: {})",
                    self.names(self.model.rate_limits.keys())
                ),
            )));
        };
        Ok(match &self.model.defaults.rate_limit {
            Some(d) => d.merged(over),
            None => over.clone(),
        })
    }

    /// The rate limiter `name` (`[rate_limits.NAME]` over `[defaults.rate_limit]`),
    /// built.
    #[cfg(feature = "rate-limit")]
    pub fn rate_limit(&self, name: &str) -> Result<crate::rate_limit::RateLimitLayer, FileError> {
        let merged = self.rate_limit_config(name)?;
        merged
            .apply(crate::rate_limit::RateLimitLayer::builder().name(name))
            .and_then(|b| b.build())
            .map_err(|e| {
                let field = e.field().strip_prefix("rate_limit.").unwrap_or(e.field());
                let mut path = vec![key("rate_limits"), key(name), key(field)];
                if !self.present(&path) {
                    let d = vec![key("defaults"), key("rate_limit"), key(field)];
                    if self.present(&d) {
                        path = d;
                    }
                }
                self.at(&path, e.reason())
            })
    }

    fn names<'a>(&self, keys: impl Iterator<Item = &'a String>) -> String {
        let names: Vec<&str> = keys.map(String::as_str).collect();
        if names.is_empty() {
            "none".to_string()
        } else {
            names.join(", ")
        }
    }

    /// A builder's error for stack `name`, at the field it names: the stack's own
    /// value when it sets one, else the default's.
    fn locate_stack(
        &self,
        name: &str,
        _over: &StackConfig,
        rel: &[Seg],
        e: ConfigError,
    ) -> FileError {
        let mut path = vec![key("stacks"), key(name)];
        path.extend(rel.iter().cloned());
        if !self.present(&path) && !matches!(rel.first(), Some(Seg::Key(k)) if k == "backends") {
            let mut d = vec![key("defaults")];
            d.extend(rel.iter().cloned());
            if self.present(&d) {
                path = d;
            }
        }
        self.at(&path, e.reason())
    }

    /// An error at `path`, with the line of the longest part of it found in the file.
    fn at(&self, path: &[Seg], message: &str) -> FileError {
        let mut err = FileError::new(path_text(path), message);
        let text = &self.source.text;
        for len in (1..=path.len()).rev() {
            let found = match self.source.format {
                Format::Toml => toml_offset(text, &path[..len]).map(|offset| locate(text, offset)),
                Format::Json => {
                    let mut de = serde_json::Deserializer::from_str(text);
                    match serde::de::DeserializeSeed::deserialize(Locator(&path[..len]), &mut de) {
                        Err(e) if e.to_string().contains(HERE) => Some((e.line(), e.column())),
                        _ => None,
                    }
                }
                Format::Yaml => {
                    let de = serde_yaml_ng::Deserializer::from_str(text);
                    match serde::de::DeserializeSeed::deserialize(Locator(&path[..len]), de) {
                        Err(e) if e.to_string().contains(HERE) => {
                            e.location().map(|l| (l.line(), l.column()))
                        }
                        _ => None,
                    }
                }
            };
            if let Some((line, column)) = found {
                err.line = Some(line);
                err.column = Some(column);
                break;
            }
        }
        self.source.name(err)
    }

    /// Whether the file sets the value at `path`.
    fn present(&self, path: &[Seg]) -> bool {
        let Ok(mut v) = serde_json::to_value(&self.model) else {
            return false;
        };
        for s in path {
            v = match (s, v) {
                (Seg::Key(k), serde_json::Value::Object(mut m)) => match m.remove(k) {
                    Some(v) => v,
                    None => return false,
                },
                (Seg::Index(i), serde_json::Value::Array(mut a)) if *i < a.len() => {
                    a.swap_remove(*i)
                }
                _ => return false,
            };
        }
        true
    }

    /// The file printed back as TOML (defaults, stacks and rate limiters as read).
    pub fn to_toml(&self) -> String {
        to_toml(&self.model)
    }
}

impl Source {
    fn name(&self, mut e: FileError) -> FileError {
        e.file.clone_from(&self.file);
        e
    }
}

fn deserialize(text: &str, format: Format) -> Result<FileModel, FileError> {
    match format {
        Format::Toml => {
            let de =
                toml::Deserializer::parse(text).map_err(|e| toml_error(text, &e, String::new()))?;
            serde_path_to_error::deserialize(de).map_err(|e| {
                let path = serde_path(e.path(), e.inner().message());
                toml_error(text, e.inner(), path)
            })
        }
        Format::Json => {
            let mut de = serde_json::Deserializer::from_str(text);
            let model: FileModel = serde_path_to_error::deserialize(&mut de).map_err(|e| {
                let path = serde_path(e.path(), &e.inner().to_string());
                json_error(e.inner(), path)
            })?;
            de.end().map_err(|e| json_error(&e, String::new()))?;
            Ok(model)
        }
        Format::Yaml => {
            let de = serde_yaml_ng::Deserializer::from_str(text);
            serde_path_to_error::deserialize(de).map_err(|e| {
                let path = serde_path(e.path(), &e.inner().to_string());
                yaml_error(e.inner(), path)
            })
        }
    }
}

fn toml_error(text: &str, e: &toml::de::Error, path: String) -> FileError {
    let mut err = FileError::new(path, e.message().trim());
    if let Some(span) = e.span() {
        let (line, column) = locate(text, span.start);
        err.line = Some(line);
        err.column = Some(column);
    }
    err
}

fn json_error(e: &serde_json::Error, path: String) -> FileError {
    // serde_json appends " at line L column C": the location goes in front instead.
    let text = e.to_string();
    let message = match text.rfind(" at line ") {
        Some(at) => text[..at].to_string(),
        None => text,
    };
    let mut err = FileError::new(path, message);
    if e.line() > 0 {
        err.line = Some(e.line());
        err.column = Some(e.column());
    }
    err
}

fn yaml_error(e: &serde_yaml_ng::Error, path: String) -> FileError {
    let text = e.to_string();
    // serde_yaml_ng writes "PATH: MESSAGE at line L column C"; keep the message.
    let text = match text.rfind(" at line ") {
        Some(at) => text[..at].to_string(),
        None => text,
    };
    let message = if !path.is_empty() {
        text.strip_prefix(&format!("{path}: "))
            .unwrap_or(&text)
            .to_string()
    } else {
        text
    };
    let mut err = FileError::new(path, message);
    if let Some(loc) = e.location() {
        err.line = Some(loc.line());
        err.column = Some(loc.column());
    }
    err
}

/// The dotted path of a serde error (`stacks.payments.backends[1].weight`). An error
/// about a missing or unknown key is raised by the table that lacks or holds it, so
/// its path ends at the table; serde's message names the key, which is added.
fn serde_path(path: &serde_path_to_error::Path, message: &str) -> String {
    use serde_path_to_error::Segment;
    let mut segs: Vec<Seg> = path
        .iter()
        .filter_map(|s| match s {
            // `toml::Spanned` wraps a value in a private one-key table: not a field.
            Segment::Map { key } if key.starts_with("$__") => None,
            Segment::Map { key } | Segment::Enum { variant: key } => Some(Seg::Key(key.clone())),
            Segment::Seq { index } => Some(Seg::Index(*index)),
            Segment::Unknown => None,
        })
        .collect();
    let named = ["missing field `", "unknown field `", "duplicate field `"]
        .iter()
        .find_map(|p| message.find(p).map(|at| &message[at + p.len()..]))
        .and_then(|rest| rest.split('`').next());
    if let Some(k) = named
        && segs.last() != Some(&Seg::Key(k.to_string()))
    {
        segs.push(Seg::Key(k.to_string()));
    }
    path_text(&segs)
}

/// The byte offset of the value at `path` in a TOML document.
fn toml_offset(text: &str, path: &[Seg]) -> Option<usize> {
    use toml::de::{DeTable, DeValue};
    fn find<'a, 'i>(t: &'a DeTable<'i>, k: &str) -> Option<&'a toml::Spanned<DeValue<'i>>> {
        t.iter()
            .find(|(name, _)| name.get_ref().as_ref() == k)
            .map(|(_, v)| v)
    }
    let doc = DeTable::parse(text).ok()?;
    let mut value: Option<&toml::Spanned<DeValue<'_>>> = None;
    for s in path {
        let next = match (s, value.map(|v| v.get_ref())) {
            (Seg::Key(k), None) => find(doc.get_ref(), k)?,
            (Seg::Key(k), Some(DeValue::Table(t))) => find(t, k)?,
            (Seg::Index(i), Some(DeValue::Array(a))) => a.get(*i)?,
            _ => return None,
        };
        value = Some(next);
    }
    value.map(|v| v.span().start)
}

/// The error a [`Locator`] raises where the value it looks for begins.
const HERE: &str = "__fortify_value_here__";

/// Walks a document to the value at its path and fails there, so that the format's
/// error says where the value is (for formats whose parsers keep no spans).
struct Locator<'a>(&'a [Seg]);

impl<'de> serde::de::DeserializeSeed<'de> for Locator<'_> {
    type Value = ();

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        if self.0.is_empty() {
            // Fail once the value's first token is read: its position is the value's.
            return d.deserialize_any(Fail);
        }
        d.deserialize_any(self)
    }
}

impl<'de> serde::de::Visitor<'de> for Locator<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a table or a list")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let Some((Seg::Key(want), rest)) = self.0.split_first() else {
            return Ok(());
        };
        while let Some(k) = map.next_key::<String>()? {
            if k == *want {
                return map.next_value_seed(Locator(rest));
            }
            map.next_value::<serde::de::IgnoredAny>()?;
        }
        Ok(())
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let Some((Seg::Index(want), rest)) = self.0.split_first() else {
            return Ok(());
        };
        let mut i = 0;
        while i < *want {
            if seq.next_element::<serde::de::IgnoredAny>()?.is_none() {
                return Ok(());
            }
            i += 1;
        }
        seq.next_element_seed(Locator(rest)).map(|_| ())
    }
}

/// Fails on any value with [`HERE`].
struct Fail;

impl<'de> serde::de::Visitor<'de> for Fail {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any value")
    }

    fn visit_bool<E: serde::de::Error>(self, _: bool) -> Result<(), E> {
        Err(E::custom(HERE))
    }
    fn visit_i64<E: serde::de::Error>(self, _: i64) -> Result<(), E> {
        Err(E::custom(HERE))
    }
    fn visit_u64<E: serde::de::Error>(self, _: u64) -> Result<(), E> {
        Err(E::custom(HERE))
    }
    fn visit_f64<E: serde::de::Error>(self, _: f64) -> Result<(), E> {
        Err(E::custom(HERE))
    }
    fn visit_str<E: serde::de::Error>(self, _: &str) -> Result<(), E> {
        Err(E::custom(HERE))
    }
    fn visit_unit<E: serde::de::Error>(self) -> Result<(), E> {
        Err(E::custom(HERE))
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, _: A) -> Result<(), A::Error> {
        Err(serde::de::Error::custom(HERE))
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, _: A) -> Result<(), A::Error> {
        Err(serde::de::Error::custom(HERE))
    }
}

/// The 1-based line and column of a byte offset in the source.
fn locate(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before[line_start..].chars().count() + 1;
    (line, column)
}
