//! Where the client is in each stream, and what a delivery's `seq` and
//! `epoch` say about it: in order, a duplicate, a gap, or a lost history.
//!
//! Pure state owned by the [`Client`](super::Client) and changed only on its
//! thread (the caller's); no thread of its own, dropped with the client.
//! A stream is named by the [`Topic`] its deliveries carry: a channel, a
//! session, or a user's own stream as the channel `user:<id>`.

use std::collections::{HashMap, HashSet};

use crate::Topic;

/// The last publication a client got on a stream: its `seq`, and the
/// stream's `epoch` (absent when the hub did not say).
///
/// ```
/// use wshub::client::Position;
///
/// let at = Position { seq: 41, epoch: Some("k3x9".into()) };
/// assert_eq!(at.seq, 41);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Position {
    /// The publication's number in its stream (from 1).
    pub seq: u64,
    /// The stream's epoch: a new one means its history was lost.
    pub epoch: Option<String>,
}

/// What to do with a delivery that carries a `seq`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// The next one: deliver it.
    Deliver,
    /// Seen already (or older): drop it.
    Duplicate,
    /// The stream is being recovered and the replay that follows the hub's
    /// `subscribed` brings everything up to now: drop it.
    Replayed,
    /// Publications `from..=to` never arrived: say so, then deliver it.
    Gap { from: u64, to: u64 },
    /// The stream's epoch changed, so its history was lost: say so, then
    /// deliver it.
    NewEpoch { previous: String },
}

/// Every stream's position, and which are waiting for their `subscribed`.
#[derive(Debug, Default)]
pub(crate) struct Streams {
    positions: HashMap<Topic, Position>,
    recovering: HashSet<Topic>,
}

impl Streams {
    pub(crate) fn position(&self, topic: &Topic) -> Option<&Position> {
        self.positions.get(topic)
    }

    /// Judges a delivery on `topic` numbered `seq` in `epoch`, and moves
    /// the stream's position past it when it is to be delivered.
    pub(crate) fn track(&mut self, topic: &Topic, seq: u64, epoch: Option<&str>) -> Verdict {
        if self.recovering.contains(topic) {
            return Verdict::Replayed;
        }
        let Some(at) = self.positions.get_mut(topic) else {
            self.positions.insert(
                topic.clone(),
                Position {
                    seq,
                    epoch: epoch.map(str::to_owned),
                },
            );
            return Verdict::Deliver;
        };
        match (epoch, at.epoch.as_deref()) {
            (Some(new), Some(old)) if new != old => {
                let previous = old.to_owned();
                *at = Position {
                    seq,
                    epoch: Some(new.to_owned()),
                };
                return Verdict::NewEpoch { previous };
            }
            (Some(new), None) => at.epoch = Some(new.to_owned()),
            _ => {}
        }
        if seq <= at.seq {
            return Verdict::Duplicate;
        }
        let from = at.seq + 1;
        at.seq = seq;
        if seq > from {
            Verdict::Gap { from, to: seq - 1 }
        } else {
            Verdict::Deliver
        }
    }

    /// A `subscribe` with `since` goes out for `topic`: until its answer,
    /// deliveries on it are dropped (the replay brings them). Returns where
    /// to resume from, if the stream has a position.
    pub(crate) fn begin_recovery(&mut self, topic: &Topic) -> Option<Position> {
        let since = self.positions.get(topic).cloned()?;
        self.recovering.insert(topic.clone());
        Some(since)
    }

    /// The answer to a `subscribe` with `since` came: `recovered` as the hub
    /// said, `latest` its position then. Returns `false` when publications
    /// were missed for good (the stream then resumes from `latest`).
    pub(crate) fn end_recovery(
        &mut self,
        topic: &Topic,
        recovered: bool,
        latest: Option<Position>,
    ) -> bool {
        self.recovering.remove(topic);
        if !recovered {
            self.resume_at(topic, latest);
        }
        recovered
    }

    /// The answer to a `subscribe` without `since`: deliveries go on from
    /// the hub's latest position, when it gave one and the stream has none.
    pub(crate) fn start(&mut self, topic: &Topic, latest: Option<Position>) {
        if !self.positions.contains_key(topic) {
            self.resume_at(topic, latest);
        }
    }

    fn resume_at(&mut self, topic: &Topic, latest: Option<Position>) {
        match latest {
            Some(at) => self.positions.insert(topic.clone(), at),
            None => self.positions.remove(topic),
        };
    }

    /// Forgets a stream (the client left it).
    pub(crate) fn forget(&mut self, topic: &Topic) {
        self.positions.remove(topic);
        self.recovering.remove(topic);
    }

    /// The connection ended: no `subscribed` will answer the recoveries in flight.
    pub(crate) fn connection_ended(&mut self) {
        self.recovering.clear();
    }

    pub(crate) fn positions(&self) -> &HashMap<Topic, Position> {
        &self.positions
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files() -> Topic {
        Topic::channel("files")
    }

    fn at(seq: u64, epoch: &str) -> Option<Position> {
        Some(Position {
            seq,
            epoch: Some(epoch.into()),
        })
    }

    #[test]
    fn the_first_delivery_sets_the_position_and_the_next_ones_follow_it() {
        let mut streams = Streams::default();
        assert_eq!(streams.track(&files(), 7, Some("e")), Verdict::Deliver);
        assert_eq!(streams.track(&files(), 8, Some("e")), Verdict::Deliver);
        assert_eq!(streams.position(&files()).cloned(), at(8, "e"));
        // Streams are independent.
        let other = Topic::session("s1");
        assert_eq!(streams.track(&other, 1, Some("x")), Verdict::Deliver);
        assert_eq!(streams.position(&files()).cloned(), at(8, "e"));
    }

    #[test]
    fn older_or_repeated_seqs_are_duplicates_and_do_not_move_the_position() {
        let mut streams = Streams::default();
        streams.track(&files(), 5, Some("e"));
        assert_eq!(streams.track(&files(), 5, Some("e")), Verdict::Duplicate);
        assert_eq!(streams.track(&files(), 2, Some("e")), Verdict::Duplicate);
        assert_eq!(streams.position(&files()).cloned(), at(5, "e"));
        assert_eq!(streams.track(&files(), 6, Some("e")), Verdict::Deliver);
    }

    #[test]
    fn a_jump_is_a_gap_naming_the_missing_seqs() {
        let mut streams = Streams::default();
        streams.track(&files(), 3, Some("e"));
        assert_eq!(
            streams.track(&files(), 7, Some("e")),
            Verdict::Gap { from: 4, to: 6 }
        );
        assert_eq!(streams.track(&files(), 8, Some("e")), Verdict::Deliver);
        // A late one from inside the gap is older than the position now.
        assert_eq!(streams.track(&files(), 5, Some("e")), Verdict::Duplicate);
    }

    #[test]
    fn a_new_epoch_is_a_lost_history_and_is_adopted_whatever_its_seq() {
        let mut streams = Streams::default();
        streams.track(&files(), 40, Some("old"));
        assert_eq!(
            streams.track(&files(), 1, Some("new")),
            Verdict::NewEpoch {
                previous: "old".into()
            }
        );
        assert_eq!(streams.position(&files()).cloned(), at(1, "new"));
        assert_eq!(streams.track(&files(), 2, Some("new")), Verdict::Deliver);
        // A straggler from the old epoch is a change of epoch again, not a
        // duplicate: the hub would never send it, so say so.
        assert!(matches!(
            streams.track(&files(), 41, Some("old")),
            Verdict::NewEpoch { .. }
        ));
    }

    #[test]
    fn a_missing_epoch_compares_by_seq_and_a_first_epoch_is_adopted() {
        let mut streams = Streams::default();
        streams.track(&files(), 1, None);
        assert_eq!(streams.track(&files(), 2, None), Verdict::Deliver);
        assert_eq!(streams.track(&files(), 3, Some("e")), Verdict::Deliver);
        assert_eq!(streams.position(&files()).cloned(), at(3, "e"));
        assert_eq!(streams.track(&files(), 4, None), Verdict::Deliver);
        assert_eq!(streams.position(&files()).cloned(), at(4, "e"));
    }

    #[test]
    fn while_recovering_deliveries_wait_for_the_replay() {
        let mut streams = Streams::default();
        // No position: nothing to recover from.
        assert_eq!(streams.begin_recovery(&files()), None);
        streams.track(&files(), 4, Some("e"));
        assert_eq!(streams.begin_recovery(&files()), at(4, "e"));
        assert_eq!(streams.track(&files(), 6, Some("e")), Verdict::Replayed);
        assert!(streams.end_recovery(&files(), true, at(6, "e")));
        // Recovered: the replay goes on from where the client was.
        assert_eq!(streams.track(&files(), 5, Some("e")), Verdict::Deliver);
        assert_eq!(streams.track(&files(), 6, Some("e")), Verdict::Deliver);
    }

    #[test]
    fn an_unrecovered_stream_resumes_from_the_hub_s_latest_position() {
        let mut streams = Streams::default();
        streams.track(&files(), 4, Some("e"));
        streams.begin_recovery(&files());
        assert!(!streams.end_recovery(&files(), false, at(9, "f")));
        assert_eq!(streams.position(&files()).cloned(), at(9, "f"));
        assert_eq!(streams.track(&files(), 10, Some("f")), Verdict::Deliver);

        // Without a position from the hub, the next delivery starts afresh.
        streams.begin_recovery(&files());
        assert!(!streams.end_recovery(&files(), false, None));
        assert_eq!(streams.position(&files()), None);
        assert_eq!(streams.track(&files(), 30, Some("g")), Verdict::Deliver);
    }

    #[test]
    fn a_lost_connection_ends_every_recovery_and_forget_clears_a_stream() {
        let mut streams = Streams::default();
        streams.track(&files(), 4, Some("e"));
        streams.begin_recovery(&files());
        streams.connection_ended();
        assert_eq!(streams.track(&files(), 5, Some("e")), Verdict::Deliver);
        streams.forget(&files());
        assert_eq!(streams.position(&files()), None);
    }

    #[test]
    fn a_fresh_subscription_starts_from_the_latest_position_unless_one_is_known() {
        let mut streams = Streams::default();
        streams.start(&files(), at(12, "e"));
        assert_eq!(streams.track(&files(), 13, Some("e")), Verdict::Deliver);
        streams.start(&files(), at(50, "e"));
        assert_eq!(streams.position(&files()).cloned(), at(13, "e"));
    }
}
