//! PATCH (locker-gateway): a filter's log gives back the segments every reader has read.
//!
//! rumqttd keeps each filter's messages in a log of segments and drops the oldest segment only
//! when the log reaches its size limit, whether its messages were delivered or not. With readers
//! that keep up (the gateway reading every locker's uplinks, a locker reading its own commands)
//! that is memory held for nothing, and it grows with every message until the limit. So when a
//! reader catches up with a filter whose log holds full segments, the segments that every reader
//! of the filter has passed are dropped. Only when it is safe to: every subscriber is a
//! connected clean-session client outside a shared group, its request for the filter is found
//! (in its tracker or among the filter's waiters), and no persistent session waits offline with
//! a cursor of its own. The active segment is never dropped; the size limit still applies.

use super::Router;
use crate::router::FilterIdx;

impl Router {
    pub(super) fn trim_read_segments(&mut self, filter_idx: FilterIdx) {
        if self.graveyard.has_sessions() {
            return;
        }
        let Some(data) = self.datalog.native.get(filter_idx) else {
            return;
        };
        let Some(subscribers) = self.subscription_map.get(data.filter()) else {
            return;
        };
        let mut oldest = u64::MAX;
        for &id in subscribers {
            if !self.connections.get(id).is_some_and(|c| c.clean) {
                return;
            }
            let tracked = self
                .scheduler
                .trackers
                .get(id)
                .into_iter()
                .flat_map(|t| t.data_requests.iter());
            let parked = data
                .waiters
                .waiters()
                .iter()
                .filter(|(waiter, _)| *waiter == id)
                .map(|(_, request)| request);
            let mut found = false;
            for request in tracked.chain(parked) {
                if request.filter_idx != filter_idx {
                    continue;
                }
                if request.group.is_some() {
                    return;
                }
                oldest = oldest.min(request.cursor.0);
                found = true;
            }
            if !found {
                return;
            }
        }
        if oldest == u64::MAX {
            return;
        }
        self.datalog.native[filter_idx]
            .log
            .drop_segments_before(oldest);
    }
}

#[cfg(test)]
mod tests {
    use crate::protocol::{Filter, Packet, Publish, QoS, RetainForwardRule, Subscribe};
    use crate::router::connection::Connection;
    use crate::router::iobufs::{Incoming, Outgoing};
    use crate::router::scheduler::{PauseReason, Status};
    use crate::router::{Event, Notification};
    use crate::{RouterConfig, SegmentConfig};
    use parking_lot::Mutex;
    use std::collections::VecDeque;
    use std::sync::Arc;

    use super::Router;

    struct Client {
        id: usize,
        incoming: Arc<Mutex<VecDeque<Packet>>>,
        outgoing: Arc<Mutex<VecDeque<Notification>>>,
        _rx: flume::Receiver<()>,
    }

    fn router() -> Router {
        let segments = SegmentConfig {
            max_segment_size: 4 * 1024,
            max_segment_count: 100,
        };
        Router::new(
            0,
            RouterConfig {
                max_connections: 10,
                max_outgoing_packet_count: 1000,
                max_segment_size: 1024,
                max_segment_count: 2,
                custom_segment: Some([("lockers/+/up".to_owned(), segments)].into()),
                initialized_filters: None,
                shared_subscriptions_strategy: Default::default(),
                max_connection_history: None,
            },
        )
    }

    fn connect(router: &mut Router, name: &str) -> Client {
        let incoming = Incoming::new(name.to_owned());
        let (outgoing, rx) = Outgoing::new(name.to_owned());
        let client = Client {
            id: router.connections.vacant_key(),
            incoming: incoming.buffer.clone(),
            outgoing: outgoing.data_buffer.clone(),
            _rx: rx,
        };
        let connection = Connection::new(None, name.to_owned(), true, false);
        router.events(
            0,
            Event::Connect {
                connection,
                incoming,
                outgoing,
            },
        );
        client
    }

    fn send(router: &mut Router, client: &Client, packet: Packet) {
        client.incoming.lock().push_back(packet);
        router.events(client.id, Event::DeviceData);
        while router.consume().is_some() {}
    }

    fn up(i: usize) -> Packet {
        let publish = Publish {
            dup: false,
            qos: QoS::AtMostOnce,
            retain: false,
            topic: format!("lockers/lk-{i}/up").into(),
            pkid: 0,
            payload: vec![b'x'; 200].into(),
        };
        Packet::Publish(publish, None)
    }

    /// Messages delivered (taken out of the reader's queue when `drain`) and how many segments
    /// the filter's log holds.
    fn deliver(router: &mut Router, reader: &Client, drain: bool) -> (usize, usize) {
        let delivered = if drain {
            let mut outgoing = reader.outgoing.lock();
            let n = outgoing
                .drain(..)
                .filter(|n| matches!(n, Notification::Forward(_)))
                .count();
            drop(outgoing);
            let busy = Status::Paused(PauseReason::Busy);
            if router.scheduler.trackers[reader.id].status == busy {
                router.events(reader.id, Event::Ready);
            }
            while router.consume().is_some() {}
            n
        } else {
            0
        };
        let segments = router.datalog.native.iter().find(|(_, d)| d.filter() == "lockers/+/up");
        (delivered, segments.map_or(0, |(_, d)| d.log.segments().count()))
    }

    #[test]
    fn segments_every_reader_has_read_are_given_back_and_unread_ones_kept() {
        let mut router = router();
        let gateway = connect(&mut router, "gateway");
        let filter = Filter {
            path: "lockers/+/up".to_owned(),
            qos: QoS::AtMostOnce,
            nolocal: false,
            preserve_retain: false,
            retain_forward_rule: RetainForwardRule::Never,
        };
        let subscribe = Subscribe {
            pkid: 1,
            filters: vec![filter],
        };
        send(&mut router, &gateway, Packet::Subscribe(subscribe, None));
        let locker = connect(&mut router, "lk-1");

        // A reader that keeps up: the log never holds more than the active segment and the one
        // just filled (4 KiB segments, about 9 messages each).
        let mut delivered = 0;
        let mut most = 0;
        for i in 0..500 {
            send(&mut router, &locker, up(i));
            let (n, segments) = deliver(&mut router, &gateway, true);
            delivered += n;
            most = most.max(segments);
        }
        assert_eq!(delivered, 500, "every message delivered once");
        assert!(most <= 2, "{most} segments held for a reader that keeps up");

        // A reader that falls behind (its queue of 200 full): nothing it has not read is given
        // back, up to the limit (400 messages unread, about 45 segments); once it has caught up,
        // what it read is.
        for i in 0..600 {
            send(&mut router, &locker, up(i));
        }
        let (_, held) = deliver(&mut router, &gateway, false);
        assert!(held >= 40, "only {held} segments held for 400 unread messages");
        let mut caught_up = 0;
        let mut after = held;
        loop {
            let (n, segments) = deliver(&mut router, &gateway, true);
            if n == 0 {
                break;
            }
            caught_up += n;
            after = segments;
        }
        assert_eq!(caught_up, 600, "every message delivered once");
        assert!(after <= 2, "{after} segments held after catching up, {held} before");
    }
}
