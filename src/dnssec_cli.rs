//! `mirrordns dnssec keygen` and `mirrordns dnssec ds` (SPEC sections 1a
//! and 5).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use hickory_proto::rr::Name;

use crate::dnssec::keys::{self, KeyAlgorithm, ZoneKey};

#[derive(Debug, clap::Subcommand)]
pub enum DnssecCommand {
    /// Write a new signing key to a key file (mode 0600).
    ///
    /// For the zone's `dnssec: {key_file: FILE}`: give every instance of the
    /// zone the same file. Prints the DNSKEY, and with --zone the DS for the
    /// parent.
    Keygen {
        #[arg(long, value_enum, default_value_t = KeyAlgorithm::EcdsaP256Sha256)]
        algorithm: KeyAlgorithm,
        /// The key file to write; an existing file is never overwritten.
        #[arg(long)]
        out: PathBuf,
        /// The zone the key is for, to print its DS record too.
        #[arg(long)]
        zone: Option<String>,
    },
    /// Print the DS record (SHA-256) and the DNSKEY of a signed zone, to
    /// give its parent.
    ///
    /// The key is the zone's `dnssec: {key_file}`, else the one in
    /// STATE_DIR/keys/ (generated there now if `serve` has not yet made
    /// it; `serve` then uses it). A zone without `dnssec:` is refused: it
    /// is served unsigned, and a DS at the parent would make it bogus.
    Ds {
        /// The zone file (YAML).
        zone_file: PathBuf,
        /// The state directory `serve` uses.
        #[arg(long, default_value = "state")]
        state_dir: PathBuf,
        /// Use this key file instead of the zone's dnssec.key_file.
        #[arg(long)]
        key_file: Option<PathBuf>,
    },
}

pub fn run(command: DnssecCommand) -> ExitCode {
    let result = match command {
        DnssecCommand::Keygen {
            algorithm,
            out,
            zone,
        } => keygen(algorithm, &out, zone.as_deref()),
        DnssecCommand::Ds {
            zone_file,
            state_dir,
            key_file,
        } => ds(&zone_file, &state_dir, key_file.as_deref()),
    };
    match result {
        Ok(text) => {
            let mut stdout = std::io::stdout().lock();
            match stdout.write_all(text.as_bytes()) {
                Ok(()) => ExitCode::SUCCESS,
                Err(_) => ExitCode::FAILURE,
            }
        }
        Err(e) => {
            eprintln!("mirrordns: {e}");
            ExitCode::FAILURE
        }
    }
}

fn keygen(algorithm: KeyAlgorithm, out: &Path, zone: Option<&str>) -> Result<String, String> {
    let zone = zone
        .map(|z| {
            Name::from_ascii(z)
                .map(|mut n| {
                    n.set_fqdn(true);
                    n
                })
                .map_err(|e| format!("--zone {z:?}: {e}"))
        })
        .transpose()?;
    let key = ZoneKey::generate(algorithm).map_err(|e| e.to_string())?;
    key.write_new(out).map_err(|e| match e {
        keys::KeyError::Write { source, .. }
            if source.kind() == std::io::ErrorKind::AlreadyExists =>
        {
            format!("{}: exists; not overwritten", out.display())
        }
        e => e.to_string(),
    })?;
    let mut text = format!(
        "; key tag {}, algorithm {} ({}), written to {}\n",
        key.key_tag(),
        algorithm.number(),
        algorithm.mnemonic(),
        out.display()
    );
    match &zone {
        Some(zone) => text.push_str(&records(&key, zone)?),
        None => text.push_str(&format!("@ IN DNSKEY {}\n", key.dnskey())),
    }
    Ok(text)
}

fn ds(zone_file: &Path, state_dir: &Path, key_file: Option<&Path>) -> Result<String, String> {
    let zone = crate::zone::load_file(zone_file).map_err(|e| e.to_string())?;
    let settings = match (zone.dnssec.clone(), key_file) {
        (Some(settings), _) => settings,
        (None, Some(_)) => {
            eprintln!(
                "mirrordns: warning: {} has no dnssec: the zone is served unsigned until it does",
                zone_file.display()
            );
            crate::zone::DnssecSettings::default()
        }
        (None, None) => {
            return Err(format!(
                "{}: the zone has no dnssec: and is served unsigned; a DS at the parent would make it bogus (add `dnssec: {{}}`, or `dnssec: {{key_file: PATH}}`)",
                zone_file.display()
            ));
        }
    };
    let file = key_file.map(Path::to_path_buf).or(settings.key_file);
    let (key, source) = match &file {
        Some(path) => (
            keys::zone_key(Some(path), state_dir, &zone.origin, settings.algorithm)
                .map_err(|e| e.to_string())?,
            path.clone(),
        ),
        None => {
            let (key, generated) =
                keys::load_or_generate(state_dir, &zone.origin, settings.algorithm)
                    .map_err(|e| e.to_string())?;
            let path = keys::state_key_path(state_dir, &zone.origin);
            if generated {
                eprintln!(
                    "mirrordns: generated the zone's key in {} (serve with --state-dir {} uses it)",
                    path.display(),
                    state_dir.display()
                );
            }
            (key, path)
        }
    };
    let mut text = format!(
        "; {} key tag {}, algorithm {} ({}), key {}\n",
        zone.origin,
        key.key_tag(),
        key.algorithm().number(),
        key.algorithm().mnemonic(),
        source.display()
    );
    text.push_str(&records(&key, &zone.origin)?);
    Ok(text)
}

/// The DS and DNSKEY in presentation format, without TTL (the parent's to
/// choose), as `dnssec-dsfromkey` prints them.
fn records(key: &ZoneKey, zone: &Name) -> Result<String, String> {
    let ds = key.ds(zone)?;
    Ok(format!(
        "{zone} IN DS {ds}\n{zone} IN DNSKEY {}\n",
        key.dnskey()
    ))
}
