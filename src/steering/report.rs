//! What steering tells the operator in the log about its own state, from
//! wherever that state changed (a health check, a drain by the API or the
//! shared stream).

use tracing::warn;

use super::Engine;

/// Logs every service left with no available mirror, which answers with all.
pub fn warn_failing_open(engine: &Engine) {
    for service in engine.failing_open() {
        warn!(service = %service, "every mirror is drained or down: answering with all of them (fail open)");
    }
}
