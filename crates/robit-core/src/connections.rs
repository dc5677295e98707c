//! Which platform connections are up, for the binary's `/readyz`.
//!
//! Adapters register each long-lived connection they hold (a Discord shard, a Slack Socket
//! Mode socket) and flip it as it connects and drops; the binary reports unready while any
//! registered connection is down. An intake without a connection of its own (the Slack
//! Events API, which the platform calls) registers nothing. This module only keeps flags: it
//! must not decide what a connection is or reconnect anything.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// The registry; clones share it.
#[derive(Debug, Clone, Default)]
pub struct Connections {
    states: Arc<Mutex<BTreeMap<String, bool>>>,
}

/// One registered connection's switch.
#[derive(Debug, Clone)]
pub struct ConnectionState {
    name: String,
    states: Arc<Mutex<BTreeMap<String, bool>>>,
}

impl Connections {
    /// Registers `name` (down until set up); registering a name again returns its switch.
    pub fn register(&self, name: impl Into<String>) -> ConnectionState {
        let name = name.into();
        self.states
            .lock()
            .expect("connections poisoned")
            .entry(name.clone())
            .or_insert(false);
        ConnectionState {
            name,
            states: self.states.clone(),
        }
    }

    /// Every registered connection and whether it is up, by name.
    pub fn snapshot(&self) -> Vec<(String, bool)> {
        self.states
            .lock()
            .expect("connections poisoned")
            .iter()
            .map(|(name, up)| (name.clone(), *up))
            .collect()
    }

    /// The names of connections that are down.
    pub fn down(&self) -> Vec<String> {
        self.snapshot()
            .into_iter()
            .filter(|(_, up)| !up)
            .map(|(name, _)| name)
            .collect()
    }
}

impl ConnectionState {
    pub fn set(&self, up: bool) {
        let mut states = self.states.lock().expect("connections poisoned");
        if states.insert(self.name.clone(), up) != Some(up) {
            tracing::info!(connection = %self.name, up, "connection state changed");
        }
    }

    /// Removes the connection from readiness (the adapter stopped on purpose).
    pub fn forget(&self) {
        self.states
            .lock()
            .expect("connections poisoned")
            .remove(&self.name);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_connections_that_are_down() {
        let connections = Connections::default();
        assert!(connections.down().is_empty());
        let a = connections.register("discord:shard:0");
        let b = connections.register("slack:socket");
        assert_eq!(connections.down(), ["discord:shard:0", "slack:socket"]);
        a.set(true);
        b.set(true);
        assert!(connections.down().is_empty());
        b.set(false);
        assert_eq!(connections.down(), ["slack:socket"]);
        b.forget();
        assert!(connections.down().is_empty());
    }
}
