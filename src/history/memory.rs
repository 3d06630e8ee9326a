//! The in-process history store: each stream's recent publications in a
//! queue, bounded per stream (count), by age (TTL) and all together (bytes).
//!
//! Pure data, owned by the router. Every bound drops the oldest first: a
//! stream's count its own oldest, the TTL and the byte budget the oldest of
//! every stream, found through one ordered index of each stream's oldest
//! entry. A stream with nothing kept is forgotten once nobody is subscribed
//! to it, so a flood of new streams costs no more than the budget and the
//! sweep interval; where it stood is remembered (for the last 65 536 such
//! streams), so one seen again goes on in the same epoch and a client that
//! missed nothing is still recovered. Past that, a stream seen again starts
//! a new epoch, which tells a client that came back that its history is gone.
//!
//! The byte budget counts everything the history keeps: entries, streams,
//! and the remembered positions of forgotten streams, which go oldest first
//! with the entries when the budget is full. A stream's name is kept once,
//! shared by every place that refers to it.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::hash::{BuildHasher, RandomState};
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use serde_json::value::RawValue;

use super::{
    Appended, Entry, Head, Limits, Recovery, STREAM_OVERHEAD, Store, StreamKey, TOMBSTONE_OVERHEAD,
    Usage,
};
use crate::protocol::Origin;

/// Emptied streams that make [`Store::wants_sweep`] say yes.
const SWEEP_AT: usize = 1024;

/// Forgotten streams whose position is remembered, at most.
const TOMBSTONES: usize = 65_536;

/// One stream: its position and its kept publications, oldest first.
#[derive(Debug)]
struct Stream {
    seq: u64,
    epoch: Arc<str>,
    entries: VecDeque<Arc<Entry>>,
    /// On the `emptied` list already.
    listed: bool,
}

/// Where a forgotten stream stood.
#[derive(Debug)]
struct Tombstone {
    seq: u64,
    epoch: Arc<str>,
    /// When it was buried, on the clock of entries' serials: the budget
    /// drops the oldest of entries and tombstones first.
    serial: u64,
}

/// Sizes the store's overheads are counted from (see `super`).
pub(super) const STREAM_SIZE: usize = size_of::<Stream>();
pub(super) const TOMBSTONE_SIZE: usize = size_of::<Tombstone>();

/// Bytes a stream takes, besides its entries.
fn stream_size(key: &StreamKey, epoch: &str) -> usize {
    STREAM_OVERHEAD + key.size() + epoch.len()
}

/// Bytes a forgotten stream's remembered position takes.
fn tombstone_size(key: &StreamKey, epoch: &str) -> usize {
    TOMBSTONE_OVERHEAD + key.size() + epoch.len()
}

/// History in this process.
#[derive(Debug)]
pub(crate) struct Memory {
    limits: Limits,
    streams: HashMap<StreamKey, Stream>,
    /// Each non-empty stream under the serial of its oldest entry: the
    /// first is the oldest entry of all.
    oldest: BTreeMap<u64, StreamKey>,
    /// Streams that were left with nothing kept, to forget once unused.
    emptied: Vec<StreamKey>,
    /// How many of those were in use at the last sweep.
    in_use_at_sweep: usize,
    bytes: usize,
    entries: usize,
    serial: u64,
    /// Epochs are hashes of a counter under this process's random key: new
    /// in every process, so a restart changes every epoch.
    epoch_key: RandomState,
    epochs: u64,
    /// Where forgotten streams stood, so that one seen again goes on from
    /// there in the same epoch: a client that missed nothing while a quiet
    /// stream was forgotten is still told `recovered: true`. The oldest are
    /// dropped past [`TOMBSTONES`], or when the byte budget is full (those
    /// streams start a new epoch).
    tombstones: HashMap<StreamKey, Tombstone>,
    /// Tombstones in the order they were buried, by serial; one whose
    /// tombstone went since (taken back, or dropped) is skipped when met.
    buried: VecDeque<(u64, StreamKey)>,
}

impl Memory {
    pub(crate) fn new(limits: Limits) -> Memory {
        Memory {
            limits,
            streams: HashMap::new(),
            oldest: BTreeMap::new(),
            emptied: Vec::new(),
            in_use_at_sweep: 0,
            bytes: 0,
            entries: 0,
            serial: 0,
            epoch_key: RandomState::new(),
            epochs: 0,
            tombstones: HashMap::new(),
            buried: VecDeque::new(),
        }
    }

    fn new_epoch(&mut self) -> Arc<str> {
        self.epochs += 1;
        let hash = self.epoch_key.hash_one(self.epochs);
        format!("{:012x}", hash & 0xffff_ffff_ffff).into()
    }

    /// `stream`, opened with a new epoch if it is not known.
    fn open(&mut self, key: &StreamKey) -> Option<&mut Stream> {
        if !self.streams.contains_key(key) {
            let (seq, epoch) = match self.tombstones.remove(key) {
                Some(tombstone) => {
                    self.bytes -= tombstone_size(key, &tombstone.epoch);
                    (tombstone.seq, tombstone.epoch)
                }
                None => (0, self.new_epoch()),
            };
            self.bytes += stream_size(key, &epoch);
            // Nothing kept yet: forgotten at a sweep if nobody subscribes.
            self.emptied.push(key.clone());
            let stream = Stream {
                seq,
                epoch,
                entries: VecDeque::new(),
                listed: true,
            };
            self.streams.insert(key.clone(), stream);
        }
        self.streams.get_mut(key)
    }

    /// Drops the oldest entry of `key`.
    fn drop_oldest(&mut self, key: &StreamKey) {
        let Some(stream) = self.streams.get_mut(key) else {
            return;
        };
        let Some(entry) = stream.entries.pop_front() else {
            return;
        };
        self.oldest.remove(&entry.serial);
        self.bytes -= entry.size();
        self.entries -= 1;
        match stream.entries.front() {
            Some(next) => {
                self.oldest.insert(next.serial, key.clone());
            }
            None if !stream.listed => {
                stream.listed = true;
                self.emptied.push(key.clone());
            }
            None => {}
        }
    }

    /// Drops the oldest thing the budget counts that can go: the oldest
    /// entry of every stream or the oldest tombstone, whichever is older.
    /// `false` when there is neither.
    fn drop_oldest_of_all(&mut self) -> bool {
        let entry = self.oldest.first_key_value().map(|(serial, _)| *serial);
        let tombstone = self.oldest_tombstone();
        match (entry, tombstone) {
            (Some(entry), Some(tombstone)) if tombstone < entry => self.drop_oldest_tombstone(),
            (Some(_), _) => {
                if let Some(key) = self.oldest.first_key_value().map(|(_, k)| k.clone()) {
                    self.drop_oldest(&key);
                }
                true
            }
            (None, Some(_)) => self.drop_oldest_tombstone(),
            (None, None) => false,
        }
    }

    /// The serial of the oldest tombstone, if any (skipping, for good,
    /// burials whose tombstone went since).
    fn oldest_tombstone(&mut self) -> Option<u64> {
        while let Some((serial, key)) = self.buried.front() {
            if self
                .tombstones
                .get(key)
                .is_some_and(|t| t.serial == *serial)
            {
                return Some(*serial);
            }
            self.buried.pop_front();
        }
        None
    }

    /// Forgets the oldest tombstone: that stream, seen again, starts a new
    /// epoch. `false` if there is none.
    fn drop_oldest_tombstone(&mut self) -> bool {
        if self.oldest_tombstone().is_none() {
            return false;
        }
        let Some((_, key)) = self.buried.pop_front() else {
            return false;
        };
        if let Some(tombstone) = self.tombstones.remove(&key) {
            self.bytes -= tombstone_size(&key, &tombstone.epoch);
        }
        true
    }

    /// Drops the oldest until the budget holds again.
    fn within_budget(&mut self) {
        while self.bytes > self.limits.bytes && self.drop_oldest_of_all() {}
    }
}

impl Memory {
    /// Remembers where a forgotten stream stood.
    fn bury(&mut self, key: StreamKey, seq: u64, epoch: Arc<str>) {
        self.serial += 1;
        let serial = self.serial;
        self.bytes += tombstone_size(&key, &epoch);
        let tombstone = Tombstone { seq, epoch, serial };
        if let Some(old) = self.tombstones.insert(key.clone(), tombstone) {
            self.bytes -= tombstone_size(&key, &old.epoch);
        }
        self.buried.push_back((serial, key));
        while self.tombstones.len() > TOMBSTONES && self.drop_oldest_tombstone() {}
        // Burials whose tombstone went (taken back by `open`) linger in
        // `buried`: trim them too.
        if self.buried.len() > 2 * self.tombstones.len() + 1024 {
            let tombstones = &self.tombstones;
            self.buried
                .retain(|(serial, k)| tombstones.get(k).is_some_and(|t| t.serial == *serial));
        }
    }

    /// Gives back the room of tables a flood grew, once it has gone.
    fn shrink(&mut self) {
        fn roomy<K, V>(map: &HashMap<K, V>) -> bool {
            map.capacity() > 4 * map.len() + 64
        }
        if roomy(&self.streams) {
            self.streams.shrink_to(2 * self.streams.len());
        }
        if roomy(&self.tombstones) {
            self.tombstones.shrink_to(2 * self.tombstones.len());
        }
        if self.buried.capacity() > 4 * self.buried.len() + 64 {
            self.buried.shrink_to(2 * self.buried.len());
        }
        if self.emptied.capacity() > 4 * self.emptied.len() + 64 {
            self.emptied.shrink_to(2 * self.emptied.len());
        }
    }
}

impl Store for Memory {
    fn append(
        &mut self,
        key: &StreamKey,
        kind: &str,
        data: Option<&RawValue>,
        from: Option<&Origin>,
        time: SystemTime,
    ) -> Option<Appended> {
        if !self.limits.keeps(key) {
            return None;
        }
        self.serial += 1;
        let serial = self.serial;
        let size = self.limits.size;
        let stream = self.open(key)?;
        stream.seq += 1;
        let entry = Arc::new(Entry {
            seq: stream.seq,
            kind: kind.into(),
            data: data.map(RawValue::to_owned),
            from: from.cloned(),
            time,
            at: Instant::now(),
            serial,
        });
        let was_empty = stream.entries.is_empty();
        stream.entries.push_back(Arc::clone(&entry));
        let over = stream.entries.len() > size;
        let epoch = Arc::clone(&stream.epoch);
        self.bytes += entry.size();
        self.entries += 1;
        if was_empty {
            self.oldest.insert(serial, key.clone());
        }
        if over {
            self.drop_oldest(key);
        }
        self.within_budget();
        Some(Appended { entry, epoch })
    }

    fn head(&mut self, key: &StreamKey) -> Option<Head> {
        if !self.limits.keeps(key) {
            return None;
        }
        let stream = self.open(key)?;
        Some(Head {
            seq: stream.seq,
            epoch: Arc::clone(&stream.epoch),
        })
    }

    fn read(&self, key: &StreamKey, seq: u64, epoch: &str, most: usize) -> Recovery {
        let Some(stream) = self.streams.get(key) else {
            return Recovery::Lost;
        };
        if *stream.epoch != *epoch || seq > stream.seq {
            return Recovery::Lost;
        }
        let first = stream.entries.front().map_or(stream.seq + 1, |e| e.seq);
        // Entries are numbered without holes: the missed ones are all here
        // if the first kept is at most the one after `seq`.
        if seq.saturating_add(1) < first {
            return Recovery::Lost;
        }
        let skip = usize::try_from(seq + 1 - first).unwrap_or(usize::MAX);
        let end = skip.saturating_add(most).min(stream.entries.len());
        match skip < end {
            true => Recovery::Recovered(stream.entries.range(skip..end).cloned().collect()),
            false => Recovery::Recovered(Vec::new()),
        }
    }

    fn expire(&mut self, now: Instant, in_use: &dyn Fn(&StreamKey) -> bool) {
        let ttl = self.limits.ttl;
        while let Some(key) = self.oldest.first_key_value().map(|(_, k)| k.clone()) {
            let expired = self
                .streams
                .get(&key)
                .and_then(|s| s.entries.front())
                .is_some_and(|e| now.saturating_duration_since(e.at) >= ttl);
            if !expired {
                break;
            }
            self.drop_oldest(&key);
        }
        let emptied = std::mem::take(&mut self.emptied);
        for key in emptied {
            let Some(stream) = self.streams.get_mut(&key) else {
                continue;
            };
            if !stream.entries.is_empty() {
                // It got publications again; its oldest is indexed.
                stream.listed = false;
            } else if in_use(&key) {
                self.emptied.push(key);
            } else if let Some(stream) = self.streams.remove(&key) {
                self.bytes -= stream_size(&key, &stream.epoch);
                self.bury(key, stream.seq, stream.epoch);
            }
        }
        self.in_use_at_sweep = self.emptied.len();
        self.within_budget();
        self.shrink();
    }

    fn keeps(&self, stream: &StreamKey) -> bool {
        self.limits.keeps(stream)
    }

    fn wants_sweep(&self) -> bool {
        let new = self.emptied.len().saturating_sub(self.in_use_at_sweep);
        new >= SWEEP_AT || (new > 0 && self.bytes > self.limits.bytes)
    }

    fn usage(&self) -> Usage {
        Usage {
            streams: self.streams.len(),
            entries: self.entries,
            bytes: self.bytes,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn limits(size: usize, bytes: usize) -> Limits {
        Limits {
            size,
            ttl: Duration::from_secs(300),
            bytes,
            off: Vec::new(),
        }
    }

    fn channel(name: &str) -> StreamKey {
        StreamKey::Channel(name.into())
    }

    fn push(memory: &mut Memory, key: &StreamKey, n: u64) -> Appended {
        let data = RawValue::from_string(n.to_string()).unwrap();
        memory
            .append(key, "event", Some(&data), None, SystemTime::now())
            .expect("history is on")
    }

    fn seqs(recovery: Recovery) -> Option<Vec<u64>> {
        match recovery {
            Recovery::Recovered(entries) => Some(entries.iter().map(|e| e.seq).collect()),
            Recovery::Lost => None,
        }
    }

    #[test]
    fn publications_are_numbered_from_one_per_stream() {
        let mut memory = Memory::new(limits(10, 1 << 20));
        let (a, b) = (channel("a"), channel("b"));
        assert_eq!(push(&mut memory, &a, 1).entry.seq, 1);
        assert_eq!(push(&mut memory, &a, 2).entry.seq, 2);
        assert_eq!(push(&mut memory, &b, 1).entry.seq, 1);
        let head = memory.head(&a).unwrap();
        assert_eq!(head.seq, 2);
        assert_ne!(head.epoch, memory.head(&b).unwrap().epoch);
    }

    #[test]
    fn since_returns_what_came_after_or_says_it_is_lost() {
        let mut memory = Memory::new(limits(3, 1 << 20));
        let a = channel("a");
        let epoch = memory.head(&a).unwrap().epoch;
        for n in 1..=5 {
            push(&mut memory, &a, n);
        }
        // Kept: 3, 4, 5.
        assert_eq!(seqs(memory.since(&a, 2, &epoch)), Some(vec![3, 4, 5]));
        assert_eq!(seqs(memory.since(&a, 4, &epoch)), Some(vec![5]));
        assert_eq!(seqs(memory.since(&a, 5, &epoch)), Some(vec![]));
        // Too old, ahead of the stream, another epoch, an unknown stream.
        assert_eq!(seqs(memory.since(&a, 1, &epoch)), None);
        assert_eq!(seqs(memory.since(&a, 6, &epoch)), None);
        assert_eq!(seqs(memory.since(&a, 4, "other")), None);
        assert_eq!(seqs(memory.since(&channel("b"), 0, &epoch)), None);
    }

    #[test]
    fn a_paced_read_walks_the_stream_a_few_at_a_time_until_the_history_overtakes_it() {
        let mut memory = Memory::new(limits(5, 1 << 20));
        let a = channel("a");
        let epoch = memory.head(&a).unwrap().epoch;
        for n in 1..=4 {
            push(&mut memory, &a, n);
        }
        assert_eq!(seqs(memory.read(&a, 0, &epoch, 2)), Some(vec![1, 2]));
        assert_eq!(seqs(memory.read(&a, 2, &epoch, 2)), Some(vec![3, 4]));
        assert_eq!(seqs(memory.read(&a, 4, &epoch, 2)), Some(vec![]));
        // Reading none only says whether the rest is still there.
        assert_eq!(seqs(memory.read(&a, 1, &epoch, 0)), Some(vec![]));
        for n in 5..=7 {
            push(&mut memory, &a, n);
        }
        // Kept: 3 to 7. A reader at 1 missed 2 for good; one at 2 did not.
        assert_eq!(seqs(memory.read(&a, 1, &epoch, 0)), None);
        assert_eq!(
            seqs(memory.read(&a, 2, &epoch, 10)),
            Some(vec![3, 4, 5, 6, 7])
        );
    }

    #[test]
    fn a_stream_that_kept_nothing_still_recovers_a_client_that_missed_nothing() {
        let mut memory = Memory::new(limits(1, 1 << 20));
        let a = channel("a");
        let first = push(&mut memory, &a, 1);
        push(&mut memory, &a, 2);
        let epoch = first.epoch;
        assert_eq!(seqs(memory.since(&a, 2, &epoch)), Some(vec![]));
        assert_eq!(seqs(memory.since(&a, 1, &epoch)), Some(vec![2]));
        assert_eq!(seqs(memory.since(&a, 0, &epoch)), None);
    }

    #[test]
    fn the_byte_budget_drops_the_oldest_of_every_stream() {
        let budget = 40 * 1024;
        let mut memory = Memory::new(limits(1000, budget));
        for n in 0..2_000 {
            push(&mut memory, &channel(&format!("s{}", n % 50)), n);
            assert!(memory.usage().bytes <= budget, "over budget at {n}");
        }
        // The newest survive, the oldest went first.
        let newest = channel("s49");
        let head = memory.head(&newest).unwrap();
        assert_eq!(
            seqs(memory.since(&newest, head.seq - 1, &head.epoch))
                .unwrap()
                .len(),
            1
        );
        let oldest = channel("s0");
        let epoch = memory.head(&oldest).unwrap().epoch;
        assert_eq!(seqs(memory.since(&oldest, 0, &epoch)), None);
    }

    #[test]
    fn a_flood_of_new_streams_is_forgotten_once_unused() {
        let budget = 64 * 1024;
        let mut memory = Memory::new(limits(1000, budget));
        let kept = channel("subscribed");
        push(&mut memory, &kept, 0);
        let epoch = memory.head(&kept).unwrap().epoch;
        for n in 0..20_000 {
            push(&mut memory, &channel(&format!("flood-{n}")), n);
            if memory.wants_sweep() {
                memory.expire(Instant::now(), &|k| *k == kept);
            }
            assert!(memory.usage().bytes <= budget);
        }
        memory.expire(Instant::now(), &|k| *k == kept);
        let usage = memory.usage();
        assert!(usage.streams < 1_000, "{usage:?}");
        assert!(memory.emptied.len() <= 1);
        // The subscribed stream kept its epoch though its entry went.
        assert_eq!(memory.head(&kept).unwrap().epoch, epoch);
    }

    /// The bytes the budget should count, recounted from scratch.
    fn recount(memory: &Memory) -> usize {
        let streams: usize = memory
            .streams
            .iter()
            .map(|(key, stream)| {
                stream_size(key, &stream.epoch)
                    + stream.entries.iter().map(|e| e.size()).sum::<usize>()
            })
            .sum();
        let tombstones: usize = memory
            .tombstones
            .iter()
            .map(|(key, t)| tombstone_size(key, &t.epoch))
            .sum();
        streams + tombstones
    }

    fn name(key: &StreamKey) -> &Arc<str> {
        match key {
            StreamKey::Channel(name) | StreamKey::Session(name) | StreamKey::User(name) => name,
        }
    }

    #[test]
    fn the_budget_counts_forgotten_streams_too_and_each_name_is_kept_once() {
        let budget = 256 * 1024;
        let mut memory = Memory::new(Limits {
            ttl: Duration::from_secs(60),
            ..limits(10, budget)
        });
        for n in 0..50_000 {
            push(&mut memory, &channel(&format!("once-{n}")), n);
            if memory.wants_sweep() {
                memory.expire(Instant::now(), &|_| false);
            }
            assert!(memory.usage().bytes <= budget, "over budget at {n}");
            if n % 997 == 0 {
                assert_eq!(memory.usage().bytes, recount(&memory), "at {n}");
            }
        }
        // Every entry expires: what is left of the flood is remembered
        // positions, within the budget, far fewer than the count's cap.
        memory.expire(Instant::now() + Duration::from_secs(120), &|_| false);
        assert_eq!(memory.usage().entries, 0);
        assert_eq!(memory.usage().streams, 0);
        assert_eq!(memory.usage().bytes, recount(&memory));
        assert!(memory.usage().bytes <= budget);
        let tombstones = memory.tombstones.len();
        assert!(tombstones > 100, "{tombstones} tombstones");
        assert!(tombstones * TOMBSTONE_OVERHEAD <= budget);
        assert!(tombstones < TOMBSTONES);
        // The newest are the ones kept, and still recover.
        let newest = channel("once-49999");
        let position = &memory.tombstones[&newest];
        let epoch = Arc::clone(&position.epoch);
        assert_eq!(memory.head(&newest).unwrap().epoch, epoch);
        assert!(!memory.tombstones.contains_key(&channel("once-0")));
        // Each name is stored once, shared by the table and the burial order.
        for (serial, key) in &memory.buried {
            if let Some((kept, t)) = memory.tombstones.get_key_value(key)
                && t.serial == *serial
            {
                assert!(Arc::ptr_eq(name(kept), name(key)));
            }
        }
        // Taken back and buried again, the counts stay exact.
        memory.expire(Instant::now(), &|_| false);
        assert_eq!(memory.usage().bytes, recount(&memory));
    }

    #[test]
    fn entries_older_than_the_ttl_expire_and_unused_streams_go_with_them() {
        let mut memory = Memory::new(Limits {
            ttl: Duration::from_millis(1),
            ..limits(10, 1 << 20)
        });
        let a = channel("a");
        let first = push(&mut memory, &a, 1);
        memory.expire(Instant::now() + Duration::from_secs(1), &|_| false);
        // Only where the stream stood is left (and counted).
        let usage = memory.usage();
        assert_eq!((usage.streams, usage.entries), (0, 0));
        assert_eq!(usage.bytes, tombstone_size(&a, &first.epoch));
        // Seen again: it goes on from where it stood, in the same epoch,
        // and what expired is still lost.
        let again = push(&mut memory, &a, 2);
        assert_eq!(again.entry.seq, 2);
        assert_eq!(again.epoch, first.epoch);
        assert_eq!(seqs(memory.since(&a, 0, &first.epoch)), None);
        assert_eq!(seqs(memory.since(&a, 1, &first.epoch)), Some(vec![2]));
    }

    #[test]
    fn a_quiet_stream_forgotten_while_nobody_followed_it_still_recovers() {
        let mut memory = Memory::new(limits(10, 1 << 20));
        let quiet = channel("quiet");
        let head = memory.head(&quiet).unwrap();
        memory.expire(Instant::now(), &|_| false);
        assert_eq!(memory.usage().streams, 0, "forgotten");
        assert_eq!(
            seqs(memory.since(&quiet, 0, &head.epoch)),
            None,
            "not known now"
        );
        // A client comes back: the stream is opened where it stood.
        assert_eq!(memory.head(&quiet).unwrap(), head);
        assert_eq!(seqs(memory.since(&quiet, 0, &head.epoch)), Some(vec![]));
    }

    #[test]
    fn tombstones_are_bounded() {
        let mut memory = Memory::new(limits(10, 1 << 30));
        for n in 0..(TOMBSTONES + 100) {
            memory.head(&channel(&format!("q{n}")));
            if n % 1000 == 0 {
                memory.expire(Instant::now(), &|_| false);
            }
        }
        memory.expire(Instant::now(), &|_| false);
        assert!(memory.tombstones.len() <= TOMBSTONES);
        assert!(memory.buried.len() <= 2 * TOMBSTONES + 1024);
        assert_eq!(memory.usage().bytes, recount(&memory));
    }

    #[test]
    fn streams_matching_an_off_pattern_keep_nothing() {
        let mut memory = Memory::new(Limits {
            off: vec![
                crate::auth::Pattern::parse("typing-*").unwrap(),
                crate::auth::Pattern::parse("session:*").unwrap(),
            ],
            ..limits(10, 1 << 20)
        });
        assert!(
            memory
                .append(&channel("typing-1"), "t", None, None, SystemTime::now())
                .is_none()
        );
        assert!(memory.head(&StreamKey::Session("s".into())).is_none());
        assert!(memory.head(&channel("files")).is_some());
        assert!(memory.head(&StreamKey::User("u".into())).is_some());
    }
}
