//! `mirrordns check PATH...`: loads the paths as `serve` would ([`load_set`])
//! and prints what it found, as `named-checkzone` does: every error and
//! warning of every file with its line and column, `ok` for each good file.
//! Warnings (missing glue, data below a zone cut) do not fail the check.

use std::io::{self, Write};
use std::path::PathBuf;

use super::{EMPTY_DIRECTORY, Keys, ZoneError, load_set};

/// Checks `paths`; `Ok(true)` when nothing has an error. Good files are
/// reported on `out`, errors and warnings on `err`.
pub fn check(paths: &[PathBuf], out: &mut impl Write, err: &mut impl Write) -> io::Result<bool> {
    let report = load_set(paths, Keys::FilesOnly);
    let mut errors = 0;
    let mut warnings = 0;
    for e in &report.errors {
        writeln!(err, "{e}")?;
        errors += 1;
    }
    for dir in &report.empty_directories {
        // `serve` warns and serves nothing; a check of nothing is a mistake.
        writeln!(err, "{}: {EMPTY_DIRECTORY}", dir.display())?;
        errors += 1;
    }
    for file in &report.files {
        let mut problems: Vec<&ZoneError> = file.errors.iter().chain(&file.warnings).collect();
        problems.sort_by_key(|p| p.position);
        for problem in problems {
            writeln!(err, "{problem}")?;
        }
        errors += file.errors.len();
        warnings += file.warnings.len();
        if let Some(zone) = &file.zone {
            let noted = match file.warnings.len() {
                0 => String::new(),
                n => format!(", {}", counted(n, "warning")),
            };
            writeln!(
                out,
                "{}: ok (zone {}, {} services{noted})",
                file.file.display(),
                zone.origin,
                zone.services.len()
            )?;
        }
    }
    if errors > 0 || warnings > 0 {
        writeln!(
            err,
            "{}, {} in {}",
            counted(errors, "error"),
            counted(warnings, "warning"),
            counted(report.files.len(), "zone file")
        )?;
    }
    Ok(errors == 0)
}

fn counted(n: usize, word: &str) -> String {
    if n == 1 {
        format!("1 {word}")
    } else {
        format!("{n} {word}s")
    }
}
