//! The `mirrordns` command line: parses arguments and calls into the library.

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use mirrordns::{agent, app, zone};
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
    /// Run beside a mirror: measure the clients the servers ask about, post the results.
    Agent(AgentArgs),
    /// Replay a latency data set through the steering engine, beside baselines.
    Simulate(SimulateArgs),
    /// Explain why a client gets its answer, from a running server.
    Why {
        /// The service, e.g. www.example.test
        service: String,
        /// The client: an address or a prefix (as an ECS subnet).
        client: String,
        /// The server's API: a URL, or host:port.
        #[arg(long, default_value = "http://127.0.0.1:8053")]
        api: String,
    },
    /// Print a running server's learned table for a service.
    Table {
        /// The service, e.g. www.example.test
        service: String,
        /// The server's API: a URL, or host:port.
        #[arg(long, default_value = "http://127.0.0.1:8053")]
        api: String,
        /// Print the API's JSON as it is.
        #[arg(long)]
        json: bool,
    },
    /// Validate zone files as `serve` would load them, without serving.
    ///
    /// Prints every error and warning with file:line:column. Errors (all that
    /// `serve` refuses, two files with one origin and CNAME loops included)
    /// exit 1; warnings (an in-zone NS target without an address, i.e.
    /// missing glue, and data hidden below a zone cut) are printed but exit 0.
    Check {
        /// Zone files, or directories whose *.yaml files are checked (as `serve --zones`).
        #[arg(required = true)]
        paths: Vec<PathBuf>,
    },
    /// Print an RFC 1035 master file (as BIND, Knot and NSD read it) as a
    /// zone in the YAML format, on stdout.
    ///
    /// Handles $ORIGIN, $TTL, @, relative names, parentheses across lines,
    /// comments and quoted strings with escapes. A record the YAML format
    /// cannot hold (another type than SOA, NS, A, AAAA, CNAME, MX, TXT, SRV,
    /// CAA, PTR; another class than IN; a name outside the zone) is an error
    /// naming its line: exit 1, nothing printed.
    Import {
        /// The master file.
        file: PathBuf,
        /// The zone's name, for files that do not set it with $ORIGIN.
        #[arg(long)]
        origin: Option<String>,
    },
    /// DNSSEC keys: write a key file, print a zone's DS for its parent.
    #[command(subcommand)]
    Dnssec(mirrordns::dnssec_cli::DnssecCommand),
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
    #[command(flatten)]
    token: TokenArgs,
    /// Sub-blocks (and so clusters) each service may hold; beyond it, those
    /// that matter least are dropped.
    #[arg(long, default_value_t = mirrordns::steering::DEFAULT_MAX_BLOCKS)]
    max_blocks: usize,
    /// UDP responses per second per client /24 (/56) and response; 0 turns
    /// response rate limiting off.
    #[arg(long, default_value_t = 1000)]
    rrl_rate: u32,
    /// Every Nth rate-limited response is sent truncated (TC) instead of dropped.
    #[arg(long, default_value_t = 2)]
    rrl_slip: u32,
    /// Sources never rate limited (default: loopback); a list replaces the default.
    #[arg(long, value_delimiter = ',')]
    rrl_exempt: Vec<ipnet::IpNet>,
    /// UDP sockets per listen address, each on a thread of its own
    /// (SO_REUSEPORT); one per core to use them all.
    #[arg(long, default_value_t = 1)]
    udp_threads: usize,
    /// TCP: milliseconds a connection may wait for or take over one request.
    #[arg(long, default_value_t = 10_000)]
    tcp_idle_timeout_ms: u64,
    /// TCP: seconds a connection may live.
    #[arg(long, default_value_t = 120)]
    tcp_lifetime_s: u64,
    /// TCP: connections open at once; more are closed as they arrive.
    #[arg(long, default_value_t = 4096)]
    tcp_max_connections: usize,
    /// Milliseconds between load ticks (moving clusters off mirrors over capacity).
    #[arg(long, default_value_t = 5000)]
    load_interval_ms: u64,
    #[command(flatten)]
    nats: NatsArgs,
    /// Name server identifier sent to resolvers that ask for it (RFC 5001 NSID).
    #[arg(long)]
    nsid: Option<String>,
    /// DNS Cookie secret (32 hex digits), the same on every instance of a
    /// zone so each accepts the others' cookies; else one is generated in
    /// the state directory.
    #[arg(long)]
    cookie_secret_file: Option<PathBuf>,
}

/// Sharing through NATS JetStream (docs/MULTI-NODE.md).
#[derive(clap::Args)]
struct NatsArgs {
    /// NATS server(s), e.g. nats://127.0.0.1:4222 (comma separated for a
    /// cluster): share measurements, drains and load reports with every
    /// instance through JetStream.
    #[arg(long)]
    nats: Option<String>,
    /// JetStream stream name; also the subject prefix (NAME.measurements, ...).
    #[arg(long, default_value = "mirrordns", value_parser = parse_stream_name)]
    nats_stream: String,
    /// NATS credentials file (.creds: a user JWT and its NKey seed).
    #[arg(long)]
    nats_creds: Option<PathBuf>,
    /// Replicas of the streams when they are created (3 on a three-node NATS cluster).
    #[arg(long, default_value_t = 1)]
    nats_replicas: usize,
    /// serve: seconds between publishing this server's probe work (as often
    /// as agents used to poll for it).
    #[arg(long, default_value_t = 10)]
    nats_probe_interval_s: u64,
}

impl NatsArgs {
    fn options(&self) -> Option<mirrordns::nats::Options> {
        Some(mirrordns::nats::Options {
            url: self.nats.clone()?,
            stream: self.nats_stream.clone(),
            creds: self.nats_creds.clone(),
            replicas: self.nats_replicas.max(1),
            probe_interval: std::time::Duration::from_secs(self.nats_probe_interval_s.max(1)),
        })
    }
}

/// A stream name doubles as the subject prefix, so no '.', '*', '>' or spaces.
fn parse_stream_name(name: &str) -> Result<String, String> {
    if !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        Ok(name.to_string())
    } else {
        Err("use letters, digits, '-' and '_'".to_string())
    }
}

#[derive(clap::Args)]
struct SimulateArgs {
    /// A data set of shared/data/latency: a WonderNetwork or RIPE Atlas
    /// country directory, or a square matrix file (one row per line).
    #[arg(long)]
    data: PathBuf,
    /// The square matrix's values are seconds, not milliseconds.
    #[arg(long)]
    seconds: bool,
    /// Mirrors by node name, comma separated (e.g. Frankfurt,NewYork,Singapore).
    #[arg(long, value_delimiter = ',')]
    mirrors: Vec<String>,
    /// Or this many mirrors drawn at random.
    #[arg(long, default_value_t = 8)]
    mirror_count: usize,
    /// Client /16s, each mixing one to three nodes.
    #[arg(long, default_value_t = 400)]
    networks: usize,
    /// Active /24s in each client /16.
    #[arg(long, default_value_t = 8)]
    blocks_per_network: usize,
    #[arg(long, default_value_t = 12)]
    rounds: usize,
    /// Simulated seconds between rounds.
    #[arg(long, default_value_t = 600)]
    round_seconds: u64,
    /// The service's measurements.max_age_s.
    #[arg(long, default_value_t = 3600)]
    max_age_s: u64,
    /// Relative noise on probe answers (0.1 = ±10 %).
    #[arg(long, default_value_t = 0.1)]
    noise: f64,
    /// Share of probe answers lost (posted as timeouts).
    #[arg(long, default_value_t = 0.0)]
    timeouts: f64,
    /// Share of client sub-blocks that answer no active probe at all.
    #[arg(long, default_value_t = 0.0)]
    silent: f64,
    /// Mirrors report one access-log RTT for each sub-block they served.
    #[arg(long)]
    passive: bool,
    /// From this round on, the routes of some client nodes change.
    #[arg(long)]
    route_change_round: Option<usize>,
    /// Share of client nodes whose routes change.
    #[arg(long, default_value_t = 0.2)]
    route_change_share: f64,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Also draw the convergence curves to this SVG file.
    #[arg(long)]
    svg: Option<PathBuf>,
}

/// The API bearer token: a file, or the environment.
#[derive(clap::Args)]
struct TokenArgs {
    /// File holding the API bearer token (else MIRRORDNS_API_TOKEN).
    #[arg(long)]
    api_token_file: Option<PathBuf>,
    /// The token itself, from the environment.
    #[arg(
        long = "api-token",
        env = "MIRRORDNS_API_TOKEN",
        hide_env_values = true,
        hide = true
    )]
    api_token: Option<String>,
}

#[derive(clap::Args)]
struct AgentArgs {
    /// A server's API, e.g. http://ns1.example.net:8053; may be repeated.
    #[arg(
        long = "server",
        required_unless_present = "nats",
        conflicts_with = "nats"
    )]
    servers: Vec<String>,
    /// Or: take probe work from, and publish results to, NATS JetStream,
    /// shared by every server (docs/MULTI-NODE.md).
    #[command(flatten)]
    nats: NatsArgs,
    /// This mirror's name, as the zones call it.
    #[arg(long)]
    mirror: String,
    #[command(flatten)]
    token: TokenArgs,
    /// How to measure: ICMP echo where allowed (auto), or TCP connect time.
    #[arg(long, value_enum, default_value_t = agent::MethodChoice::Auto)]
    method: agent::MethodChoice,
    /// The port TCP probes connect to (a reset counts as a reply).
    #[arg(long, default_value_t = 443)]
    probe_port: u16,
    /// A probe with no answer in this time is posted as a timeout.
    #[arg(long, default_value_t = 1000)]
    timeout_ms: u64,
    /// Seconds between fetches of probe work from each server.
    #[arg(long, default_value_t = 10)]
    interval_s: u64,
    /// Probes in flight at once, at most.
    #[arg(long, default_value_t = 64)]
    max_inflight: usize,
    /// Probes started per second, at most (0: no limit).
    #[arg(long, default_value_t = 200.0)]
    rate: f64,
    /// Follow this access log for passive RTTs (client address first, TCP RTT in µs last).
    #[arg(long)]
    access_log: Option<PathBuf>,
    /// Format of --access-log.
    #[arg(long = "access-log-format", value_enum, default_value_t = AccessLogFormat::NginxTcpinfo)]
    access_log_format: AccessLogFormat,
    /// Seconds over which passive RTTs are aggregated (median per sub-block).
    #[arg(long, default_value_t = 60)]
    passive_window_s: u64,
    /// Sub-block lengths passive RTTs are aggregated at.
    #[arg(long, default_value_t = 24)]
    block_v4: u8,
    #[arg(long, default_value_t = 48)]
    block_v6: u8,
}

/// Access log formats `--access-log` understands.
#[derive(Clone, Copy, ValueEnum)]
enum AccessLogFormat {
    /// nginx with `$remote_addr` first and `$tcpinfo_rtt` last.
    NginxTcpinfo,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_format);
    match cli.command {
        Command::Serve(args) => serve(args),
        Command::Agent(args) => agent(args),
        Command::Table { service, api, json } => table(&service, &api, json),
        Command::Simulate(args) => simulate(args),
        Command::Why {
            service,
            client,
            api,
        } => match mirrordns::table::why(&api, &service, &client) {
            Ok(text) => {
                print!("{text}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("mirrordns: {e}");
                ExitCode::FAILURE
            }
        },
        Command::Check { paths } => check(&paths),
        Command::Import { file, origin } => import(&file, origin.as_deref()),
        Command::Dnssec(command) => mirrordns::dnssec_cli::run(command),
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
        api_token_file: args.token.api_token_file,
        api_token: args.token.api_token,
        load_interval: std::time::Duration::from_millis(args.load_interval_ms.max(100)),
        max_blocks: args.max_blocks,
        udp_threads: args.udp_threads.max(1),
        nats: args.nats.options(),
        nsid: args.nsid,
        cookie_secret_file: args.cookie_secret_file,
        tcp: mirrordns::dns::TcpLimits {
            idle: std::time::Duration::from_millis(args.tcp_idle_timeout_ms.max(1)),
            lifetime: std::time::Duration::from_secs(args.tcp_lifetime_s.max(1)),
            max_connections: args.tcp_max_connections.max(1),
        },
        rrl: mirrordns::dns::RrlConfig {
            rate: args.rrl_rate,
            slip: args.rrl_slip,
            exempt: if args.rrl_exempt.is_empty() {
                mirrordns::dns::RrlConfig::default_exempt()
            } else {
                args.rrl_exempt
            },
        },
    };
    run_async(app::serve(config))
}

fn agent(args: AgentArgs) -> ExitCode {
    let token = match (&args.token.api_token_file, args.token.api_token) {
        (Some(file), _) => match std::fs::read_to_string(file) {
            Ok(t) => Some(t.trim().to_string()),
            Err(e) => {
                eprintln!("mirrordns: cannot read {}: {e}", file.display());
                return ExitCode::FAILURE;
            }
        },
        (None, token) => token,
    };
    let AccessLogFormat::NginxTcpinfo = args.access_log_format;
    let options = agent::Options {
        servers: args.servers,
        nats: args.nats.options(),
        mirror: args.mirror,
        token,
        method: args.method,
        probe_port: args.probe_port,
        timeout: std::time::Duration::from_millis(args.timeout_ms),
        interval: std::time::Duration::from_secs(args.interval_s),
        max_inflight: args.max_inflight,
        rate: args.rate,
        access_log: args.access_log,
        passive_window: std::time::Duration::from_secs(args.passive_window_s),
        block_v4: args.block_v4,
        block_v6: args.block_v6,
    };
    run_async(agent::run(options))
}

/// Runs `future` on a multi-threaded runtime; its error ends the process with 1.
fn run_async<E: std::fmt::Display>(
    future: impl std::future::Future<Output = Result<(), E>>,
) -> ExitCode {
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("mirrordns: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(future) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mirrordns: {e}");
            ExitCode::FAILURE
        }
    }
}

fn simulate(args: SimulateArgs) -> ExitCode {
    match run_simulation(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mirrordns: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run_simulation(args: &SimulateArgs) -> Result<(), String> {
    use mirrordns::simulate::{
        self, LatencyMatrix, RouteChange, RunOptions, Scenario, ScenarioShape,
    };
    let matrix = LatencyMatrix::load(&args.data, args.seconds)
        .map_err(|e| format!("{}: {e}", args.data.display()))?;
    let mirrors = if args.mirrors.is_empty() {
        None
    } else {
        let find = |name: &String| {
            matrix
                .names
                .iter()
                .position(|n| n.eq_ignore_ascii_case(name))
                .ok_or_else(|| format!("no node {name:?} in the data set"))
        };
        Some(
            args.mirrors
                .iter()
                .map(find)
                .collect::<Result<Vec<_>, _>>()?,
        )
    };
    let shape = ScenarioShape {
        mirror_count: args.mirror_count,
        networks: args.networks,
        blocks_per_network: args.blocks_per_network,
        seed: args.seed,
        mirrors,
    };
    let scenario = Scenario::generate(&matrix, &shape);
    let options = RunOptions {
        round_seconds: args.round_seconds,
        max_age_s: args.max_age_s,
        timeouts: args.timeouts,
        silent: args.silent,
        passive: args.passive,
        route_change: args.route_change_round.map(|round| RouteChange {
            round,
            share: args.route_change_share,
        }),
        ..RunOptions::new(args.rounds, args.noise, args.seed)
    };
    let report = simulate::run(&matrix, &scenario, &options)?;
    let names: Vec<&str> = scenario
        .mirrors
        .iter()
        .map(|m| matrix.names[*m].as_str())
        .collect();
    println!(
        "{} nodes; mirrors {}; {} client sub-blocks in {} /16s; noise {} %; seed {}",
        matrix.len(),
        names.join(","),
        scenario.blocks.len(),
        args.networks,
        args.noise * 100.0,
        args.seed
    );
    print!("{}", simulate::report::table(&report));
    // Flaps are counted once learned (from round 1) and before any route change.
    let settled = args
        .route_change_round
        .unwrap_or(args.rounds)
        .min(args.rounds);
    println!(
        "answer changes per sub-block and hour, rounds 2 to {}: {:.4}",
        settled.saturating_sub(1),
        simulate::report::flaps_per_hour(&report, scenario.blocks.len(), 1..settled)
    );
    if let Some(svg) = &args.svg {
        let title = format!("{} mirrors, noise {} %", names.len(), args.noise * 100.0);
        simulate::report::svg(&report, &title, svg)?;
        println!("plot: {}", svg.display());
    }
    Ok(())
}

fn table(service: &str, api: &str, json: bool) -> ExitCode {
    match mirrordns::table::fetch(api, service) {
        Ok(table) if json => {
            println!("{}", table.json);
            ExitCode::SUCCESS
        }
        Ok(table) => {
            print!("{}", table.render());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("mirrordns: {e}");
            ExitCode::FAILURE
        }
    }
}

fn import(file: &std::path::Path, origin: Option<&str>) -> ExitCode {
    let source = match std::fs::read_to_string(file) {
        Ok(source) => source,
        Err(e) => {
            eprintln!("mirrordns: {}: cannot read: {e}", file.display());
            return ExitCode::FAILURE;
        }
    };
    match zone::import(file, &source, origin) {
        Ok(yaml) => {
            print!("{yaml}");
            ExitCode::SUCCESS
        }
        Err(errors) => {
            for e in &errors {
                eprintln!("{e}");
            }
            ExitCode::FAILURE
        }
    }
}

fn check(paths: &[PathBuf]) -> ExitCode {
    match zone::check(paths, &mut std::io::stdout(), &mut std::io::stderr()) {
        Ok(true) => ExitCode::SUCCESS,
        _ => ExitCode::FAILURE,
    }
}
