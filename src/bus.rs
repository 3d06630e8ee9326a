//! An in-process event bus for a program's own domain events, as in
//! the Cursor Chat Agent (`eventBus.publish('MessageSent', data)`,
//! `eventBus.subscribe('MessageSent', handler)`), and bridges that forward
//! them to the hub's clients.
//!
//! [`EventBus::publish`] never blocks and never waits for a subscriber:
//! every [`Subscription`] has a bounded queue of its own
//! ([`EventBus::DEFAULT_CAPACITY`] events unless
//! [`EventBus::with_capacity`] says otherwise). When a queue is full the
//! event is dropped for that subscriber only and counted
//! ([`Subscription::dropped`]), with a `warn` log at most once a second per
//! subscription. A subscription that is dropped is forgotten by the bus.
//! The subscriber list is behind one lock, held by a publish only for
//! non-blocking sends.
//!
//! ## Threads
//!
//! The bus has none of its own. Each of these starts one:
//!
//! | call | thread | ends |
//! | --- | --- | --- |
//! | [`EventBus::on`] | `wshub-bus`, runs the handler for each event | when its [`Listener`] is dropped (after the event being handled), or when every clone of the bus is dropped (after the events already queued) |
//! | [`EventBus::bridge`], [`EventBus::bridge_with`] | `wshub-bridge`, publishes each event to the hub through a [`Handle`] | when every clone of the bus is dropped (after forwarding the events already queued), or at the first event after the hub has shut down ([`Error::Closed`]) |
//!
//! A handler or a bridge that is slow only fills its own queue: the
//! publisher, the other subscribers and the hub carry on.
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//! use serde_json::json;
//! use wshub::{Hub, Target};
//! use wshub::bus::EventBus;
//! use wshub::events::{Event, IdeStatusChanged, MessageReceived};
//!
//! let server = Hub::bind("127.0.0.1:0")?.spawn()?;
//! let bus = EventBus::new();
//!
//! // Every MessageSent reaches every client as messageReceived (as the Cursor Chat Agent does).
//! bus.bridge("MessageSent", server.handle().clone(), Target::Broadcast, "messageReceived")?;
//! // A domain event whose shape differs from what clients read: map it.
//! bus.bridge_with("activeIDEChanged", server.handle().clone(), |event| {
//!     let port = u16::try_from(event.data["port"].as_u64()?).ok()?;
//!     let status = IdeStatusChanged::new(port, "active", event.data["workspacePath"].as_str()?);
//!     Some((Target::Broadcast, IdeStatusChanged::TYPE.to_owned(), serde_json::to_value(status).ok()?))
//! })?;
//! // The program's own handler, on a thread of its own.
//! let (seen, sent) = std::sync::mpsc::channel();
//! let _listener = bus.on("MessageSent", move |event| {
//!     let _ = seen.send(event.data["id"].clone());
//! })?;
//!
//! let delivered = bus.publish("MessageSent", MessageReceived::new("msg-123", "Hello, Cursor!"))?;
//! assert_eq!(delivered, 2); // the bridge and the handler
//! assert_eq!(sent.recv_timeout(Duration::from_secs(10)).ok(), Some(json!("msg-123")));
//! bus.publish("activeIDEChanged", json!({"port": 9223, "previousPort": 9222, "workspacePath": "/ws"}))?;
//! server.shutdown()?;
//! # Ok::<(), wshub::Error>(())
//! ```

use std::fmt;
use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TryRecvError, TrySendError, bounded};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{Error, Result};
use crate::handle::Handle;
use crate::publish::{Publication, Target};

/// Least time between two warnings about one subscription.
const WARN_EVERY: Duration = Duration::from_secs(1);

/// An in-process publish/subscribe bus of named events with JSON data, for
/// a program's own domain events (`MessageSent`, `activeIDEChanged`, ...).
///
/// `Clone + Send + Sync`; every clone is the same bus, and the bus is gone
/// when the last clone is dropped.
///
/// Publishing never blocks: each subscription has a bounded queue, and an
/// event that finds it full is dropped for that subscriber only and
/// counted. The bus has no thread of its own; [`on`](EventBus::on) starts
/// one per handler and [`bridge`](EventBus::bridge) one per bridge, each
/// ending when the bus is gone (a handler also when its [`Listener`] is
/// dropped, a bridge also at its first event after the hub shut down).
#[derive(Clone)]
pub struct EventBus {
    inner: Arc<Inner>,
}

struct Inner {
    capacity: usize,
    next_id: AtomicU64,
    subscribers: Mutex<Vec<Subscriber>>,
}

/// The bus's side of a subscription.
struct Subscriber {
    id: u64,
    name: Box<str>,
    sender: Sender<BusEvent>,
    state: Arc<State>,
}

/// What a subscription and the bus share.
#[derive(Default)]
struct State {
    dropped: AtomicU64,
    warned: Throttle,
    /// Set when a [`Listener`] is dropped: its handler runs no more.
    stopped: AtomicBool,
}

/// One event as a subscriber receives it.
#[derive(Debug, Clone, PartialEq)]
pub struct BusEvent {
    /// The name it was published under.
    pub name: String,
    /// Its data.
    pub data: serde_json::Value,
}

impl BusEvent {
    /// The data as a `T`, e.g. a typed event.
    ///
    /// # Errors
    ///
    /// [`Error::Json`] if the data does not have `T`'s shape.
    pub fn parse<T: DeserializeOwned>(&self) -> Result<T> {
        Ok(T::deserialize(&self.data)?)
    }
}

impl EventBus {
    /// How many events a subscription holds unless
    /// [`with_capacity`](EventBus::with_capacity) says otherwise.
    pub const DEFAULT_CAPACITY: usize = 1024;

    /// The name that subscribes to every event.
    pub const ALL: &'static str = "*";

    /// A bus whose subscriptions hold [`DEFAULT_CAPACITY`](EventBus::DEFAULT_CAPACITY) events.
    pub fn new() -> EventBus {
        EventBus::with_capacity(EventBus::DEFAULT_CAPACITY)
    }

    /// A bus whose subscriptions each hold up to `capacity` events (at
    /// least 1) before events are dropped for them.
    pub fn with_capacity(capacity: usize) -> EventBus {
        EventBus {
            inner: Arc::new(Inner {
                capacity: capacity.max(1),
                next_id: AtomicU64::new(0),
                subscribers: Mutex::new(Vec::new()),
            }),
        }
    }

    /// Sends `data` to every subscriber of `name` and of
    /// [`"*"`](EventBus::ALL); returns how many of them got it (a
    /// subscriber whose queue is full does not, and counts a drop). Never
    /// blocks on a subscriber.
    ///
    /// # Errors
    ///
    /// [`Error::Json`] if `data` is not serialisable.
    pub fn publish(&self, name: &str, data: impl Serialize) -> Result<usize> {
        let event = BusEvent {
            name: name.to_owned(),
            data: serde_json::to_value(data)?,
        };
        let mut delivered = 0;
        let mut warnings = Vec::new();
        {
            let mut subscribers = self.inner.lock();
            subscribers.retain(|s| {
                if &*s.name != name && &*s.name != EventBus::ALL {
                    return true;
                }
                match s.sender.try_send(event.clone()) {
                    Ok(()) => {
                        delivered += 1;
                        true
                    }
                    Err(TrySendError::Full(_)) => {
                        let dropped = s.state.dropped.fetch_add(1, Ordering::Relaxed) + 1;
                        if s.state.warned.ready() {
                            warnings.push((s.name.clone(), dropped));
                        }
                        true
                    }
                    // Its receiver is gone: forget it.
                    Err(TrySendError::Disconnected(_)) => false,
                }
            });
        }
        for (subscribed, dropped) in warnings {
            log::warn!(
                "event bus: a subscriber of {subscribed:?} is {} events behind; {dropped} events dropped for it so far",
                self.inner.capacity
            );
        }
        Ok(delivered)
    }

    /// Subscribes to the events published under `name`, or to every event
    /// with [`"*"`](EventBus::ALL). Events published from now on queue up
    /// in the subscription until it reads them.
    pub fn subscribe(&self, name: &str) -> Subscription {
        let (sender, receiver) = bounded(self.inner.capacity);
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        let state = Arc::new(State::default());
        self.inner.lock().push(Subscriber {
            id,
            name: name.into(),
            sender,
            state: Arc::clone(&state),
        });
        Subscription {
            id,
            name: name.into(),
            receiver,
            state,
            bus: Arc::downgrade(&self.inner),
        }
    }

    /// Runs `handler` for each event published under `name` (or every event,
    /// with `"*"`), in order, on a thread of its own, until the returned
    /// [`Listener`] or the bus is dropped.
    ///
    /// # Errors
    ///
    /// The operating system's, if the thread cannot be started.
    pub fn on(
        &self,
        name: &str,
        handler: impl FnMut(BusEvent) + Send + 'static,
    ) -> io::Result<Listener> {
        let subscription = self.subscribe(name);
        let id = subscription.id;
        let state = Arc::clone(&subscription.state);
        let thread = thread::Builder::new()
            .name("wshub-bus".into())
            .spawn(move || {
                let mut handler = handler;
                while let Some(event) = subscription.recv() {
                    if subscription.state.stopped.load(Ordering::Acquire) {
                        break;
                    }
                    handler(event);
                }
            })?;
        Ok(Listener {
            id,
            name: name.into(),
            state,
            bus: Arc::downgrade(&self.inner),
            thread: Some(thread),
        })
    }

    /// Forwards every event published under `name` to the hub's clients:
    /// `handle.publish(target, kind, data)` for each, on a thread of its
    /// own. E.g. `MessageSent` to every client as `messageReceived`.
    ///
    /// The thread ends when the bus is dropped or, at the next event, once
    /// the hub has shut down.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidName`] for a bad target name or `kind` (checked
    /// now, not at each event), [`Error::Io`] if the thread cannot be
    /// started.
    pub fn bridge(
        &self,
        name: &str,
        handle: Handle,
        target: Target,
        kind: &str,
    ) -> Result<JoinHandle<()>> {
        Publication::new(target.clone(), kind, None)?;
        let kind = kind.to_owned();
        self.bridge_with(name, handle, move |event| {
            Some((target.clone(), kind.clone(), event.data))
        })
    }

    /// Forwards the events published under `name` to the hub's clients as
    /// `map` says: `Some((target, kind, data))` publishes, `None` skips the
    /// event. `map` runs on the bridge's thread; a publication the hub
    /// refuses (a bad name) is logged, at most once a second, and skipped.
    ///
    /// The thread ends when the bus is dropped or, at the next event, once
    /// the hub has shut down.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] if the thread cannot be started.
    pub fn bridge_with(
        &self,
        name: &str,
        handle: Handle,
        map: impl FnMut(BusEvent) -> Option<(Target, String, serde_json::Value)> + Send + 'static,
    ) -> Result<JoinHandle<()>> {
        let subscription = self.subscribe(name);
        let thread = thread::Builder::new()
            .name("wshub-bridge".into())
            .spawn(move || forward(&subscription, &handle, map))?;
        Ok(thread)
    }

    /// How many subscriptions (including handlers and bridges) the bus has.
    pub fn subscribers(&self) -> usize {
        self.inner.lock().len()
    }
}

impl Default for EventBus {
    fn default() -> EventBus {
        EventBus::new()
    }
}

impl fmt::Debug for EventBus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventBus")
            .field("capacity", &self.inner.capacity)
            .field("subscribers", &self.subscribers())
            .finish()
    }
}

impl Inner {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Subscriber>> {
        self.subscribers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn remove(&self, id: u64) {
        self.lock().retain(|s| s.id != id);
    }
}

/// Forget subscription `id` of `bus`, if the bus is still there.
fn unsubscribe(bus: &Weak<Inner>, id: u64) {
    if let Some(bus) = bus.upgrade() {
        bus.remove(id);
    }
}

/// A bridge's thread: publishes what `map` makes of each event.
fn forward(
    subscription: &Subscription,
    handle: &Handle,
    mut map: impl FnMut(BusEvent) -> Option<(Target, String, serde_json::Value)>,
) {
    let refused = Throttle::default();
    while let Some(event) = subscription.recv() {
        let Some((target, kind, data)) = map(event) else {
            continue;
        };
        match handle.publish(target, &kind, &data) {
            Ok(_) => {}
            Err(Error::Closed) => {
                log::debug!(
                    "event bus bridge of {:?} ends: the hub has shut down",
                    subscription.name
                );
                return;
            }
            Err(err) => {
                if refused.ready() {
                    log::warn!(
                        "event bus bridge of {:?}: the hub refused a {kind:?}: {err}",
                        subscription.name
                    );
                }
            }
        }
    }
    log::debug!(
        "event bus bridge of {:?} ends: the bus is gone",
        subscription.name
    );
}

/// The events published under one name (or all of them), queued until read.
///
/// Dropping it unsubscribes.
pub struct Subscription {
    id: u64,
    name: Box<str>,
    receiver: Receiver<BusEvent>,
    state: Arc<State>,
    bus: Weak<Inner>,
}

impl Subscription {
    /// The name it subscribes to (`"*"` for all).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The next event, waiting for one; `None` once the bus is dropped and
    /// every queued event has been read.
    pub fn recv(&self) -> Option<BusEvent> {
        self.receiver.recv().ok()
    }

    /// The next event, waiting at most `timeout`.
    ///
    /// # Errors
    ///
    /// `Timeout` if none came, `Disconnected` once the bus is dropped and
    /// the queue is empty.
    pub fn recv_timeout(&self, timeout: Duration) -> Result<BusEvent, RecvTimeoutError> {
        self.receiver.recv_timeout(timeout)
    }

    /// The next event if one is queued.
    ///
    /// # Errors
    ///
    /// `Empty` if none is, `Disconnected` once the bus is dropped and the
    /// queue is empty.
    pub fn try_recv(&self) -> Result<BusEvent, TryRecvError> {
        self.receiver.try_recv()
    }

    /// The queue itself, e.g. for `crossbeam_channel::select!`.
    pub fn receiver(&self) -> &Receiver<BusEvent> {
        &self.receiver
    }

    /// How many events were dropped because the queue was full.
    pub fn dropped(&self) -> u64 {
        self.state.dropped.load(Ordering::Relaxed)
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        unsubscribe(&self.bus, self.id);
    }
}

impl fmt::Debug for Subscription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Subscription")
            .field("name", &self.name)
            .field("queued", &self.receiver.len())
            .field("dropped", &self.dropped())
            .finish()
    }
}

/// A handler running on its own thread (from [`EventBus::on`]).
///
/// Dropping it stops the handler: it finishes the event it is handling, if
/// any, and is called no more. Dropping does not wait for that; see
/// [`join`](Listener::join).
pub struct Listener {
    id: u64,
    name: Box<str>,
    state: Arc<State>,
    bus: Weak<Inner>,
    thread: Option<JoinHandle<()>>,
}

impl Listener {
    /// How many events were dropped because the handler's queue was full.
    pub fn dropped(&self) -> u64 {
        self.state.dropped.load(Ordering::Relaxed)
    }

    /// Whether the handler's thread has ended.
    pub fn is_finished(&self) -> bool {
        self.thread.as_ref().is_none_or(JoinHandle::is_finished)
    }

    /// Waits until the handler's thread ends, which it does once the bus is
    /// dropped and the queued events are handled. It does not stop the
    /// handler: drop the listener for that.
    ///
    /// # Errors
    ///
    /// The handler's panic, if it panicked.
    pub fn join(mut self) -> thread::Result<()> {
        match self.thread.take() {
            Some(thread) => thread.join(),
            None => Ok(()),
        }
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.state.stopped.store(true, Ordering::Release);
        // Its sender goes with it, which wakes the thread if it waits.
        unsubscribe(&self.bus, self.id);
    }
}

impl fmt::Debug for Listener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Listener")
            .field("name", &self.name)
            .field("dropped", &self.dropped())
            .field("finished", &self.is_finished())
            .finish()
    }
}

/// Says yes at most once per [`WARN_EVERY`].
#[derive(Default)]
struct Throttle(Mutex<Option<Instant>>);

impl Throttle {
    fn ready(&self) -> bool {
        let mut last = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        match *last {
            Some(at) if now.duration_since(at) < WARN_EVERY => false,
            _ => {
                *last = Some(now);
                true
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc;

    use serde_json::json;

    use super::*;
    use crate::Hub;
    use crate::events::tests::{DEADLINE, WireClient};
    use crate::events::{Event, MessageReceived, Notification};

    /// Waits, up to [`DEADLINE`], until `done` holds.
    fn wait_until(what: &str, done: impl Fn() -> bool) {
        let start = Instant::now();
        while !done() {
            assert!(start.elapsed() < DEADLINE, "timed out waiting for {what}");
            thread::yield_now();
        }
    }

    #[test]
    fn subscribers_get_the_events_of_their_name() {
        let bus = EventBus::new();
        let sent = bus.subscribe("MessageSent");
        let other = bus.subscribe("MessageReceived");
        assert_eq!(bus.publish("Nobody", json!(1)).unwrap(), 0);
        let data = json!({"id": "msg-123", "content": "Hello, Cursor!"});
        assert_eq!(bus.publish("MessageSent", &data).unwrap(), 1);
        let event = sent.try_recv().unwrap();
        assert_eq!(event.name, "MessageSent");
        assert_eq!(event.data, data);
        assert!(matches!(other.try_recv(), Err(TryRecvError::Empty)));
        assert!(matches!(sent.try_recv(), Err(TryRecvError::Empty)));
        assert_eq!(sent.name(), "MessageSent");
    }

    #[test]
    fn a_wildcard_gets_everything_in_order() {
        let bus = EventBus::new();
        let all = bus.subscribe(EventBus::ALL);
        let one = bus.subscribe("B");
        assert_eq!(bus.publish("A", 1).unwrap(), 1);
        assert_eq!(bus.publish("B", 2).unwrap(), 2);
        assert_eq!(bus.publish("C", 3).unwrap(), 1);
        let names: Vec<String> = all.receiver().try_iter().map(|e| e.name).collect();
        assert_eq!(names, ["A", "B", "C"]);
        assert_eq!(one.try_recv().unwrap().data, json!(2));
    }

    #[test]
    fn typed_events_travel_and_parse_back() {
        let bus = EventBus::new();
        let sub = bus.subscribe("notify");
        bus.publish("notify", Notification::success("All tests passed!"))
            .unwrap();
        let event = sub.recv().unwrap();
        let back: Notification = event.parse().unwrap();
        assert_eq!(back, Notification::success("All tests passed!"));
        assert!(matches!(
            event.parse::<MessageReceived>(),
            Err(Error::Json(_))
        ));
        // A map with non-string keys is not JSON.
        let bad: std::collections::HashMap<(u8, u8), u8> = [((1, 2), 3)].into();
        assert!(matches!(bus.publish("notify", bad), Err(Error::Json(_))));
    }

    #[test]
    fn a_subscriber_that_never_reads_neither_blocks_nor_starves_others() {
        let bus = EventBus::with_capacity(4);
        let stuck = bus.subscribe("tick");
        let reader = bus.subscribe("tick");
        let publisher = bus.clone();
        let (done, finished) = mpsc::channel();
        let thread = thread::spawn(move || {
            let mut delivered = Vec::new();
            for i in 0..10_000 {
                delivered.push(publisher.publish("tick", i).unwrap());
                // The reader keeps up; the stuck one never reads.
                assert_eq!(reader.try_recv().unwrap().data, json!(i));
            }
            let _ = done.send(delivered);
        });
        let delivered = finished
            .recv_timeout(DEADLINE)
            .expect("publish never blocks");
        thread.join().unwrap();
        assert_eq!(delivered[..4], [2, 2, 2, 2]);
        assert!(delivered[4..].iter().all(|&n| n == 1));
        assert_eq!(stuck.dropped(), 10_000 - 4);
        let kept: Vec<_> = stuck.receiver().try_iter().map(|e| e.data).collect();
        assert_eq!(kept, [json!(0), json!(1), json!(2), json!(3)]);
    }

    #[test]
    fn drop_warnings_come_at_most_once_a_second() {
        let throttle = Throttle::default();
        assert!(throttle.ready());
        assert!(!throttle.ready());
        *throttle.0.lock().unwrap() = Instant::now().checked_sub(WARN_EVERY);
        assert!(throttle.ready());
        assert!(!throttle.ready());
    }

    #[test]
    fn dropped_subscriptions_are_forgotten() {
        let bus = EventBus::with_capacity(0);
        let a = bus.subscribe("x");
        let b = bus.subscribe("*");
        assert_eq!(bus.subscribers(), 2);
        drop(a);
        assert_eq!(bus.subscribers(), 1);
        assert_eq!(bus.publish("x", 1).unwrap(), 1);
        // Capacity 0 means 1: the next one is dropped.
        assert_eq!(bus.publish("x", 2).unwrap(), 0);
        assert_eq!(b.dropped(), 1);
        drop(b);
        assert_eq!(bus.subscribers(), 0);
        assert_eq!(bus.publish("x", 3).unwrap(), 0);
        // A subscription that outlives its bus just ends.
        let orphan = bus.subscribe("x");
        drop(bus);
        assert!(orphan.recv().is_none());
    }

    #[test]
    fn handlers_run_in_order_and_end_with_the_bus() {
        let bus = EventBus::new();
        let (seen, events) = mpsc::channel();
        let listener = bus
            .on("MessageSent", move |event| {
                seen.send(event.data).unwrap();
            })
            .unwrap();
        for i in 0..3 {
            assert_eq!(bus.publish("MessageSent", i).unwrap(), 1);
        }
        for i in 0..3 {
            assert_eq!(events.recv_timeout(DEADLINE).unwrap(), json!(i));
        }
        assert_eq!(listener.dropped(), 0);
        drop(bus);
        // The handler (and the sender it owns) goes when its thread ends.
        assert_eq!(
            events.recv_timeout(DEADLINE),
            Err(mpsc::RecvTimeoutError::Disconnected)
        );
        // Marked finished a moment after the closure is dropped.
        wait_until("the handler thread to end", || listener.is_finished());
        listener.join().unwrap();
    }

    #[test]
    fn dropping_a_listener_stops_its_handler() {
        let bus = EventBus::new();
        let (seen, events) = mpsc::channel();
        let listener = bus
            .on("*", move |event| {
                seen.send(event.name).unwrap();
            })
            .unwrap();
        assert_eq!(bus.publish("a", ()).unwrap(), 1);
        assert_eq!(events.recv_timeout(DEADLINE).unwrap(), "a");
        drop(listener);
        assert_eq!(bus.subscribers(), 0);
        assert_eq!(bus.publish("b", ()).unwrap(), 0);
        assert_eq!(
            events.recv_timeout(DEADLINE),
            Err(mpsc::RecvTimeoutError::Disconnected)
        );
    }

    #[test]
    fn bridges_forward_to_clients_and_end_with_the_hub_or_the_bus() {
        let server = Hub::bind("127.0.0.1:0").unwrap().spawn().unwrap();
        let handle = server.handle().clone();
        let mut client = WireClient::connect(server.local_addr(), "/ws");
        let bus = EventBus::new();

        let bad = bus.bridge("x", handle.clone(), Target::channel("no spaces"), "event");
        assert!(matches!(bad, Err(Error::InvalidName { .. })));
        assert_eq!(bus.subscribers(), 0);

        let bridge = bus
            .bridge(
                "MessageSent",
                handle.clone(),
                Target::Broadcast,
                MessageReceived::TYPE,
            )
            .unwrap();
        let (alive, gone) = mpsc::channel::<()>();
        let mapped = bus
            .bridge_with("Notify", handle.clone(), move |event| {
                let _alive = &alive;
                let text = event.data.as_str()?.to_owned();
                let data = serde_json::to_value(Notification::info(text)).ok()?;
                Some((Target::Broadcast, Notification::TYPE.to_owned(), data))
            })
            .unwrap();

        let message = MessageReceived::new("msg-123", "Hello, Cursor!").kind("user");
        assert_eq!(bus.publish("MessageSent", &message).unwrap(), 1);
        let received = client.expect("messageReceived");
        assert_eq!(received["data"], serde_json::to_value(&message).unwrap());

        // Skipped by the mapping (not a string), then forwarded.
        assert_eq!(bus.publish("Notify", 42).unwrap(), 1);
        assert_eq!(bus.publish("Notify", "deployed").unwrap(), 1);
        let note = client.expect("notification");
        assert_eq!(
            note["data"],
            json!({"level": "info", "message": "deployed"})
        );

        // The hub goes: the plain bridge ends at its next event.
        client.close();
        server.shutdown().unwrap();
        bus.publish("MessageSent", &message).unwrap();
        wait_until("the bridge to end", || bridge.is_finished());
        bridge.join().unwrap();

        // The bus goes: the mapping bridge ends, its closure with it.
        drop(bus);
        assert_eq!(
            gone.recv_timeout(DEADLINE),
            Err(mpsc::RecvTimeoutError::Disconnected)
        );
        wait_until("the mapping bridge to end", || mapped.is_finished());
        mapped.join().unwrap();
    }
}
