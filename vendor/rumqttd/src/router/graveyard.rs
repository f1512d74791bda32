use std::collections::{HashMap, HashSet, VecDeque};

use super::{
    scheduler::{PauseReason, Tracker},
    ConnectionEvents,
};

/// What is kept of clients that disconnected: the session of a persistent client, and the recent
/// connection events of any client (for the console).
///
/// PATCH (locker-gateway): the events of clean-session clients are kept for at most `limit`
/// clients, the oldest forgotten first (upstream kept them for every client id ever seen).
pub struct Graveyard {
    connections: HashMap<String, (u64, SavedState)>,
    /// Clean-session entries in the order they were saved, with the generation saved.
    history: VecDeque<(String, u64)>,
    histories: usize,
    generation: u64,
    limit: usize,
}

impl Graveyard {
    /// PATCH (locker-gateway): history kept for at most `limit` clean-session clients.
    pub fn with_limit(limit: usize) -> Graveyard {
        Graveyard {
            connections: HashMap::new(),
            history: VecDeque::new(),
            histories: 0,
            generation: 0,
            limit,
        }
    }

    /// Add a new connection.
    /// Return tracker of previous connection if connection id already exists
    pub fn retrieve(&mut self, id: &str) -> Option<SavedState> {
        let (_, saved) = self.connections.remove(id)?;
        if saved.session_state.is_none() {
            self.histories -= 1;
        }
        Some(saved)
    }

    /// Save connection tracker
    pub fn save_state(
        &mut self,
        mut tracker: Tracker,
        subscriptions: HashSet<String>,
        metrics: ConnectionEvents,
        unacked_pubrels: VecDeque<u16>,
    ) {
        tracker.pause(PauseReason::Busy);
        let id = tracker.id.clone();

        let session_state = SessionState {
            tracker,
            subscriptions,
            unacked_pubrels,
        };

        self.insert(
            id,
            SavedState {
                session_state: Some(session_state),
                metrics,
            },
        );
    }

    /// Save only metrics for connection
    pub fn save_metrics(&mut self, id: String, metrics: ConnectionEvents) {
        self.insert(
            id.clone(),
            SavedState {
                session_state: None,
                metrics,
            },
        );
        self.history.push_back((id, self.generation));
        self.histories += 1;
        while self.histories > self.limit {
            let Some((oldest, generation)) = self.history.pop_front() else {
                break;
            };
            let current = matches!(
                self.connections.get(&oldest),
                Some((g, saved)) if *g == generation && saved.session_state.is_none()
            );
            if current {
                self.connections.remove(&oldest);
                self.histories -= 1;
            }
        }
        // Entries of clients that came back are skipped above; drop them now and then.
        if self.history.len() > 2 * self.limit.max(16) {
            let connections = &self.connections;
            self.history.retain(|(id, generation)| {
                matches!(connections.get(id), Some((g, _)) if g == generation)
            });
        }
    }

    fn insert(&mut self, id: String, saved: SavedState) {
        self.generation += 1;
        if let Some((_, old)) = self.connections.insert(id, (self.generation, saved)) {
            if old.session_state.is_none() {
                self.histories -= 1;
            }
        }
    }

    /// PATCH (locker-gateway): whether a persistent session waits for its client (its requests
    /// hold cursors into filters' logs).
    pub fn has_sessions(&self) -> bool {
        self.connections.len() > self.histories
    }

    /// PATCH (locker-gateway): clients remembered, for tests.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.connections.len()
    }
}

#[derive(Debug)]
pub struct SavedState {
    pub session_state: Option<SessionState>,
    pub metrics: ConnectionEvents,
}

#[derive(Debug)]
pub struct SessionState {
    pub tracker: Tracker,
    pub subscriptions: HashSet<String>,
    // used for pubrel in qos2
    pub unacked_pubrels: VecDeque<u16>,
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn the_history_of_clean_sessions_is_bounded_and_sessions_are_kept() {
        let mut graveyard = Graveyard::with_limit(100);
        graveyard.save_state(
            Tracker::new("persistent".to_owned()),
            HashSet::new(),
            ConnectionEvents::default(),
            VecDeque::new(),
        );
        for round in 0..5 {
            for i in 0..1000 {
                let id = format!("locker-{i}");
                // A client that comes back takes its history out and leaves it again.
                if round > 0 {
                    graveyard.retrieve(&id);
                }
                graveyard.save_metrics(id, ConnectionEvents::default());
            }
        }
        assert_eq!(graveyard.len(), 101);
        assert!(graveyard.history.len() <= 200);
        // The newest are the ones kept.
        assert!(graveyard.retrieve("locker-999").is_some());
        assert!(graveyard.retrieve("locker-0").is_none());
        let saved = graveyard.retrieve("persistent").expect("a session is not forgotten");
        assert!(saved.session_state.is_some());
    }

    #[test]
    fn a_limit_of_zero_keeps_no_clean_session_history() {
        let mut graveyard = Graveyard::with_limit(0);
        for i in 0..1000 {
            graveyard.save_metrics(format!("locker-{i}"), ConnectionEvents::default());
        }
        assert_eq!(graveyard.len(), 0);
        assert!(graveyard.history.len() <= 32);
    }
}
