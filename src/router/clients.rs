//! Clients coming and going: admission (or refusal) of a new connection,
//! the end of a connection, closes, refusals of bad frames, token refresh.
//!
//! Runs on the router thread. A refused connection costs less than an
//! admitted one: it is never registered, and it keeps its handshake slot
//! until it is gone, so refusals count against their address's handshake
//! limit and cannot take every thread.

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use serde_json::value::RawValue;
use tungstenite::Bytes;

use super::{Client, Closing, Router};
use crate::analytics::Refusal;
use crate::budget::HandshakeSlot;
use crate::history::StreamKey;
use crate::inbox::{Ending, FrameRefusal, Joining};
use crate::link::Link;
use crate::protocol::{
    AuthResult, Close, Empty, Envelope, ErrorCode, Kind, Message, Topic, Welcome, close_reply, raw,
};
use crate::subscriptions::ClientId;
use crate::throttle::{warn_refused, warn_throttled};

impl Router {
    /// A handshake is done: admit the client (welcome, session, presence)
    /// or refuse it with 1001 or 1013.
    pub(super) fn join(&mut self, joining: Joining) {
        let now = Instant::now();
        let Joining {
            link,
            name,
            peer,
            identity,
            session_id,
            handles,
            handshake,
            envelope,
            console,
        } = joining;
        let user_connections = identity
            .user_id
            .as_deref()
            .map_or(0, |u| self.users.count(u));
        let address = peer.ip().to_canonical();
        let address_limited = self.config.max_connections_per_ip > 0
            && !self
                .config
                .trusted_proxies
                .iter()
                .any(|p| p.to_canonical() == address);
        let address_connections = self.addresses.get(&address).copied().unwrap_or(0);
        let refusal = if self.stopping.is_some() {
            Some(Close::GoingAway)
        } else if self.clients.len() >= self.config.max_connections {
            Some(Close::ServerFull)
        } else if user_connections >= self.config.max_connections_per_user {
            Some(Close::UserFull)
        } else if address_limited && address_connections >= self.config.max_connections_per_ip {
            Some(Close::AddressFull)
        } else {
            None
        };
        link.admit(refusal.is_none());
        if let Some(close) = refusal {
            let reason = close.reason();
            warn_refused!(peer.ip().to_canonical(), reason; "refused {name} from {peer}: {reason}");
            self.meters.refused(Refusal::of_close(close));
            return self.refuse_handshake(&link, vec![close.frame()], handshake);
        }
        // Admitted: the handshake slot goes back to the accept loop.
        drop(handshake);

        let id = link.id;
        let user = identity.user_id.clone();
        let service = identity.is_service();
        let heard = link.heard();
        let client = Client {
            name: name.into(),
            peer,
            channels: Vec::new(),
            sessions: Vec::new(),
            link,
            next_ping: now + self.config.heartbeat_interval,
            pinged_at: None,
            unanswered: None,
            heard,
            slow: false,
            meta: identity.meta.clone().unwrap_or_default(),
            pending: 0,
            envelope,
            replays: Vec::new(),
            identity,
            console,
            since: SystemTime::now(),
        };
        log::debug!(
            "client {} connected from {}{} ({} connected)",
            client.name,
            client.peer,
            user.as_deref()
                .map(|u| format!(" as user {u:?}"))
                .unwrap_or_default(),
            self.clients.len() + 1
        );
        self.names.insert(client.name.clone(), id);
        *self.addresses.entry(address).or_default() += 1;
        self.clients.insert(id, client);
        self.counters.total_connections += 1;
        // A dashboard may act as a service, but answers no application
        // requests.
        if service && !console {
            self.services.add(id, handles);
            self.services_changed();
        }
        // The session asked for in the query, if this client may join it:
        // the same admission, and the same error, as a `subscribe`.
        let (session, refused) = match session_id {
            None => (None, None),
            Some(session) => match self.join_session(id, &session, false) {
                Ok(()) => (Some(session), None),
                Err(refusal) => (None, Some(refusal)),
            },
        };
        self.welcome(id, session.as_deref());
        if let Some(session) = &session {
            // With other hubs, the session's position (and its owner) is
            // Redis's: its publications wait until Redis answers.
            self.cluster_claim(id, session);
        }
        if let Some((code, message)) = refused {
            self.error(id, code, &message, None);
        }
        if let Some(user) = user {
            self.user_connected(id, &user);
        }
        if console {
            self.console_joined(id);
        }
    }

    /// A client refused at its handshake: it gets `frames` (a reason and a
    /// Close), the writer lingers on its socket until it closes, and it
    /// keeps its handshake slot until it is gone or cut at `close_timeout`.
    pub(super) fn refuse_handshake(
        &mut self,
        link: &Arc<Link>,
        frames: Vec<Bytes>,
        handshake: HandshakeSlot,
    ) {
        self.counters.rejected_connections += 1;
        self.delivery.refuse(link, frames);
        self.closing.push(Closing {
            deadline: Instant::now() + self.config.close_timeout,
            link: Arc::downgrade(link),
            _handshake: Some(handshake),
        });
    }

    /// The `connection` welcome, always the client's first message.
    fn welcome(&mut self, id: ClientId, session: Option<&str>) {
        let Some(client) = self.clients.get(&id) else {
            return;
        };
        let envelope = client.envelope;
        let (kind, status) = match envelope {
            Envelope::Standard => (Kind::Connection, None),
            Envelope::Flat => (Kind::Connection, Some("connected")),
            Envelope::Payload => (Kind::ConnectionEstablished, None),
        };
        // The flat envelope names the session where it names every other
        // message's: at the top level, next to `type`.
        let topic = session.map(Topic::session);
        let (session_id, topic) = match envelope {
            Envelope::Flat => (None, topic.as_ref()),
            Envelope::Standard | Envelope::Payload => (Some(session), None),
        };
        let welcome = raw(&Welcome {
            status,
            client_id: &client.name,
            user_id: client.identity.user_id.as_deref(),
            session_id,
            authenticated: client.identity.authenticated(),
            heartbeat_ms: self.config.heartbeat_interval.as_millis() as u64,
            service: client.identity.is_service(),
        });
        // The Code Cloud Agents clients expect to hear how their token went.
        let auth = (envelope == Envelope::Standard).then(|| {
            raw(&AuthResult {
                success: client.identity.sees_private_events(),
                user_id: client.identity.user_id.as_deref(),
                error: client.identity.refused_token.as_deref(),
            })
        });
        self.send_message(
            id,
            &Message::new(kind.as_str(), Some(&welcome)).topic(topic),
        );
        if let Some(auth) = auth {
            self.send_message(id, &Message::new(Kind::Auth.as_str(), Some(&auth)));
        }
    }

    /// A reader stopped: the client closed, went away, or never got a reader.
    pub(super) fn left(&mut self, link: &Arc<Link>, why: Ending) {
        let Some(client) = self.detach(link.id) else {
            // Closed or refused already: its `Closing` entry sees it go.
            return;
        };
        log::debug!(
            "client {} disconnected ({} connected)",
            client.name,
            self.clients.len()
        );
        match why {
            Ending::PeerClosed(code) => {
                // Answered after the replies already queued for it.
                self.delivery.close_with(link, close_reply(code), false);
                self.closing.push(Closing {
                    deadline: Instant::now() + self.config.close_timeout,
                    link: Arc::downgrade(link),
                    _handshake: None,
                });
            }
            Ending::Gone => link.cut(),
            Ending::NoReader => {
                self.delivery.close(link, Close::Internal, false);
                self.closing.push(Closing {
                    deadline: Instant::now() + self.config.close_timeout,
                    link: Arc::downgrade(link),
                    _handshake: None,
                });
            }
        }
    }

    /// A frame or a client the reader refused.
    pub(super) fn frame_refused(&mut self, id: ClientId, why: FrameRefusal) {
        if !self.clients.contains_key(&id) {
            return;
        }
        match why {
            FrameRefusal::Binary => {
                self.counters.messages_received += 1;
                self.error(
                    id,
                    ErrorCode::UnsupportedFrame,
                    "Binary frames are not supported: send JSON in text frames",
                    None,
                );
            }
            FrameRefusal::RateLimited { correlation_id } => {
                self.counters.messages_received += 1;
                self.counters.rate_limited += 1;
                let message = format!(
                    "Rate limit exceeded: at most {} messages per {} s, {} at once; this one was dropped",
                    self.config.rate_limit,
                    self.config.rate_window.as_secs_f64(),
                    self.config.rate_burst
                );
                self.error(
                    id,
                    ErrorCode::RateLimited,
                    &message,
                    correlation_id.as_deref(),
                );
            }
            FrameRefusal::Abuse => {
                self.counters.rate_limited += 1;
                if let Some(client) = self.clients.get(&id) {
                    warn_throttled!(
                        "client {} sends far over its rate limit: closing it with 1013",
                        client.name
                    );
                }
                self.close(id, Close::Abuse, true);
            }
            FrameRefusal::TooBig => {
                let message = format!("Message larger than {} bytes", self.config.max_message_size);
                self.error(id, ErrorCode::PayloadTooLarge, &message, None);
                self.close(id, Close::TooBig, false);
            }
            FrameRefusal::InvalidUtf8 => {
                self.error(
                    id,
                    ErrorCode::InvalidMessage,
                    "Text frame is not valid UTF-8",
                    None,
                );
                self.close(id, Close::InvalidUtf8, false);
            }
            FrameRefusal::Protocol => self.close(id, Close::Protocol, false),
            FrameRefusal::ControlFlood => {
                self.counters.rate_limited += 1;
                if let Some(client) = self.clients.get(&id) {
                    warn_throttled!(
                        "client {} floods Pings or Pongs: closing it with 1013",
                        client.name
                    );
                }
                self.close(id, Close::Abuse, false);
            }
        }
    }

    /// Forgets a client and sends it a Close, after what is queued or (for
    /// a slow consumer, `abort`) instead of it. Its socket is cut if the
    /// close handshake is not over within `close_timeout`.
    pub(super) fn close(&mut self, id: ClientId, close: Close, abort: bool) {
        if let Some(client) = self.clients.get(&id) {
            log::debug!(
                "closing client {} with {} {}",
                client.name,
                close.code(),
                close.reason()
            );
        }
        self.close_with(id, close.frame(), abort);
    }

    /// [`close`](Router::close) with an encoded Close frame.
    pub(super) fn close_with(&mut self, id: ClientId, frame: Bytes, abort: bool) {
        if !abort {
            // What it was promised goes out before the Close.
            self.flush_batches_reaching(id);
        }
        let Some(client) = self.detach(id) else {
            return;
        };
        self.delivery.close_with(&client.link, frame, abort);
        self.closing.push(Closing {
            deadline: Instant::now() + self.config.close_timeout,
            link: Arc::downgrade(&client.link),
            _handshake: None,
        });
    }

    /// Forgets a client and cuts its socket at once.
    pub(super) fn terminate(&mut self, id: ClientId) {
        if let Some(client) = self.detach(id) {
            client.link.cut();
        }
    }

    /// Removes a client from every index; tells the others when its user has
    /// no connection left.
    pub(super) fn detach(&mut self, id: ClientId) -> Option<Client> {
        let client = self.clients.remove(&id)?;
        self.names.remove(&client.name);
        if !client.replays.is_empty() {
            self.replaying.remove(&id);
        }
        if client.console {
            self.console_left(id);
        } else if client.identity.is_service() {
            self.service_left(id);
        }
        if client.pending > 0 {
            self.forget_pending(id, &client.name);
        }
        let address = client.peer.ip().to_canonical();
        if let Some(count) = self.addresses.get_mut(&address) {
            *count -= 1;
            if *count == 0 {
                self.addresses.remove(&address);
            }
        }
        for channel in &client.channels {
            self.channels.remove(channel, id);
        }
        let now = Instant::now();
        for session in &client.sessions {
            self.sessions.leave(session, id, now);
        }
        if let Some(user) = &client.identity.user_id {
            self.users.remove(user, id);
            if self.users.count(user) == 0 {
                self.user_disconnected(user, now);
            }
        }
        Some(client)
    }

    /// Replaces the client's token with a newer one for the same user.
    pub(super) fn refresh(&mut self, id: ClientId, token: &str, correlation: Option<&RawValue>) {
        let Some(client) = self.clients.get_mut(&id) else {
            return;
        };
        if !self.auth.client_auth() {
            let message = "Token refresh needs token auth (--tokens, --jwt-secret, --jwt-public-key or --jwks-url)";
            return self.error(id, ErrorCode::Forbidden, message, correlation);
        }
        let identity = match self.auth.verify(token, SystemTime::now()) {
            Ok(identity) => identity,
            Err(denied) => {
                return self.error(
                    id,
                    ErrorCode::Unauthorized,
                    &denied.to_string(),
                    correlation,
                );
            }
        };
        if identity.user_id != client.identity.user_id {
            let message = "The new token is for another user";
            return self.error(id, ErrorCode::Forbidden, message, correlation);
        }
        // What a connection may say is fixed when it opens: a service
        // connection stays one, and a client cannot become one.
        if identity.is_service() != client.identity.is_service() {
            let message = match client.identity.is_service() {
                true => "A service connection must refresh with a service token",
                false => {
                    "A client cannot refresh into a service connection; reconnect with the token"
                }
            };
            return self.error(id, ErrorCode::Forbidden, message, correlation);
        }
        client.identity = identity;
        // Channels the new token no longer allows are left.
        let (kept, lost): (Vec<Box<str>>, Vec<Box<str>>) = std::mem::take(&mut client.channels)
            .into_iter()
            .partition(|c| client.identity.may_read_channel(c));
        client.channels = kept;
        for channel in &lost {
            self.channels.remove(channel, id);
        }
        // Sessions are checked again too: a token that lost admin rights
        // keeps only its own (and claims the ones nobody owns).
        let owner = client.session_owner().map(str::to_owned);
        let max_owned = self.config.max_sessions_per_user;
        let (kept, lost_sessions): (Vec<Box<str>>, Vec<Box<str>>) =
            std::mem::take(&mut client.sessions)
                .into_iter()
                .partition(|s| {
                    self.sessions
                        .join(s, id, owner.as_deref(), max_owned)
                        .is_ok()
                });
        client.sessions = kept;
        let now = Instant::now();
        for session in &lost_sessions {
            self.sessions.leave(session, id, now);
        }
        let lost = lost.into_iter().map(|c| Topic::Channel(c.into()));
        let lost_sessions = lost_sessions.into_iter().map(|s| Topic::Session(s.into()));
        for topic in lost.chain(lost_sessions) {
            // Its catch-up of what it may no longer read ends here too.
            self.stop_replay(id, Some(&StreamKey::of_topic(&topic)));
            self.reply(id, Kind::Unsubscribed, Some(&topic), Some(Empty {}), None);
        }
        self.reply(id, Kind::Ack, None, None::<Empty>, correlation);
    }
}
