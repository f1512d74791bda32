//! PATCH (locker-gateway): the tests of the patch (vendor/rumqttd/PATCHES.md) of `logs.rs`.

use super::DataLog;
use crate::router::shared_subs::Strategy;
use crate::RouterConfig;

fn config() -> RouterConfig {
    RouterConfig {
        max_segment_size: 1024,
        max_connections: 10,
        max_segment_count: 10,
        max_outgoing_packet_count: 1024,
        custom_segment: None,
        initialized_filters: None,
        shared_subscriptions_strategy: Strategy::RoundRobin,
        max_connection_history: None,
    }
}

/// A locker connecting: it subscribes to its own `down` topic and publishes on `up` and
/// `status`. Returns the topic/filter comparisons it cost.
fn locker_connects(data: &mut DataLog, i: usize) -> u64 {
    let before = data.scans;
    data.next_native_offset(&format!("lockers/{i}/down"));
    data.matches(&format!("lockers/{i}/up"));
    data.matches(&format!("lockers/{i}/status"));
    data.scans - before
}

#[test]
fn comparisons_per_connecting_locker_stay_flat_from_100_to_1000_lockers() {
    let mut data = DataLog::new(config()).unwrap();
    // The gateway's subscriptions (wildcards) and an events topic nobody subscribes to.
    data.next_native_offset("lockers/+/up");
    data.next_native_offset("lockers/+/status");
    let mut at = std::collections::HashMap::new();
    for i in 0..1000 {
        let cost = locker_connects(&mut data, i);
        if i == 99 || i == 999 {
            at.insert(i + 1, cost);
        }
    }
    assert_eq!(data.filter_count(), 1002);
    // Two topics, each compared with the two wildcard filters only.
    assert_eq!(at[&100], 4);
    assert_eq!(at[&1000], 4);
    // A publish nobody subscribes to is matched once, then found in the cache.
    let before = data.scans;
    for _ in 0..10 {
        assert_eq!(data.matches("events/rental.started"), Some(vec![]));
    }
    assert_eq!(data.scans - before, 2);
}

#[test]
fn matching_agrees_with_comparing_every_filter() {
    let filters = [
        "a/b", "a/+", "a/#", "#", "+/b", "a/b/c", "$SYS/x", "$SYS/#", "+", "a", "a/b/+",
    ];
    let topics = ["a/b", "a", "a/b/c", "x/b", "$SYS/x", "b", "a/c", "", "/"];
    let mut data = DataLog::new(config()).unwrap();
    // Half the filters before the topics are first published, half after.
    let (early, late) = filters.split_at(filters.len() / 2);
    for f in early {
        data.next_native_offset(f);
    }
    for t in topics {
        data.matches(t);
    }
    for f in late {
        data.next_native_offset(f);
    }
    for t in topics.iter().chain(["a/b/d", "$SYS/y"].iter()) {
        let mut got = data.matches(t).unwrap();
        got.sort();
        let mut want: Vec<usize> = filters
            .iter()
            .filter(|f| crate::protocol::matches(t, f))
            .map(|f| *data.filter_indexes.get(*f).unwrap())
            .collect();
        want.sort();
        assert_eq!(got, want, "topic {t:?}");
    }
}

#[test]
fn a_retained_message_of_an_exact_filter_is_looked_up_not_searched() {
    use crate::protocol::Publish;
    let mut data = DataLog::new(config()).unwrap();
    for i in 0..1000 {
        let topic = format!("lockers/{i}/status");
        let publish = Publish::new(topic.clone(), "online".to_owned(), true);
        data.insert_to_retained_publishes(publish, None, topic);
    }
    let before = data.scans;
    let found = data.read_retained_messages("lockers/7/status");
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].0.payload.as_ref(), b"online");
    assert!(data.read_retained_messages("lockers/7/up").is_empty());
    assert_eq!(data.scans, before);
    // A wildcard filter still finds every match.
    assert_eq!(data.read_retained_messages("lockers/+/status").len(), 1000);
    assert_eq!(data.scans - before, 1000);
}

#[test]
fn kept_messages_hold_their_own_bytes_and_queues_start_empty() {
    use crate::protocol::Publish;
    use crate::router::iobufs::{Incoming, Outgoing};
    // A message read out of a connection's 10 KiB buffer, once kept, does not keep it.
    let buffer = bytes::Bytes::from(vec![b'x'; 10 * 1024]);
    let topic = "lockers/1/status".to_owned();
    let publish = Publish {
        dup: false,
        qos: crate::protocol::QoS::AtMostOnce,
        retain: true,
        topic: bytes::Bytes::from(topic.clone()),
        pkid: 0,
        payload: buffer.slice(0..6),
    };
    let mut publish = publish;
    super::owned_bytes(&mut publish);
    let mut data = DataLog::new(config()).unwrap();
    data.insert_to_retained_publishes(publish, None, topic.clone());
    let kept = &data.retained_publishes[&topic].publish.payload;
    assert_eq!(kept.as_ref(), b"xxxxxx");
    let range = buffer.as_ptr() as usize..buffer.as_ptr() as usize + buffer.len();
    assert!(!range.contains(&(kept.as_ptr() as usize)));
    // A new connection's queues reserve nothing until used.
    let incoming = Incoming::new("locker-1".to_owned());
    assert_eq!(incoming.buffer.lock().capacity(), 0);
    let (outgoing, _rx) = Outgoing::new("locker-1".to_owned());
    assert_eq!(outgoing.data_buffer.lock().capacity(), 0);
    assert_eq!(super::AckLog::new().committed.capacity(), 0);
    let (idx, _) = data.next_native_offset("lockers/1/down");
    assert_eq!(data.native[idx].waiters.waiters().capacity(), 0);
    // A filter's log has room for its one segment, not for `max_segment_count` (10 here).
    assert_eq!(data.native[idx].log.room(), 1);
}

#[test]
fn a_filters_segment_limit_bounds_the_memory_its_messages_take() {
    use crate::protocol::Publish;
    let mut config = config();
    let segment = 16 * 1024;
    config.max_segment_size = segment;
    config.max_segment_count = 2;
    let mut data = super::Data::<super::PublishData>::new("lockers/+/status", &config);
    let mut notifications = std::collections::VecDeque::new();
    for i in 0..5_000 {
        let publish = Publish {
            dup: false,
            qos: crate::protocol::QoS::AtLeastOnce,
            retain: false,
            topic: bytes::Bytes::from(format!("lockers/lk-{i:05}/status")),
            pkid: 0,
            payload: bytes::Bytes::from_static(br#"{"online":false,"session":12345678}"#),
        };
        data.append((publish, None).into(), &mut notifications);
    }
    let entry = std::mem::size_of::<super::PublishData>();
    let memory: usize = data
        .log
        .segments()
        .map(|s| {
            let bytes: usize =
                s.data.iter().map(|d| d.publish.topic.len() + d.publish.payload.len()).sum();
            s.data.capacity() * entry + bytes
        })
        .sum();
    // Two full segments and the active one, each within a segment and one entry.
    let bound = 3 * (segment + entry + 64);
    assert!(memory <= bound, "{memory} bytes kept for a limit of 2 x {segment}");
}

#[test]
fn a_disconnect_cleans_the_waiters_of_its_own_filters_only() {
    use crate::router::DataRequest;
    let mut data = DataLog::new(config()).unwrap();
    let request = |filter: &str, filter_idx| DataRequest {
        filter: filter.to_owned(),
        filter_idx,
        qos: 1,
        cursor: (0, 0),
        read_count: 0,
        max_count: 100,
        forward_retained: false,
        group: None,
    };
    // 1,000 lockers parked on their own filters, connection 5000 on two filters.
    for i in 0..1000 {
        let filter = format!("lockers/{i}/down");
        let (idx, _) = data.next_native_offset(&filter);
        data.park(i, request(&filter, idx));
    }
    let (up, _) = data.next_native_offset("lockers/+/up");
    data.park(5000, request("lockers/+/up", up));
    data.park(7, request("lockers/+/up", up));
    let (ev, _) = data.next_native_offset("events/#");
    data.park(5000, request("events/#", ev));
    let subscriptions = vec![
        "$share/gateways/lockers/+/up".to_owned(),
        "events/#".to_owned(),
    ];
    let before = data.scans;
    let cleaned = data.clean(5000, subscriptions.iter());
    assert_eq!(cleaned.len(), 2);
    assert_eq!(data.scans - before, 2, "only its own two filters were visited");
    // The others are still parked.
    assert_eq!(data.native[up].waiters.waiters().len(), 1);
    assert_eq!(data.native[0].waiters.waiters().len(), 1);
}

//     #[test]
//     fn appends_are_written_to_correct_commitlog() {
//         pretty_env_logger::init();
//         let config = RouterConfig {
//             instant_ack: true,
//             max_segment_size: 1024,
//             max_connections: 10,
//             max_mem_segments: 10,
//             max_disk_segments: 0,
//             max_read_len: 1024,
//             log_dir: None,
//             dynamic_log: true,
//         };

//         let mut data = DataLog::new(config).unwrap();
//         data.next_native_offset("/devices/2321/actions");
//         for i in 0..2 {
//             let publish = Publish::new("/devices/2321/events/imu/jsonarray", QoS::AtLeastOnce, vec![1, 2, 3]);
//             let v = data.native_append(publish);
//             dbg!(v);
//         }

//         for i in 0..2 {
//             let publish = Publish::new("/devices/2321/actions", QoS::AtLeastOnce, vec![1, 2, 3]);
//             let v = data.native_append(publish);
//             dbg!(v);
//         }
//     }
