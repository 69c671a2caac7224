//! Zone file errors and warnings that point at the place in the file:
//! `file:line:col: problem` (`file:line:col: warning: problem` for a warning).

use std::fmt;
use std::path::{Path, PathBuf};

/// Where in a zone file a problem is; line and column are 1-based.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Position {
    pub line: usize,
    pub column: usize,
}

/// An error rejects the zone (`check` exits 1, `serve` refuses it); a warning
/// is printed and logged but the zone is served.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Severity {
    Error,
    Warning,
}

/// One problem in one zone file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ZoneError {
    pub file: PathBuf,
    pub position: Option<Position>,
    pub message: String,
    pub severity: Severity,
}

impl ZoneError {
    pub fn new(file: &Path, position: Option<Position>, message: impl Into<String>) -> Self {
        ZoneError {
            file: file.to_path_buf(),
            position,
            message: message.into(),
            severity: Severity::Error,
        }
    }

    pub fn warning(file: &Path, position: Option<Position>, message: impl Into<String>) -> Self {
        ZoneError {
            severity: Severity::Warning,
            ..ZoneError::new(file, position, message)
        }
    }

    pub fn is_warning(&self) -> bool {
        self.severity == Severity::Warning
    }
}

impl fmt::Display for ZoneError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:", self.file.display())?;
        if let Some(p) = self.position {
            write!(f, "{}:{}:", p.line, p.column)?;
        }
        if self.is_warning() {
            write!(f, " warning:")?;
        }
        write!(f, " {}", self.message)
    }
}

impl std::error::Error for ZoneError {}

/// Every problem found in a set of zone files; loading reports them all at once
/// so an operator fixes a file in one pass.
#[derive(Debug)]
pub struct ZoneErrors(pub Vec<ZoneError>);

impl fmt::Display for ZoneErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ZoneErrors {}

/// The errors and warnings of one file, collected while it is read, built and
/// validated, by whichever reader produced the zone.
#[derive(Debug)]
pub(super) struct Diagnostics {
    pub file: PathBuf,
    pub errors: Vec<ZoneError>,
    pub warnings: Vec<ZoneError>,
}

impl Diagnostics {
    pub fn new(file: &Path) -> Self {
        Diagnostics {
            file: file.to_path_buf(),
            errors: Vec::new(),
            warnings: Vec::new(),
        }
    }

    pub fn error(&mut self, position: Option<Position>, message: impl Into<String>) {
        self.errors
            .push(ZoneError::new(&self.file, position, message));
    }

    pub fn warn(&mut self, position: Option<Position>, message: impl Into<String>) {
        self.warnings
            .push(ZoneError::warning(&self.file, position, message));
    }
}
