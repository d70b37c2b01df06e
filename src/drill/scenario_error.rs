//! What is wrong with a scenario file, and where: the line, the column, the field.

use std::fmt;

/// A scenario file could not be read or is wrong. The message names the line, the
/// column and the field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScenarioError {
    pub(super) file: Option<String>,
    pub(super) line: Option<usize>,
    pub(super) column: Option<usize>,
    pub(super) field: String,
    pub(super) message: String,
}

impl ScenarioError {
    /// The 1-based line of the mistake, when known.
    pub fn line(&self) -> Option<usize> {
        self.line
    }

    /// The 1-based column of the mistake, when known.
    pub fn column(&self) -> Option<usize> {
        self.column
    }

    /// The dotted name of the field, such as `backend.error_rate` (empty when unknown):
    /// serde's path to the value without array indices, ending with the key of a
    /// missing or unknown field.
    pub fn field(&self) -> &str {
        &self.field
    }
}

impl fmt::Display for ScenarioError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("bad scenario")?;
        if let Some(file) = &self.file {
            write!(f, " {file}")?;
        }
        if let Some(line) = self.line {
            write!(f, " at line {line}")?;
            if let Some(col) = self.column {
                write!(f, ", column {col}")?;
            }
        }
        if !self.field.is_empty() {
            write!(f, ", field `{}`", self.field)?;
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for ScenarioError {}

impl ScenarioError {
    /// An error of the toml parser or of serde: the line and column come from the
    /// parser's span.
    pub(super) fn from_toml(text: &str, e: &toml::de::Error, field: String) -> Self {
        let (line, column) = match e.span() {
            Some(span) => locate(text, span.start),
            None => (None, None),
        };
        Self {
            file: None,
            line,
            column,
            field,
            message: e.message().trim().to_string(),
        }
    }
}

/// The dotted field name of a serde path (`backend[1].phases[0].at` gives
/// `backend.phases.at`, the form of [`ConfigError::field`]). An error about a
/// missing or unknown key is raised by the table that lacks or holds it, so its path
/// ends at the table; serde's message (`` missing field `name` ``) names the key,
/// which is added.
pub(super) fn field_name(path: &serde_path_to_error::Path, message: &str) -> String {
    use serde_path_to_error::Segment;
    let mut keys: Vec<&str> = path
        .iter()
        .filter_map(|s| match s {
            // `toml::Spanned` wraps a value in a private one-key table: not a field.
            Segment::Map { key } if key.starts_with("$__") => None,
            Segment::Map { key } | Segment::Enum { variant: key } => Some(key.as_str()),
            Segment::Seq { .. } | Segment::Unknown => None,
        })
        .collect();
    let named = ["missing field `", "unknown field `", "duplicate field `"]
        .iter()
        .find_map(|p| message.trim().strip_prefix(p))
        .and_then(|rest| rest.split('`').next());
    if let Some(key) = named
        && keys.last() != Some(&key)
    {
        keys.push(key);
    }
    keys.join(".")
}

/// The 1-based line and column of a byte offset in the source.
pub(super) fn locate(text: &str, offset: usize) -> (Option<usize>, Option<usize>) {
    let offset = offset.min(text.len());
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before[line_start..].chars().count() + 1;
    (Some(line), Some(column))
}
