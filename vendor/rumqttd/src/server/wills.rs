//! PATCH (locker-gateway): the map of connections waiting to publish their last will, kept
//! without panics. A connection registers a sender under its client id; a later connection of the
//! same client takes it out and tells the earlier one to fire or cancel its will; a connection
//! that ends takes out its own handler only. Upstream unwrapped `try_send` (which fails when the
//! earlier connection has ended) while holding the map's lock, so one connection that failed
//! during its set-up made its client's next connect panic and poisoned the lock for every connect
//! after it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use flume::Sender;

use super::broker::AwaitingWill;

type Wills = Arc<Mutex<HashMap<String, Sender<AwaitingWill>>>>;

fn lock(wills: &Wills) -> MutexGuard<'_, HashMap<String, Sender<AwaitingWill>>> {
    // The map stays consistent whatever panicked while holding it: each step is one insert or
    // remove.
    wills.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Tells an earlier connection of `client_id` to fire its will (a clean session) or cancel it;
/// nothing to tell if it has ended already.
pub(crate) fn tell_previous(wills: &Wills, client_id: &str, clean_session: bool) {
    let previous = lock(wills).remove(client_id);
    if let Some(sender) = previous {
        let what = if clean_session {
            AwaitingWill::Fire
        } else {
            AwaitingWill::Cancel
        };
        let _ = sender.try_send(what);
    }
}

/// Registers this connection's handler under its client id.
pub(crate) fn register(wills: &Wills, client_id: &str, sender: Sender<AwaitingWill>) {
    lock(wills).insert(client_id.to_owned(), sender);
}

/// Takes out this connection's own handler (`own`), never a later connection's.
pub(crate) fn forget_own(wills: &Wills, client_id: &str, own: &Sender<AwaitingWill>) {
    let mut map = lock(wills);
    if map.get(client_id).is_some_and(|s| s.same_channel(own)) {
        map.remove(client_id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_connection_that_ended_during_set_up_does_not_break_the_next_connect() {
        let wills: Wills = Default::default();
        // A connection registers, then fails before its link is up: it takes out its handler.
        let (first, first_rx) = flume::bounded(1);
        let own = first.clone();
        register(&wills, "lk-1", first);
        drop(first_rx);
        forget_own(&wills, "lk-1", &own);
        assert!(lock(&wills).is_empty());
        // Even with a handler left behind whose receiver is gone, the next connect goes on.
        let (stale, stale_rx) = flume::bounded(1);
        register(&wills, "lk-1", stale);
        drop(stale_rx);
        tell_previous(&wills, "lk-1", true);
        assert!(lock(&wills).is_empty());
        // A poisoned lock (something panicked holding it) does not stop connects either.
        let poisoner = wills.clone();
        let _ = std::thread::spawn(move || {
            let _held = poisoner.lock().unwrap();
            panic!("poisoned on purpose");
        })
        .join();
        assert!(wills.is_poisoned());
        let (next, _next_rx) = flume::bounded(1);
        register(&wills, "lk-1", next);
        assert_eq!(lock(&wills).len(), 1);
    }

    #[test]
    fn a_connection_takes_out_its_own_handler_never_a_later_ones() {
        let wills: Wills = Default::default();
        let (first, first_rx) = flume::bounded(1);
        let own_first = first.clone();
        register(&wills, "lk-1", first);
        // A second connection of the same client: the first is told to fire its will.
        let (second, _second_rx) = flume::bounded(1);
        tell_previous(&wills, "lk-1", true);
        assert!(first_rx.try_recv().is_ok_and(|w| w == AwaitingWill::Fire));
        register(&wills, "lk-1", second);
        // The first ends and cleans up: the second's handler stays.
        forget_own(&wills, "lk-1", &own_first);
        assert_eq!(lock(&wills).len(), 1);
    }
}
