//! Wires the server together: loads the zones, binds the DNS listeners and the
//! control API, and reloads on SIGHUP or `POST /v1/reload`.

use std::error::Error;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use parking_lot::Mutex;
use tokio::signal::unix::{SignalKind, signal};
use tracing::{error, info, warn};

use crate::api;
use crate::dns::{self, Catalog, CookieSecret, Handler, RrlConfig, TcpLimits};
use crate::health::Health;
use crate::metrics::{self, Counters};
use crate::nats;
use crate::state::{self, StateDir};
use crate::steering::Engine;
use crate::zone::{self, ZoneErrors};
use std::sync::atomic::Ordering;

/// What `mirrordns serve` was asked to do.
pub struct Config {
    pub zones: Vec<PathBuf>,
    pub listen: Vec<SocketAddr>,
    pub api: SocketAddr,
    pub state_dir: PathBuf,
    pub api_token_file: Option<PathBuf>,
    pub api_token: Option<String>,
    /// How often clusters are moved off (and back onto) mirrors over capacity.
    pub load_interval: std::time::Duration,
    /// Sub-blocks each service may hold.
    pub max_blocks: usize,
    pub rrl: RrlConfig,
    pub tcp: TcpLimits,
    /// UDP sockets (and threads) per listen address.
    pub udp_threads: usize,
    /// Share measurements with other instances through NATS JetStream.
    pub nats: Option<nats::Options>,
    /// `--nsid`: the name server identifier sent to requestors that ask.
    pub nsid: Option<String>,
    /// `--cookie-secret-file`: the DNS Cookie secret shared by instances;
    /// else one generated in the state directory.
    pub cookie_secret_file: Option<PathBuf>,
}

/// The running server's zones and steering state.
pub struct App {
    zone_paths: Vec<PathBuf>,
    /// Where signed zones without a key file keep their generated key.
    state_dir: PathBuf,
    engine: Arc<Engine>,
    health: Health,
    counters: Arc<Counters>,
    handler: Arc<Handler>,
    reload_lock: Mutex<()>,
}

/// What a successful reload loaded.
#[derive(Debug, Clone, Copy)]
pub struct Loaded {
    pub zones: usize,
    pub services: usize,
}

impl App {
    pub fn load(
        zone_paths: Vec<PathBuf>,
        state_dir: PathBuf,
        max_blocks: usize,
        dns: dns::Options,
    ) -> Result<App, ZoneErrors> {
        let zones = load_zones(&zone_paths, &state_dir, None)?;
        let engine = Arc::new(Engine::default());
        engine.set_max_blocks(max_blocks);
        let steering = engine.bind(&zones);
        Ok(App {
            zone_paths,
            state_dir,
            health: Health::new(Arc::clone(&engine)),
            counters: Arc::default(),
            engine,
            handler: Arc::new(Handler::with_options(Catalog::new(zones, steering), dns)),
            reload_lock: Mutex::new(()),
        })
    }

    pub fn shared_engine(&self) -> Arc<Engine> {
        Arc::clone(&self.engine)
    }

    pub fn shared_counters(&self) -> Arc<Counters> {
        Arc::clone(&self.counters)
    }

    pub fn handler(&self) -> Arc<Handler> {
        Arc::clone(&self.handler)
    }

    /// Loads every zone file again and swaps them in whole; on any error the
    /// zones that were serving keep serving.
    pub fn reload(&self) -> Result<Loaded, ZoneErrors> {
        let _one_at_a_time = self.reload_lock.lock();
        let serving = self.handler.catalog();
        let zones = load_zones(&self.zone_paths, &self.state_dir, Some(&serving.zones))?;
        let loaded = Loaded {
            zones: zones.zones().len(),
            services: zones.services().count(),
        };
        let steering = self.engine.bind(&zones);
        self.health.start(&zones);
        self.handler.swap(Catalog::new(zones, steering));
        Ok(loaded)
    }

    /// Starts the health checks of the zones loaded at start.
    pub fn start_health_checks(&self) {
        self.counters
            .last_reload
            .store(crate::steering::now(), Ordering::Relaxed);
        self.health.start(&self.handler.catalog().zones);
    }

    /// [`App::reload`] with the outcome logged, for every way a reload is asked for.
    pub fn reload_logged(&self, trigger: &str) -> Result<Loaded, ZoneErrors> {
        let result = self.reload();
        let counter = if result.is_ok() {
            &self.counters.reloads_ok
        } else {
            &self.counters.reloads_failed
        };
        counter.fetch_add(1, Ordering::Relaxed);
        self.engine.record_reload(
            trigger,
            match &result {
                Ok(l) => Ok((l.zones, l.services)),
                Err(e) => Err(first_chars(&e.to_string(), 1000)),
            },
        );
        if result.is_ok() {
            self.counters
                .last_reload
                .store(crate::steering::now(), Ordering::Relaxed);
        }
        match &result {
            Ok(l) => info!(
                trigger,
                zones = l.zones,
                services = l.services,
                "zones reloaded"
            ),
            Err(e) => error!(trigger, "reload rejected, old zones keep serving:\n{e}"),
        }
        result
    }
}

impl api::Reload for App {
    fn reload_zones(&self) -> Result<api::Reloaded, String> {
        self.reload_logged("api")
            .map(|l| api::Reloaded {
                zones: l.zones,
                services: l.services,
            })
            .map_err(|e| e.to_string())
    }
}

/// At most `n` characters of `text` (an event keeps a reload's error short).
fn first_chars(text: &str, n: usize) -> String {
    match text.char_indices().nth(n) {
        Some((end, _)) => format!("{}...", &text[..end]),
        None => text.to_string(),
    }
}

/// Loads the zones as `mirrordns check` does ([`zone::load_set`]), with the
/// signing keys of `state_dir` and the signers of the zones `previous`
/// serves, and logs the warnings: missing glue, data below a zone cut, and
/// a set that serves nothing at all.
fn load_zones(
    paths: &[PathBuf],
    state_dir: &std::path::Path,
    previous: Option<&zone::ZoneSet>,
) -> Result<zone::ZoneSet, ZoneErrors> {
    let keys = zone::Keys::Serve {
        state_dir,
        previous,
    };
    let (zones, warnings) = zone::load_set(paths, keys).into_result()?;
    for warning in &warnings {
        warn!("{warning}");
    }
    if zones.zones().is_empty() {
        let paths: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
        warn!(
            zones = %paths.join(", "),
            "no zone files found: serving nothing, every query is answered REFUSED until zone files are added and reloaded"
        );
    }
    Ok(zones)
}

/// Runs `mirrordns serve` until SIGTERM or SIGINT.
pub async fn serve(config: Config) -> Result<(), Box<dyn Error>> {
    // The lock first: a second server on the same directory must stop
    // before it touches anything.
    let state_dir = StateDir::open(&config.state_dir)?;
    // Only sharing needs a lasting name; a single server writes none.
    let sharing = match &config.nats {
        Some(options) => Some((options, state_dir.instance_id()?)),
        None => None,
    };
    let dns_options = dns_options(&config)?;
    let app = Arc::new(App::load(
        config.zones.clone(),
        config.state_dir.clone(),
        config.max_blocks,
        dns_options,
    )?);
    let (journal, recovery) = state_dir.recover(app.shared_engine())?;
    state::log_recovery(&config.state_dir, &recovery);
    let catalog = app.handler().catalog();
    for zone in catalog.zones.zones() {
        info!(zone = %zone.origin, file = %zone.file.display(), services = zone.services.len(), "zone loaded");
    }
    for addr in &config.listen {
        let listeners = dns::bind(*addr, config.udp_threads)
            .await
            .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
        info!("dns listening on {} (udp+tcp)", listeners.local_addr()?);
        tokio::spawn(listeners.serve(app.handler(), config.tcp));
    }
    let token = api::token::resolve(
        config.api_token_file.as_deref(),
        config.api_token.as_deref(),
        &config.state_dir,
    )?;
    let api_listener = tokio::net::TcpListener::bind(config.api)
        .await
        .map_err(|e| format!("cannot listen on {} for the API: {e}", config.api))?;
    info!("api listening on {}", api_listener.local_addr()?);
    let writes = match sharing {
        None => api::Writes::Local(journal.clone()),
        Some((options, instance_id)) => {
            info!(url = %options.url, stream = %options.stream, instance = %instance_id, position = recovery.stream_seq, "sharing measurements through NATS JetStream");
            api::Writes::Shared(Box::new(
                nats::start(
                    options,
                    &instance_id,
                    app.shared_engine(),
                    app.shared_counters(),
                    journal.clone(),
                    recovery.stream_seq,
                )
                .await?,
            ))
        }
    };
    let handles = api::Handles {
        engine: app.shared_engine(),
        counters: app.shared_counters(),
        writes,
        reload: Arc::clone(&app) as Arc<dyn api::Reload>,
        metrics: metrics::Sources::new(app.handler(), app.shared_engine(), app.shared_counters()),
    };
    tokio::spawn(api::serve(api_listener, handles, token));
    app.start_health_checks();
    tokio::spawn(rebalance_loop(app.shared_engine(), config.load_interval));
    tokio::spawn(reload_on_sighup(Arc::clone(&app)));
    wait_for_shutdown().await?;
    info!("shutting down");
    // A snapshot now saves the next start from replaying the journal.
    if let Err(e) = journal.snapshot().await {
        error!(error = %e, "final snapshot failed; the journal keeps everything");
    }
    Ok(())
}

/// The DNS handler's options: rate limiting, NSID, the cookie secret.
fn dns_options(config: &Config) -> Result<dns::Options, Box<dyn Error>> {
    let nsid = config.nsid.as_ref().map(|n| n.as_bytes().to_vec());
    if nsid
        .as_ref()
        .is_some_and(|n| n.is_empty() || n.len() > dns::MAX_NSID_LEN)
    {
        return Err(format!("--nsid takes 1 to {} bytes", dns::MAX_NSID_LEN).into());
    }
    let cookie_secret = CookieSecret::load(config.cookie_secret_file.as_deref(), &config.state_dir)
        .map_err(|e| format!("dns cookie secret: {e}"))?;
    Ok(dns::Options {
        rrl: config.rrl.clone(),
        nsid,
        cookie_secret,
    })
}

/// Runs the load ticks and logs every move.
async fn rebalance_loop(engine: Arc<Engine>, interval: std::time::Duration) {
    let mut ticker = tokio::time::interval(interval);
    ticker.tick().await;
    let mut last = std::time::Instant::now();
    loop {
        ticker.tick().await;
        let elapsed = last.elapsed().as_secs_f64();
        last = std::time::Instant::now();
        let engine = Arc::clone(&engine);
        let moves =
            tokio::task::spawn_blocking(move || engine.rebalance(crate::steering::now(), elapsed))
                .await;
        for (m, from, to) in moves.unwrap_or_default() {
            if m.back {
                info!(service = %m.service, cluster = %m.cluster, from = %from, to = %to, qps = m.qps, "cluster moved back to its best mirror: load fell");
            } else {
                info!(service = %m.service, cluster = %m.cluster, from = %from, to = %to, qps = m.qps, "cluster moved off an overloaded mirror");
            }
        }
    }
}

async fn reload_on_sighup(app: Arc<App>) {
    let Ok(mut hangups) = signal(SignalKind::hangup()) else {
        error!("cannot install the SIGHUP handler; reload through the API only");
        return;
    };
    while hangups.recv().await.is_some() {
        let app = Arc::clone(&app);
        // Zone files (and prefix lists) can be large: load off the async workers.
        let _ = tokio::task::spawn_blocking(move || app.reload_logged("SIGHUP")).await;
    }
}

async fn wait_for_shutdown() -> std::io::Result<()> {
    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    tokio::select! {
        _ = terminate.recv() => {}
        _ = interrupt.recv() => {}
    }
    Ok(())
}
