//! The `mirrordns` command line: parses arguments and calls into the library.

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use mirrordns::{app, zone};
use tracing_subscriber::EnvFilter;

#[derive(Parser)]
#[command(
    name = "mirrordns",
    version,
    about = "Authoritative DNS that answers each client network with its fastest mirror"
)]
struct Cli {
    /// Log format (levels come from RUST_LOG, default info).
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Human)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Human,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the zones over DNS (UDP and TCP) with the control API beside.
    Serve(ServeArgs),
    /// Validate zone files without serving; exit 0 when all are good, 1 otherwise.
    Check {
        /// Zone files to check.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
}

#[derive(clap::Args)]
struct ServeArgs {
    /// A zone file or a directory of *.yaml zone files; may be repeated.
    #[arg(long = "zones", default_value = "zones/")]
    zones: Vec<PathBuf>,
    /// Address to serve DNS on (UDP and TCP); may be repeated. Port 0 picks a free port.
    #[arg(long = "listen", default_value = "127.0.0.1:5353")]
    listen: Vec<SocketAddr>,
    /// Address of the HTTP control API.
    #[arg(long, default_value = "127.0.0.1:8053")]
    api: SocketAddr,
    /// Directory for learned state and the generated API token.
    #[arg(long, default_value = "state")]
    state_dir: PathBuf,
    /// File holding the API bearer token.
    #[arg(long)]
    api_token_file: Option<PathBuf>,
    /// The API bearer token itself (used when --api-token-file is not given).
    #[arg(
        long = "api-token",
        env = "MIRRORDNS_API_TOKEN",
        hide_env_values = true,
        hide = true
    )]
    api_token: Option<String>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_format);
    match cli.command {
        Command::Serve(args) => serve(args),
        Command::Check { files } => check(&files),
    }
}

fn init_logging(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    match format {
        LogFormat::Human => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

fn serve(args: ServeArgs) -> ExitCode {
    let config = app::Config {
        zones: args.zones,
        listen: args.listen,
        api: args.api,
        state_dir: args.state_dir,
        api_token_file: args.api_token_file,
        api_token: args.api_token,
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("mirrordns: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(app::serve(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mirrordns: {e}");
            ExitCode::FAILURE
        }
    }
}

fn check(files: &[PathBuf]) -> ExitCode {
    let mut ok = true;
    for file in files {
        match zone::load_file(file) {
            Ok(z) => println!(
                "{}: ok (zone {}, {} services)",
                file.display(),
                z.origin,
                z.services.len()
            ),
            Err(errors) => {
                ok = false;
                eprintln!("{errors}");
            }
        }
    }
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
