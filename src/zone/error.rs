//! Zone file errors that point at the place in the file: `file:line:col: problem`.

use std::fmt;
use std::path::{Path, PathBuf};

/// Where in a zone file a problem is; line and column are 1-based.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Position {
    pub line: usize,
    pub column: usize,
}

/// One problem in one zone file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ZoneError {
    pub file: PathBuf,
    pub position: Option<Position>,
    pub message: String,
}

impl ZoneError {
    pub fn new(file: &Path, position: Option<Position>, message: impl Into<String>) -> Self {
        ZoneError {
            file: file.to_path_buf(),
            position,
            message: message.into(),
        }
    }
}

impl fmt::Display for ZoneError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.position {
            Some(p) => write!(
                f,
                "{}:{}:{}: {}",
                self.file.display(),
                p.line,
                p.column,
                self.message
            ),
            None => write!(f, "{}: {}", self.file.display(), self.message),
        }
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
