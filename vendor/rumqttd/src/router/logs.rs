use super::Ack;
use slab::Slab;
use tracing::{info, trace};

use crate::protocol::{
    matches, ConnAck, ConnAckProperties, PingResp, PubAck, PubComp, PubRec, PubRel, Publish,
    PublishProperties, SubAck, UnsubAck,
};
use crate::router::{DataRequest, FilterIdx, SubscriptionMeter, Waiters};
use crate::{ConnectionId, Filter, Offset, RouterConfig, Topic};

use crate::segments::{CommitLog, Position};
use crate::Storage;
use std::collections::{HashMap, VecDeque};
use std::io;
use std::time::Instant;

type PubWithProp = (Publish, Option<PublishProperties>);

#[derive(Clone)]
pub struct PublishData {
    pub publish: Publish,
    pub properties: Option<PublishProperties>,
    pub timestamp: Instant,
}

impl From<PubWithProp> for PublishData {
    fn from((publish, properties): PubWithProp) -> Self {
        PublishData {
            publish,
            properties,
            timestamp: Instant::now(),
        }
    }
}

// TODO: remove this from here
impl Storage for PublishData {
    /// PATCH (locker-gateway): the memory a kept message takes, so that a filter's segment limit
    /// bounds memory: the entry itself (232 bytes, whatever the payload) besides its topic and
    /// payload. Upstream counted only `4 + topic + payload`, so a 40-byte status message took
    /// about six times the room it was counted for.
    fn size(&self) -> usize {
        let publish = &self.publish;
        std::mem::size_of::<PublishData>() + publish.topic.len() + publish.payload.len()
    }
}

/// Stores 'device' data and 'actions' data in native commitlog
/// organized by subscription filter. Device data is replicated
/// while actions data is not
pub struct DataLog {
    pub config: RouterConfig,
    /// Native commitlog data organized by subscription. Contains
    /// device data and actions data logs.
    ///
    /// Device data is replicated while actions data is not.
    /// Also has waiters used to wake connections/replicator tracker
    /// which are caught up with all the data on 'Filter' and waiting
    /// for new data
    pub native: Slab<Data<PublishData>>,
    /// Map of subscription filter name to filter index
    filter_indexes: HashMap<Filter, FilterIdx>,
    /// PATCH (locker-gateway): the filters with a wildcard level (`+`, `#`), the only ones a
    /// new topic is matched against one by one; an exact filter is found in `filter_indexes`.
    wildcard_filters: Vec<(Filter, FilterIdx)>,
    retained_publishes: HashMap<Topic, PublishData>,
    /// List of filters associated with a topic (also when none: a topic nobody subscribes to
    /// is not matched again at its next publish)
    publish_filters: HashMap<Topic, Vec<FilterIdx>>,
    /// PATCH (locker-gateway): topic/filter pairs compared one by one so far (for tests).
    pub(crate) scans: u64,
}

/// PATCH (locker-gateway): makes a publish's topic and payload its own allocations, so that
/// keeping it (in a filter's log, or retained) does not keep the whole read buffer it was
/// parsed out of.
pub(crate) fn owned_bytes(publish: &mut Publish) {
    publish.topic = bytes::Bytes::copy_from_slice(&publish.topic);
    publish.payload = bytes::Bytes::copy_from_slice(&publish.payload);
}

/// PATCH (locker-gateway): whether a filter has a wildcard level, so that a topic must be
/// compared with it level by level; any other filter matches exactly its own topic (see
/// [`matches`]: also never a topic starting with `$`).
pub(crate) fn is_wildcard(filter: &str) -> bool {
    filter.split('/').any(|level| level == "+" || level == "#")
}

/// PATCH (locker-gateway): whether an exact (wildcard-free) filter can match its own topic, as
/// [`matches`] decides it (never a topic starting with `$`).
fn matches_itself(filter: &str) -> bool {
    !filter.starts_with('$')
}

impl DataLog {
    pub fn new(config: RouterConfig) -> io::Result<DataLog> {
        let mut native = Slab::new();
        let mut filter_indexes = HashMap::new();
        let mut wildcard_filters = Vec::new();
        let retained_publishes = HashMap::new();
        let publish_filters = HashMap::new();

        if let Some(warmup_filters) = config.initialized_filters.clone() {
            for filter in warmup_filters {
                let data = Data::new(&filter, &config);

                // Add commitlog to datalog and add datalog index to filter to
                // datalog index map
                let idx = native.insert(data);
                if is_wildcard(&filter) {
                    wildcard_filters.push((filter.clone(), idx));
                }
                filter_indexes.insert(filter, idx);
            }
        }

        Ok(DataLog {
            config,
            native,
            publish_filters,
            filter_indexes,
            wildcard_filters,
            retained_publishes,
            scans: 0,
        })
    }

    pub fn meter(&mut self, filter: &str) -> Option<&mut SubscriptionMeter> {
        let data = self.native.get_mut(*self.filter_indexes.get(filter)?)?;
        Some(&mut data.meter)
    }

    pub fn waiters(&self, filter: &Filter) -> Option<&Waiters<DataRequest>> {
        self.native
            .get(*self.filter_indexes.get(filter)?)
            .map(|data| &data.waiters)
    }

    pub fn remove_waiters_for_id(
        &mut self,
        id: ConnectionId,
        filter: &Filter,
    ) -> Option<DataRequest> {
        let data = self
            .native
            .get_mut(*self.filter_indexes.get(filter)?)
            .unwrap();
        let waiters = data.waiters.get_mut();

        waiters
            .iter()
            .position(|&(conn_id, _)| conn_id == id)
            .and_then(|index| {
                waiters
                    .swap_remove_back(index)
                    .map(|(_, data_req)| data_req)
            })
    }

    // TODO: Currently returning a Option<Vec> instead of Option<&Vec> due to Rust borrow checker
    // limitation
    pub fn matches(&mut self, topic: &str) -> Option<Vec<usize>> {
        match &self.publish_filters.get(topic) {
            Some(v) => Some(v.to_vec()),
            None => {
                // PATCH (locker-gateway): the exact filter by lookup, only the wildcard filters
                // one by one, and the answer kept even when empty (a filter added later updates
                // it in `next_native_offset`).
                let mut v: Vec<usize> = Vec::new();
                if let Some(idx) = self.filter_indexes.get(topic) {
                    if matches_itself(topic) && !is_wildcard(topic) {
                        v.push(*idx);
                    }
                }
                self.scans += self.wildcard_filters.len() as u64;
                v.extend(
                    self.wildcard_filters
                        .iter()
                        .filter(|(filter, _)| matches(topic, filter))
                        .map(|(_, filter_idx)| *filter_idx),
                );

                self.publish_filters.insert(topic.to_owned(), v.clone());

                Some(v)
            }
        }
    }

    pub fn next_native_offset(&mut self, filter: &str) -> (FilterIdx, Offset) {
        let publish_filters = &mut self.publish_filters;
        let filter_indexes = &mut self.filter_indexes;

        let (filter_idx, data) = match filter_indexes.get(filter) {
            Some(idx) => (*idx, self.native.get(*idx).unwrap()),
            None => {
                let data = Data::new(filter, &self.config);

                // Add commitlog to datalog and add datalog index to filter to
                // datalog index map
                let idx = self.native.insert(data);
                self.filter_indexes.insert(filter.to_owned(), idx);

                // Match new filter to existing topics and add to publish_filters if it matches
                // PATCH (locker-gateway): an exact filter can only match its own topic.
                if is_wildcard(filter) {
                    self.wildcard_filters.push((filter.to_owned(), idx));
                    self.scans += publish_filters.len() as u64;
                    for (topic, filters) in publish_filters.iter_mut() {
                        if matches(topic, filter) {
                            filters.push(idx);
                        }
                    }
                } else if let Some(filters) = publish_filters.get_mut(filter) {
                    if matches_itself(filter) {
                        filters.push(idx);
                    }
                }

                (idx, self.native.get(idx).unwrap())
            }
        };

        (filter_idx, data.log.next_offset())
    }

    pub fn native_readv(
        &self,
        filter_idx: FilterIdx,
        offset: Offset,
        len: u64,
    ) -> io::Result<(Position, Vec<(PubWithProp, Offset)>)> {
        // unwrap to get index of `self.native` is fine here, because when a new subscribe packet
        // arrives in `Router::handle_device_payload`, it first calls the function
        // `next_native_offset` which creates a new commitlog if one doesn't exist. So any new
        // reads will definitely happen on a valid filter.
        let data = self.native.get(filter_idx).unwrap();
        let mut o = Vec::new();
        // TODO: `readv` is infallible but its current return type does not
        // reflect that. Consequently, this method is also infallible.
        // Encoding this information is important so that calling function
        // has more information on how this method behaves.
        let next = data.log.readv(offset, len, &mut o)?;

        let now = Instant::now();
        o.retain_mut(|(pubdata, _)| {
            // Keep data if no properties exists, which implies no message expiry!
            let Some(properties) = pubdata.properties.as_mut() else {
                return true;
            };

            // Keep data if there is no message_expiry_interval
            let Some(message_expiry_interval) = properties.message_expiry_interval.as_mut() else {
                return true;
            };

            let time_spent = (now - pubdata.timestamp).as_secs() as u32;

            let is_valid = time_spent < *message_expiry_interval;

            // ignore expired messages
            if is_valid {
                // set message_expiry_interval to (original value - time spent waiting in server)
                // ref: https://docs.oasis-open.org/mqtt/mqtt/v5.0/os/mqtt-v5.0-os.html#_Toc3901112
                *message_expiry_interval -= time_spent;
            }

            is_valid
        });

        // no need to include timestamp when returning
        let o = o
            .into_iter()
            .map(|(pubdata, offset)| ((pubdata.publish, pubdata.properties), offset))
            .collect();

        Ok((next, o))
    }

    pub fn shadow(&mut self, filter: &str) -> Option<PubWithProp> {
        let data = self.native.get_mut(*self.filter_indexes.get(filter)?)?;
        data.log.last().map(|p| (p.publish, p.properties))
    }

    /// This method is called when the subscriber has caught up with the commit log. In which case,
    /// instead of actively checking for commits in each `Router::run_inner` iteration, we instead
    /// wait and only try reading again when new messages have been added to the commit log. This
    /// methods converts a `DataRequest` (which actively reads the commit log in `Router::consume`)
    /// to a `Waiter` (which only reads when notified).
    pub fn park(&mut self, id: ConnectionId, request: DataRequest) {
        // calling unwrap on index here is fine, because only place this function is called is in
        // `Router::consume` method, when the status after reading from commit log of the same
        // filter as `request` is "done", that is, the subscriber has caught up. In other words,
        // there has been atleast 1 call to `native_readv` for the same filter, which means if
        // `native_readv` hasn't paniced, so this won't panic either.
        let data = self.native.get_mut(request.filter_idx).unwrap();
        data.waiters.register(id, request);
    }

    /// Cleanup a connection from the waiters of the filters it subscribed to
    ///
    /// PATCH (locker-gateway): only its own filters (`$share/{group}/` prefixes allowed), not
    /// every filter of the broker.
    pub fn clean<'a>(
        &mut self,
        id: ConnectionId,
        subscriptions: impl IntoIterator<Item = &'a String>,
    ) -> Vec<DataRequest> {
        let mut inflight = Vec::new();
        let mut seen = Vec::new();
        for filter in subscriptions {
            let filter = match filter.strip_prefix("$share/") {
                Some(rest) => rest.split_once('/').map_or(rest, |(_, f)| f),
                None => filter.as_str(),
            };
            let Some(&idx) = self.filter_indexes.get(filter) else {
                continue;
            };
            if seen.contains(&idx) {
                continue;
            }
            seen.push(idx);
            self.scans += 1;
            if let Some(data) = self.native.get_mut(idx) {
                inflight.append(&mut data.waiters.remove(id));
            }
        }

        inflight
    }

    pub fn insert_to_retained_publishes(
        &mut self,
        publish: Publish,
        publish_properties: Option<PublishProperties>,
        topic: Topic,
    ) {
        // Its bytes are its own already (`owned_bytes` in `append_to_commitlog`; a will's are
        // copied when its connection is registered).
        let pub_with_props = (publish, publish_properties);
        self.retained_publishes.insert(topic, pub_with_props.into());
    }

    pub fn remove_from_retained_publishes(&mut self, topic: Topic) {
        self.retained_publishes.remove(&topic);
    }

    pub fn read_retained_messages(&mut self, filter: &str) -> Vec<PubWithProp> {
        trace!(info = "reading retain msg", filter = &filter);
        let now = Instant::now();

        // PATCH (locker-gateway): an exact filter reads its own topic's message; only a
        // wildcard filter goes through them all. Expired messages are dropped when read.
        if !is_wildcard(filter) {
            if !matches_itself(filter) {
                return Vec::new();
            }
            let Some(pubdata) = self.retained_publishes.get_mut(filter) else {
                return Vec::new();
            };
            if !still_valid(pubdata, now) {
                self.retained_publishes.remove(filter);
                return Vec::new();
            }
            return vec![(pubdata.publish.clone(), pubdata.properties.clone())];
        }

        // discard expired retained messages
        self.scans += self.retained_publishes.len() as u64;
        self.retained_publishes
            .retain(|_, pubdata| still_valid(pubdata, now));

        // no need to include timestamp when returning
        self.retained_publishes
            .iter()
            .filter(|(topic, _)| matches(topic, filter))
            .map(|(_, p)| (p.publish.clone(), p.properties.clone()))
            .collect()
    }
}

/// Whether a retained message has not expired, its expiry interval made the time it has left
/// (ref: https://docs.oasis-open.org/mqtt/mqtt/v5.0/os/mqtt-v5.0-os.html#_Toc3901112).
fn still_valid(pubdata: &mut PublishData, now: Instant) -> bool {
    // Keep data if no properties exists, which implies no message expiry!
    let Some(properties) = pubdata.properties.as_mut() else {
        return true;
    };

    // Keep data if there is no message_expiry_interval
    let Some(message_expiry_interval) = properties.message_expiry_interval.as_mut() else {
        return true;
    };

    let time_spent = (now - pubdata.timestamp).as_secs() as u32;
    if time_spent >= *message_expiry_interval {
        return false;
    }
    // set message_expiry_interval to (original value - time spent waiting in server), once
    *message_expiry_interval -= time_spent;
    pubdata.timestamp = now;
    true
}

impl DataLog {
    /// PATCH (locker-gateway): the filters known, for tests.
    #[cfg(test)]
    pub(crate) fn filter_count(&self) -> usize {
        self.filter_indexes.len()
    }
}

pub struct Data<T> {
    filter: Filter,
    pub log: CommitLog<T>,
    pub waiters: Waiters<DataRequest>,
    meter: SubscriptionMeter,
}

impl<T> Data<T>
where
    T: Storage + Clone,
{
    /// PATCH (locker-gateway): the filter this log is kept for.
    pub(crate) fn filter(&self) -> &str {
        &self.filter
    }

    pub fn new(filter: &str, router_config: &RouterConfig) -> Data<T> {
        let mut max_segment_size = router_config.max_segment_size;
        let mut max_mem_segments = router_config.max_segment_count;

        // Override segment config for selected filter
        if let Some(config) = &router_config.custom_segment {
            for (f, segment_config) in config {
                if matches(filter, f) {
                    info!("Overriding segment config for filter: {}", filter);
                    max_segment_size = segment_config.max_segment_size;
                    max_mem_segments = segment_config.max_segment_count;
                }
            }
        }

        // max_segment_size: usize, max_mem_segments: usize
        let log = CommitLog::new(max_segment_size, max_mem_segments).unwrap();

        // PATCH (locker-gateway): most filters (a locker's own) have one waiter at most.
        let waiters = Waiters::with_capacity(0);
        let metrics = SubscriptionMeter::default();
        Data {
            filter: filter.to_owned(),
            log,
            waiters,
            meter: metrics,
        }
    }

    /// Writes to all the filters that are mapped to this publish topic
    /// and wakes up consumers that are matching this topic (if they exist)
    pub fn append(
        &mut self,
        item: T,
        notifications: &mut VecDeque<(ConnectionId, DataRequest)>,
    ) -> (Offset, &Filter) {
        let size = item.size();
        let offset = self.log.append(item);
        if let Some(mut parked) = self.waiters.take() {
            notifications.append(&mut parked);
        }

        self.meter.count += 1;
        self.meter.total_size += size;

        (offset, &self.filter)
    }
}

/// Acks log for a subscription
#[derive(Debug)]
pub struct AckLog {
    // Committed acks per connection. First pkid, last pkid, data
    committed: VecDeque<Ack>,
    // Recorded qos 2 publishes
    recorded: VecDeque<(Publish, Option<PublishProperties>)>,
}

impl AckLog {
    /// New log
    pub fn new() -> AckLog {
        AckLog {
            // PATCH (locker-gateway): grow as needed, not 2 x 100 per client.
            committed: VecDeque::new(),
            recorded: VecDeque::new(),
        }
    }

    pub fn connack(&mut self, id: ConnectionId, ack: ConnAck, props: Option<ConnAckProperties>) {
        let ack = Ack::ConnAck(id, ack, props);
        self.committed.push_back(ack);
    }

    pub fn suback(&mut self, ack: SubAck) {
        let ack = Ack::SubAck(ack);
        self.committed.push_back(ack);
    }

    pub fn puback(&mut self, ack: PubAck) {
        let ack = Ack::PubAck(ack);
        self.committed.push_back(ack);
    }

    pub fn pubrec(&mut self, publish: Publish, props: Option<PublishProperties>, ack: PubRec) {
        let ack = Ack::PubRec(ack);
        self.recorded.push_back((publish, props));
        self.committed.push_back(ack);
    }

    pub fn pubrel(&mut self, ack: PubRel) {
        let ack = Ack::PubRel(ack);
        self.committed.push_back(ack);
    }

    pub fn pubcomp(&mut self, ack: PubComp) -> Option<(Publish, Option<PublishProperties>)> {
        let ack = Ack::PubComp(ack);
        self.committed.push_back(ack);
        self.recorded.pop_front()
    }

    pub fn pingresp(&mut self, ack: PingResp) {
        let ack = Ack::PingResp(ack);
        self.committed.push_back(ack);
    }

    pub fn unsuback(&mut self, ack: UnsubAck) {
        let ack = Ack::UnsubAck(ack);
        self.committed.push_back(ack);
    }

    pub fn readv(&mut self) -> &mut VecDeque<Ack> {
        &mut self.committed
    }
}

#[cfg(test)]
mod test {
    use super::DataLog;
    use crate::router::shared_subs::Strategy;
    use crate::RouterConfig;

    #[test]
    fn publish_filters_updating_correctly_on_new_topic_subscription() {
        let config = RouterConfig {
            max_segment_size: 1024,
            max_connections: 10,
            max_segment_count: 10,
            max_outgoing_packet_count: 1024,
            custom_segment: None,
            initialized_filters: None,
            shared_subscriptions_strategy: Strategy::RoundRobin,
            max_connection_history: None,
        };
        let mut data = DataLog::new(config).unwrap();
        data.next_native_offset("topic/a");
        data.matches("topic/a");

        data.next_native_offset("topic/+");

        assert_eq!(data.publish_filters.get("topic/a").unwrap().len(), 2);
    }

    #[test]
    fn publish_filters_updating_correctly_on_new_publish() {
        let config = RouterConfig {
            max_segment_size: 1024,
            max_connections: 10,
            max_segment_count: 10,
            max_outgoing_packet_count: 1024,
            custom_segment: None,
            initialized_filters: None,
            shared_subscriptions_strategy: Strategy::RoundRobin,
            max_connection_history: None,
        };
        let mut data = DataLog::new(config).unwrap();
        data.next_native_offset("+/+");

        data.matches("topic/a");

        assert_eq!(data.publish_filters.get("topic/a").unwrap().len(), 1);
    }
}

// PATCH (locker-gateway): the tests of the patch (vendor/rumqttd/PATCHES.md).
#[cfg(test)]
mod patch_tests;
