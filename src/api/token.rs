//! The bearer token that every write to the API needs (SPEC section 3): from
//! `--api-token-file`, else `MIRRORDNS_API_TOKEN`, else one generated once at
//! `STATE_DIR/api.token` with mode 0600.

use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use tracing::info;

pub fn resolve(
    token_file: Option<&Path>,
    from_env: Option<&str>,
    state_dir: &Path,
) -> io::Result<String> {
    if let Some(path) = token_file {
        let token = read_token(path)?;
        info!(file = %path.display(), "api token read from --api-token-file");
        return Ok(token);
    }
    if let Some(token) = from_env.map(str::trim).filter(|t| !t.is_empty()) {
        info!("api token taken from MIRRORDNS_API_TOKEN");
        return Ok(token.to_string());
    }
    let path = state_dir.join("api.token");
    if path.exists() {
        match read_token(&path) {
            Ok(token) => {
                info!(file = %path.display(), "api token read from the state directory");
                return Ok(token);
            }
            Err(e) => {
                // A damaged generated token is state like any other: set it
                // aside and make a new one rather than refuse to start.
                crate::state::set_aside(&path, &e.to_string(), false);
            }
        }
    }
    fs::create_dir_all(state_dir).map_err(|e| {
        io::Error::new(
            e.kind(),
            format!("cannot create state dir {}: {e}", state_dir.display()),
        )
    })?;
    let token = generate();
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)?;
    writeln!(file, "{token}")?;
    file.sync_all()?;
    info!(file = %path.display(), "api token generated");
    Ok(token)
}

fn read_token(path: &Path) -> io::Result<String> {
    let text = fs::read_to_string(path).map_err(|e| {
        io::Error::new(
            e.kind(),
            format!("cannot read api token {}: {e}", path.display()),
        )
    })?;
    let token = text.trim();
    if token.is_empty() || !token.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "api token file {} is empty or holds characters a token cannot have",
                path.display()
            ),
        ));
    }
    Ok(token.to_string())
}

/// 256 random bits from the OS, hex encoded.
fn generate() -> String {
    let bytes: [u8; 32] = rand::random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
