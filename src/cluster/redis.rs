//! The two threads that talk to Redis, and the scripts they run there.
//!
//! - `wshub-cluster-out` owns the command connection. It takes what the
//!   router asks ([`Out`]) in batches and sends each batch as one pipeline:
//!   a publication to a stream is one script that numbers it, keeps it in
//!   the stream's history and publishes it, atomically, so every hub sees a
//!   stream in the same order. Every publication is answered
//!   ([`In::Published`]): done, refused unsent, or, when Redis did not
//!   answer, of unknown fate; none is ever handed back to be delivered on
//!   this hub alone. It ends when the router drops its sender.
//! - `wshub-cluster-in` owns the pubsub connection (the bus and this hub's
//!   own channel) and hands every message to the router's cluster lane. It
//!   wakes every [`POLL`] to see whether it should stop, and, once the link
//!   has been quiet for a while, PINGs Redis.
//!
//! Every command has a deadline (`--redis-timeout`): a Redis that does not
//! answer within it, stalled or gone, is lost. Both threads then reconnect
//! with backoff (100 ms doubling to 5 s), log the outage once and its end
//! once, and tell the router ([`In::State`]), which serves its own clients
//! alone while either is down.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crossbeam_channel::{Receiver, RecvTimeoutError};
use redis::{Connection, Value};

use super::wire::{self, Wire};
use super::{HeadReply, In, Kept, Lane, Out, Outcome, Settings, Side};

/// How often the pubsub reader looks whether it should stop.
const POLL: Duration = Duration::from_millis(200);
/// How long the pubsub link may be quiet before Redis is PINGed on it.
const QUIET: Duration = Duration::from_secs(1);
/// Most requests sent in one pipeline.
const BATCH: usize = 512;
/// How long a connection attempt may take: short, so that a hub stopping
/// while Redis is away is not held up by it.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// Publishes a publication once: numbered, kept in its stream's history
/// and published, or only published (no stream); with an idempotency key,
/// a key seen before answers what it kept and nothing is published again.
/// KEYS: meta hash, history stream, idempotency key ('' for none).
/// ARGV: channel, JSON, maxlen, history TTL (ms), meta TTL (ms), now (ms),
/// a fresh epoch (used if the stream has none: its history was lost, or it
/// is new), '1' to number it, what to keep with the key, the key's TTL (ms).
const PUBLISH: &str = r"
if KEYS[3] ~= '' then
  local first = redis.call('GET', KEYS[3])
  if first then
    return {'dup', first}
  end
end
local position = '- -'
local seq = 0
if ARGV[8] == '1' then
  local epoch = redis.call('HGET', KEYS[1], 'epoch')
  if not epoch then
    epoch = ARGV[7]
    redis.call('DEL', KEYS[2])
    redis.call('HSET', KEYS[1], 'epoch', epoch, 'seq', 0, 'base', 0)
  end
  seq = redis.call('HINCRBY', KEYS[1], 'seq', 1)
  redis.call('PEXPIRE', KEYS[1], ARGV[5])
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[3], seq .. '-1', 't', ARGV[6], 'm', ARGV[2])
  redis.call('PEXPIRE', KEYS[2], ARGV[4])
  position = seq .. ' ' .. epoch
end
redis.call('PUBLISH', ARGV[1], position .. ' ' .. ARGV[2])
if KEYS[3] ~= '' then
  redis.call('SET', KEYS[3], ARGV[9], 'PX', ARGV[10])
end
return {'ok', seq}
";

/// Where a stream stands and what it kept after `since` (after where its
/// epoch began, if that is earlier and the epoch is not the one known);
/// first claims a session for its user, if asked. Then marks the answer on the asking hub's
/// channel: the publications it counts were published before the mark.
/// KEYS: meta hash, history stream, session owner key. ARGV: since (-1:
/// none), most entries, meta TTL (ms), a fresh epoch, '1' if the stream
/// keeps history, the claiming user ('' for none), the claim's TTL (ms),
/// the hub's channel, the framed mark, the epoch known ('' for none).
const HEAD: &str = r"
if ARGV[6] ~= '' then
  local owner = redis.call('GET', KEYS[3])
  if owner and owner ~= ARGV[6] then
    return {'refused', owner}
  end
  redis.call('SET', KEYS[3], ARGV[6], 'PX', ARGV[7])
end
if ARGV[5] ~= '1' then
  return {'ok'}
end
local epoch = redis.call('HGET', KEYS[1], 'epoch')
if not epoch then
  epoch = ARGV[4]
  redis.call('DEL', KEYS[2])
  redis.call('HSET', KEYS[1], 'epoch', epoch, 'seq', 0, 'base', 0)
end
redis.call('PEXPIRE', KEYS[1], ARGV[3])
local seq = tonumber(redis.call('HGET', KEYS[1], 'seq'))
local since = tonumber(ARGV[1])
if since >= 0 and ARGV[10] ~= '' and ARGV[10] ~= epoch then
  -- The numbering may have begun again where the epoch changed.
  local base = tonumber(redis.call('HGET', KEYS[1], 'base') or '0')
  if base < since then
    since = base
  end
end
local entries = {}
if since >= 0 and since < seq then
  entries = redis.call('XRANGE', KEYS[2], (since + 1) .. '-0', '+', 'COUNT', ARGV[2])
end
redis.call('PUBLISH', ARGV[8], ARGV[9])
local base = redis.call('HGET', KEYS[1], 'base') or '0'
local prev = redis.call('HGET', KEYS[1], 'prev') or ''
return {'ok', seq, epoch, entries, since, base, prev}
";

/// A user's connection on this hub: the first anywhere makes it online.
/// The hub's lease is made sure of first, so that a hub dying before its
/// first heartbeat still has its users swept.
/// KEYS: the user's hubs, the hub's users, the status hash, the leases.
/// ARGV: user, hub, bus channel, the framed `online` message, the lease's
/// end (ms).
const JOIN: &str = r"
redis.call('ZADD', KEYS[4], 'NX', ARGV[5], ARGV[2])
redis.call('SADD', KEYS[2], ARGV[1])
redis.call('SADD', KEYS[1], ARGV[2])
if redis.call('HEXISTS', KEYS[3], ARGV[1]) == 0 then
  redis.call('HSET', KEYS[3], ARGV[1], 'online')
  redis.call('PUBLISH', ARGV[3], ARGV[4])
  return 1
end
return 0
";

/// A user's last connection on this hub is gone: the last anywhere makes
/// it offline. KEYS and ARGV as [`JOIN`], with the `offline` message (the
/// lease is left alone).
const LEAVE: &str = r"
redis.call('SREM', KEYS[2], ARGV[1])
redis.call('SREM', KEYS[1], ARGV[2])
if redis.call('SCARD', KEYS[1]) == 0 and redis.call('HEXISTS', KEYS[3], ARGV[1]) == 1 then
  redis.call('HDEL', KEYS[3], ARGV[1])
  redis.call('PUBLISH', ARGV[3], ARGV[4])
  return 1
end
return 0
";

/// A stream whose history has a hole gets a new epoch; its numbering goes
/// on, so the epoch's `base` is the seq it began after, and `prev` the
/// epoch the kept publications up to `base` belong to.
/// KEYS: meta hash. ARGV: the new epoch.
const NEW_EPOCH: &str = r"
local seq = redis.call('HGET', KEYS[1], 'seq')
if seq then
  local prev = redis.call('HGET', KEYS[1], 'epoch')
  redis.call('HSET', KEYS[1], 'epoch', ARGV[1], 'base', seq, 'prev', prev)
end
return 0
";

/// This hub is back: the users Redis counts on it that it no longer has
/// left while it was away, as [`LEAVE`] would have said.
/// KEYS: the hub's users, the status hash. ARGV: hub, key prefix, bus
/// channel, then the users the hub has now.
const REJOIN: &str = r#"
local now = {}
for i = 4, #ARGV do
  now[ARGV[i]] = true
end
local gone = 0
for _, user in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  if not now[user] then
    redis.call('SREM', KEYS[1], user)
    local hubs = ARGV[2] .. ':p:' .. user
    redis.call('SREM', hubs, ARGV[1])
    if redis.call('SCARD', hubs) == 0 and redis.call('HEXISTS', KEYS[2], user) == 1 then
      redis.call('HDEL', KEYS[2], user)
      redis.call('PUBLISH', ARGV[3],
        '- - {"presence":{"user":' .. cjson.encode(user) .. ',"status":"offline"}}')
    end
    gone = gone + 1
  end
end
return gone
"#;

/// A status a user set, told once cluster-wide if it changed.
/// KEYS: the status hash. ARGV: user, status, bus channel, framed message.
const STATUS: &str = r"
local now = redis.call('HGET', KEYS[1], ARGV[1])
if not now or now == ARGV[2] then
  return 0
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('PUBLISH', ARGV[3], ARGV[4])
return 1
";

/// This hub's lease, and the users of hubs whose lease ran out: offline,
/// once, if they have no connection left anywhere.
/// KEYS: the hubs' leases. ARGV: hub, now (ms), lease (ms), key prefix,
/// bus channel.
const BEAT: &str = r#"
redis.call('ZADD', KEYS[1], ARGV[2] + ARGV[3], ARGV[1])
local dead = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[2])
for _, hub in ipairs(dead) do
  redis.call('ZREM', KEYS[1], hub)
  local users = ARGV[4] .. ':hu:' .. hub
  for _, user in ipairs(redis.call('SMEMBERS', users)) do
    local hubs = ARGV[4] .. ':p:' .. user
    redis.call('SREM', hubs, hub)
    local statuses = ARGV[4] .. ':status'
    if redis.call('SCARD', hubs) == 0 and redis.call('HEXISTS', statuses, user) == 1 then
      redis.call('HDEL', statuses, user)
      redis.call('PUBLISH', ARGV[5],
        '- - {"presence":{"user":' .. cjson.encode(user) .. ',"status":"offline"}}')
    end
  end
  redis.call('DEL', users)
end
return #dead
"#;

/// The scripts, loaded on every connection (a restarted Redis has none).
struct Scripts {
    publish: String,
    head: String,
    join: String,
    leave: String,
    status: String,
    beat: String,
    rejoin: String,
    new_epoch: String,
}

impl Scripts {
    fn load(con: &mut Connection) -> redis::RedisResult<Scripts> {
        let mut load = |body: &str| -> redis::RedisResult<String> {
            redis::cmd("SCRIPT").arg("LOAD").arg(body).query(con)
        };
        Ok(Scripts {
            publish: load(PUBLISH)?,
            head: load(HEAD)?,
            join: load(JOIN)?,
            leave: load(LEAVE)?,
            status: load(STATUS)?,
            beat: load(BEAT)?,
            rejoin: load(REJOIN)?,
            new_epoch: load(NEW_EPOCH)?,
        })
    }
}

/// Reconnection delays: 100 ms doubling to 5 s.
struct Backoff(Duration);

impl Backoff {
    fn new() -> Backoff {
        Backoff(Duration::from_millis(100))
    }

    fn next(&mut self) -> Duration {
        let now = self.0;
        self.0 = (self.0 * 2).min(Duration::from_secs(5));
        now
    }
}

/// Milliseconds since 1970.
pub(super) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn connect(client: &redis::Client, deadline: Duration) -> redis::RedisResult<Connection> {
    let con = client.get_connection_with_timeout(CONNECT_TIMEOUT.min(deadline))?;
    con.set_read_timeout(Some(deadline))?;
    con.set_write_timeout(Some(deadline))?;
    Ok(con)
}

/// Whether Redis answers a PING within `deadline`, once, at start.
pub(super) fn probe(client: &redis::Client, deadline: Duration) -> redis::RedisResult<()> {
    let mut con = connect(client, deadline)?;
    redis::cmd("PING").query::<String>(&mut con).map(|_| ())
}

/// Tells the router, unless it is gone (then the thread ends soon anyway).
fn tell(lane: &Lane, event: In) -> bool {
    lane.send(event).is_ok()
}

/// The router's requests, and one put back: a [`Out::NewEpochs`] ends the
/// batch before it, so what was asked before it goes first.
struct Requests {
    queue: Receiver<Out>,
    next: Option<Out>,
}

impl Requests {
    /// The next batch, waiting for its first request: up to [`BATCH`],
    /// ending before a [`Out::NewEpochs`]. One that comes first goes into
    /// `renew` instead (the batch is then empty). `None` when the router
    /// is gone.
    fn batch(&mut self, renew: &mut BTreeSet<String>) -> Option<Vec<Out>> {
        let first = match self.next.take() {
            Some(out) => out,
            None => self.queue.recv().ok()?,
        };
        if let Out::NewEpochs(streams) = first {
            renew.extend(streams);
            return Some(Vec::new());
        }
        let mut batch = vec![first];
        while batch.len() < BATCH {
            match self.queue.try_recv() {
                Ok(out @ Out::NewEpochs(_)) => {
                    self.next = Some(out);
                    break;
                }
                Ok(out) => batch.push(out),
                Err(_) => break,
            }
        }
        Some(batch)
    }

    /// Answers at once everything that comes until `until` (what waits
    /// now, if `until` is now): nothing can go to Redis meanwhile.
    /// Publications are refused unsent and heads unanswered; streams to
    /// renew are kept for later; the rest (presence, heartbeats, messages
    /// for other hubs) is dropped: the router says it again once back.
    /// `false` when the router is gone.
    fn refuse_until(&mut self, until: Instant, lane: &Lane, renew: &mut BTreeSet<String>) -> bool {
        let why = "Redis is unreachable: not published; try again";
        loop {
            let first = match self.next.take() {
                Some(out) => out,
                None => match self
                    .queue
                    .recv_timeout(until.saturating_duration_since(Instant::now()))
                {
                    Ok(out) => out,
                    Err(RecvTimeoutError::Timeout) => return true,
                    Err(RecvTimeoutError::Disconnected) => return false,
                },
            };
            let mut refused = Vec::new();
            for out in std::iter::once(first).chain(self.queue.try_iter().take(BATCH)) {
                match out {
                    Out::Publish { ticket, .. } => {
                        refused.push((ticket, Outcome::NotSent(why.to_owned())));
                    }
                    Out::Head { ticket, .. } => {
                        tell(
                            lane,
                            In::Head {
                                ticket,
                                reply: None,
                            },
                        );
                    }
                    Out::NewEpochs(streams) => renew.extend(streams),
                    _ => {}
                }
            }
            if !refused.is_empty() {
                tell(lane, In::Published(refused));
            }
        }
    }
}

/// The cluster-out thread's loop.
pub(super) fn run_out(
    client: redis::Client,
    settings: Arc<Settings>,
    requests: Receiver<Out>,
    lane: Lane,
) {
    let mut requests = Requests {
        queue: requests,
        next: None,
    };
    // Streams whose new epoch is still to be set in Redis, before anything
    // more of them is numbered there.
    let mut renew = BTreeSet::new();
    let mut backoff = Backoff::new();
    let mut outage_logged = false;
    loop {
        let connected = connect(&client, settings.deadline).and_then(|mut con| {
            let scripts = Scripts::load(&mut con)?;
            Ok((con, scripts))
        });
        let (mut con, mut scripts) = match connected {
            Ok(ready) => ready,
            Err(err) => {
                if !outage_logged {
                    log::warn!(
                        "Redis at {} is unreachable ({err}): serving this hub's clients alone, reconnecting",
                        settings.shown_url
                    );
                    outage_logged = true;
                }
                tell(&lane, In::State(Side::Out, false));
                let until = Instant::now() + backoff.next();
                if !requests.refuse_until(until, &lane, &mut renew) {
                    return;
                }
                continue;
            }
        };
        if outage_logged {
            log::info!("Redis at {} is back", settings.shown_url);
        } else {
            log::info!(
                "joined the hubs of Redis at {} as hub {}",
                settings.shown_url,
                settings.hub
            );
        }
        backoff = Backoff::new();
        tell(&lane, In::State(Side::Out, true));
        match serve(
            &mut con,
            &mut scripts,
            &settings,
            &mut requests,
            &lane,
            &mut renew,
        ) {
            Ok(()) => return,
            Err(err) => {
                log::warn!("lost Redis at {} ({err}): reconnecting", settings.shown_url);
                outage_logged = true;
                tell(&lane, In::State(Side::Out, false));
                // What waits now would wait for the reconnection: it is
                // refused at once instead.
                if !requests.refuse_until(Instant::now(), &lane, &mut renew) {
                    return;
                }
            }
        }
    }
}

/// Serves the router's requests on a live connection: `Ok` once the
/// router is gone, `Err` when the connection broke or Redis did not answer
/// in time (what was in flight is answered first, as of unknown fate).
fn serve(
    con: &mut Connection,
    scripts: &mut Scripts,
    settings: &Settings,
    requests: &mut Requests,
    lane: &Lane,
    renew: &mut BTreeSet<String>,
) -> redis::RedisResult<()> {
    loop {
        if !renew.is_empty() {
            renew_epochs(con, scripts, settings, renew)?;
        }
        let Some(batch) = requests.batch(renew) else {
            return Ok(());
        };
        let batch = screen(batch, settings, renew, lane);
        if batch.is_empty() {
            continue;
        }
        match send_batch(con, scripts, settings, &batch) {
            Ok(done) => settle(con, scripts, settings, lane, &batch, done)?,
            Err(err) => {
                lost(lane, &batch, &err, settings);
                return Err(err);
            }
        }
    }
}

/// Takes out of a batch what must not go: publications that waited longer
/// than the deadline (their publishers are waiting), or to a stream whose
/// new epoch is not set yet, are refused; heads of such a stream are
/// unanswered (the client learns `recovered: false`).
fn screen(batch: Vec<Out>, settings: &Settings, renew: &BTreeSet<String>, lane: &Lane) -> Vec<Out> {
    let now = Instant::now();
    let mut refused = Vec::new();
    let mut kept = Vec::with_capacity(batch.len());
    for out in batch {
        match &out {
            Out::Publish { ticket, taken, .. }
                if now.saturating_duration_since(*taken) > settings.deadline =>
            {
                let why = format!(
                    "Redis did not take it within {:?}: not published; try again",
                    settings.deadline
                );
                refused.push((*ticket, Outcome::NotSent(why)));
            }
            Out::Publish {
                ticket,
                stream: Some(stream),
                ..
            } if renew.contains(stream) => {
                let why =
                    "its stream's new epoch is not set in Redis yet: not published; try again";
                refused.push((*ticket, Outcome::NotSent(why.to_owned())));
            }
            Out::Head { ticket, stream, .. } if renew.contains(stream) => {
                tell(
                    lane,
                    In::Head {
                        ticket: *ticket,
                        reply: None,
                    },
                );
            }
            _ => kept.push(out),
        }
    }
    if !refused.is_empty() {
        tell(lane, In::Published(refused));
    }
    kept
}

/// Gives each stream of `renew` its new epoch; those Redis refused stay
/// (and their publications are refused meanwhile). `Err` when the
/// connection broke: they all stay, and go first once it is back.
fn renew_epochs(
    con: &mut Connection,
    scripts: &mut Scripts,
    settings: &Settings,
    renew: &mut BTreeSet<String>,
) -> redis::RedisResult<()> {
    let mut reloaded = false;
    loop {
        let streams: Vec<String> = renew.iter().cloned().collect();
        let mut lost_scripts = false;
        for chunk in streams.chunks(BATCH) {
            let mut pipe = redis::pipe();
            pipe.ignore_errors();
            for stream in chunk {
                pipe.cmd("EVALSHA")
                    .arg(&scripts.new_epoch)
                    .arg(1)
                    .arg(format!("{}:m:{stream}", settings.prefix))
                    .arg(super::fresh_epoch());
            }
            let values: Vec<Value> = pipe.query(con)?;
            for (stream, value) in chunk.iter().zip(values) {
                match value {
                    Value::ServerError(err) if err.code() == "NOSCRIPT" => lost_scripts = true,
                    Value::ServerError(err) => {
                        crate::throttle::warn_throttled!(
                            "Redis refused a stream's new epoch ({err:?}): its publications are refused until it takes it"
                        );
                    }
                    _ => {
                        renew.remove(stream);
                    }
                }
            }
        }
        if !lost_scripts || reloaded {
            return Ok(());
        }
        log::warn!("Redis lost this hub's scripts: loading them again");
        *scripts = Scripts::load(con)?;
        reloaded = true;
    }
}

/// What a sent batch came to: the answers go to the router; what found no
/// script goes again once the scripts are loaded. `Err` when the
/// connection broke meanwhile (what went with it is of unknown fate).
fn settle(
    con: &mut Connection,
    scripts: &mut Scripts,
    settings: &Settings,
    lane: &Lane,
    batch: &[Out],
    done: Done,
) -> redis::RedisResult<()> {
    let again = pick(batch, &done.noscript);
    done.tell(lane);
    if again.is_empty() {
        return Ok(());
    }
    log::warn!("Redis lost this hub's scripts: loading them again");
    let retried = Scripts::load(con).and_then(|loaded| {
        *scripts = loaded;
        send_batch(con, scripts, settings, &again)
    });
    match retried {
        Ok(mut done) => {
            // Lost again at once: refused rather than tried for ever.
            for out in pick(&again, &done.noscript) {
                match out {
                    Out::Publish { ticket, .. } => {
                        let why = "Redis lost this hub's scripts twice in a row: not published; try again";
                        done.published
                            .push((ticket, Outcome::NotSent(why.to_owned())));
                    }
                    Out::Head { ticket, .. } => done.replies.push(In::Head {
                        ticket,
                        reply: None,
                    }),
                    _ => {}
                }
            }
            done.tell(lane);
            Ok(())
        }
        Err(err) => {
            lost(lane, &again, &err, settings);
            Err(err)
        }
    }
}

/// A batch whose answers never came: its publications may or may not have
/// been run by Redis (nothing of them is delivered here by other means),
/// its heads are unanswered.
fn lost(lane: &Lane, batch: &[Out], err: &redis::RedisError, settings: &Settings) {
    let why = match err.is_timeout() {
        true => format!(
            "Redis did not answer within {:?}: it may have been published; retry with the same idempotencyKey",
            settings.deadline
        ),
        false => format!(
            "the connection to Redis broke ({err}): it may have been published; retry with the same idempotencyKey"
        ),
    };
    let mut unknown = Vec::new();
    for out in batch {
        match out {
            Out::Publish { ticket, .. } => unknown.push((*ticket, Outcome::Unknown(why.clone()))),
            Out::Head { ticket, .. } => {
                tell(
                    lane,
                    In::Head {
                        ticket: *ticket,
                        reply: None,
                    },
                );
            }
            _ => {}
        }
    }
    if !unknown.is_empty() {
        tell(lane, In::Published(unknown));
    }
}

/// One batch as one pipeline; the answers the router waits for.
fn send_batch(
    con: &mut Connection,
    scripts: &Scripts,
    settings: &Settings,
    batch: &[Out],
) -> redis::RedisResult<Done> {
    let mut pipe = redis::pipe();
    pipe.ignore_errors();
    let now = now_ms();
    let key = |kind: &str, name: &str| format!("{}:{kind}:{name}", settings.prefix);
    let bus = wire::bus_channel(&settings.prefix);
    let once_ttl_ms = u64::try_from(crate::idempotency::TTL.as_millis()).unwrap_or(u64::MAX);
    for out in batch {
        match out {
            Out::Publish {
                channel,
                stream,
                body,
                once,
                reached,
                ..
            } => {
                if stream.is_none() && once.is_none() {
                    pipe.cmd("PUBLISH").arg(channel).arg(format!("- - {body}"));
                    continue;
                }
                let named = |kind: &str, name: &Option<String>| {
                    name.as_deref().map_or(String::new(), |n| key(kind, n))
                };
                pipe.cmd("EVALSHA")
                    .arg(&scripts.publish)
                    .arg(3)
                    .arg(named("m", stream))
                    .arg(named("h", stream))
                    .arg(named("once", once))
                    .arg(channel)
                    .arg(body)
                    .arg(settings.history_size)
                    .arg(settings.history_ttl_ms)
                    .arg(settings.meta_ttl_ms)
                    .arg(now)
                    .arg(super::fresh_epoch())
                    .arg(if stream.is_some() { "1" } else { "0" })
                    .arg(*reached)
                    .arg(once_ttl_ms);
            }
            Out::Send { channel, body } => {
                pipe.cmd("PUBLISH").arg(channel).arg(body);
            }
            Out::Head {
                ticket,
                stream,
                since,
                epoch,
                claim,
                history,
            } => {
                let (owner_key, user) = match claim {
                    Some((session, user)) => (key("owner", session), user.as_str()),
                    None => ("-".to_owned(), ""),
                };
                pipe.cmd("EVALSHA")
                    .arg(&scripts.head)
                    .arg(3)
                    .arg(key("m", stream))
                    .arg(key("h", stream))
                    .arg(owner_key)
                    .arg(since.map_or(-1, |s| i64::try_from(s).unwrap_or(i64::MAX)))
                    .arg(settings.history_size.max(1))
                    .arg(settings.meta_ttl_ms)
                    .arg(super::fresh_epoch())
                    .arg(if *history { "1" } else { "0" })
                    .arg(user)
                    .arg(settings.claim_ttl_ms)
                    .arg(wire::hub_channel(&settings.prefix, &settings.hub))
                    .arg(wire::frame(&Wire::Mark(*ticket)).unwrap_or_default())
                    .arg(epoch.as_deref().unwrap_or(""));
            }
            Out::Join { user } | Out::Leave { user } => {
                let (script, status) = match out {
                    Out::Join { .. } => (&scripts.join, crate::Status::Online),
                    _ => (&scripts.leave, crate::Status::Offline),
                };
                let message = wire::frame(&Wire::Presence {
                    user: user.clone(),
                    status,
                })
                .unwrap_or_default();
                pipe.cmd("EVALSHA")
                    .arg(script)
                    .arg(4)
                    .arg(key("p", user))
                    .arg(key("hu", &settings.hub))
                    .arg(format!("{}:status", settings.prefix))
                    .arg(format!("{}:hubs", settings.prefix))
                    .arg(user)
                    .arg(&*settings.hub)
                    .arg(&bus)
                    .arg(message)
                    .arg(now + settings.lease_ms);
            }
            Out::Rejoin { users } => {
                pipe.cmd("EVALSHA")
                    .arg(&scripts.rejoin)
                    .arg(2)
                    .arg(key("hu", &settings.hub))
                    .arg(format!("{}:status", settings.prefix))
                    .arg(&*settings.hub)
                    .arg(&settings.prefix)
                    .arg(&bus)
                    .arg(users);
            }
            Out::Status { user, status } => {
                let message = wire::frame(&Wire::Presence {
                    user: user.clone(),
                    status: *status,
                })
                .unwrap_or_default();
                pipe.cmd("EVALSHA")
                    .arg(&scripts.status)
                    .arg(1)
                    .arg(format!("{}:status", settings.prefix))
                    .arg(user)
                    .arg(status.as_str())
                    .arg(&bus)
                    .arg(message);
            }
            // Never in a batch: set apart, before it (see `Requests::batch`).
            Out::NewEpochs(_) => {}
            Out::Heartbeat { beat, sessions } => {
                pipe.cmd("EVALSHA")
                    .arg(&scripts.beat)
                    .arg(1)
                    .arg(format!("{}:hubs", settings.prefix))
                    .arg(&*settings.hub)
                    .arg(now)
                    .arg(settings.lease_ms)
                    .arg(&settings.prefix)
                    .arg(&bus);
                pipe.cmd("PUBLISH").arg(&bus).arg(beat);
                for session in sessions {
                    pipe.cmd("PEXPIRE")
                        .arg(key("owner", session))
                        .arg(settings.claim_ttl_ms);
                }
            }
            Out::Snapshot => {
                pipe.cmd("HGETALL")
                    .arg(format!("{}:status", settings.prefix));
            }
            Out::Probe => {
                pipe.cmd("PING");
            }
        }
    }
    let values: Vec<Value> = pipe.query(con)?;
    // Walk the answers in the order the commands went.
    let mut answers = values.into_iter();
    let mut done = Done::default();
    for (at, out) in batch.iter().enumerate() {
        let mine: Vec<Value> = answers.by_ref().take(answer_count(out)).collect();
        let refused = mine.iter().find_map(|value| match value {
            Value::ServerError(err) => Some(err),
            _ => None,
        });
        if let Some(err) = refused {
            // The scripts are gone (SCRIPT FLUSH, a failover): such a
            // command did nothing, and goes again once they are loaded.
            if err.code() == "NOSCRIPT" {
                done.noscript.push(at);
                continue;
            }
            // Out of memory, a read-only replica...: it did nothing.
            let why = format!("{err:?}");
            crate::throttle::warn_throttled!("Redis refused a command: {why}");
            match out {
                Out::Publish { ticket, .. } => {
                    let why = format!("Redis refused it ({why}): not published");
                    done.published.push((*ticket, Outcome::NotSent(why)));
                }
                Out::Head { ticket, .. } => done.replies.push(In::Head {
                    ticket: *ticket,
                    reply: None,
                }),
                _ => {}
            }
            continue;
        }
        let first = mine.into_iter().next();
        match out {
            Out::Publish { ticket, .. } => {
                let first_answer = first.as_ref().and_then(already_published);
                done.published.push((*ticket, Outcome::Done(first_answer)));
            }
            Out::Head { ticket, .. } => {
                let reply = first.and_then(head_reply);
                done.replies.push(In::Head {
                    ticket: *ticket,
                    reply,
                });
            }
            Out::Snapshot => {
                let statuses = first.map(statuses).unwrap_or_default();
                done.replies.push(In::Snapshot(statuses));
            }
            Out::Probe => done.replies.push(In::State(Side::Out, true)),
            _ => {}
        }
    }
    Ok(done)
}

/// What a batch came to.
#[derive(Default)]
struct Done {
    /// The answers the router waits for.
    replies: Vec<In>,
    /// How each publication went.
    published: Vec<(u64, Outcome)>,
    /// The commands that found no script (by their place in the batch).
    noscript: Vec<usize>,
}

impl Done {
    fn tell(self, lane: &Lane) {
        for reply in self.replies {
            tell(lane, reply);
        }
        if !self.published.is_empty() {
            tell(lane, In::Published(self.published));
        }
    }
}

/// The publish script's answer for a key it had seen: the count it kept.
fn already_published(value: &Value) -> Option<usize> {
    let Value::Array(parts) = value else {
        return None;
    };
    if parts.first().and_then(text).as_deref() != Some("dup") {
        return None;
    }
    let reached = parts.get(1).and_then(number)?;
    Some(usize::try_from(reached).unwrap_or(usize::MAX))
}

/// How many answers the commands of `out` get.
fn answer_count(out: &Out) -> usize {
    match out {
        Out::NewEpochs(_) => 0,
        Out::Heartbeat { sessions, .. } => 2 + sessions.len(),
        _ => 1,
    }
}

/// The commands at `places` of `batch`.
fn pick(batch: &[Out], places: &[usize]) -> Vec<Out> {
    places
        .iter()
        .filter_map(|at| batch.get(*at).cloned())
        .collect()
}

fn text(value: &Value) -> Option<String> {
    match value {
        Value::BulkString(bytes) => String::from_utf8(bytes.clone()).ok(),
        Value::SimpleString(s) => Some(s.clone()),
        Value::Int(n) => Some(n.to_string()),
        _ => None,
    }
}

fn number(value: &Value) -> Option<u64> {
    match value {
        Value::Int(n) => u64::try_from(*n).ok(),
        other => text(other)?.parse().ok(),
    }
}

/// The head script's answer.
fn head_reply(value: Value) -> Option<HeadReply> {
    let Value::Array(parts) = value else {
        return None;
    };
    match parts.first().and_then(text).as_deref() {
        Some("refused") => Some(HeadReply {
            refused: Some(parts.get(1).and_then(text).unwrap_or_default()),
            ..HeadReply::default()
        }),
        Some("ok") if parts.len() == 1 => Some(HeadReply::default()),
        Some("ok") => {
            let seq = parts.get(1).and_then(number)?;
            let epoch = parts.get(2).and_then(text)?;
            let entries = match parts.get(3) {
                Some(Value::Array(entries)) => entries.iter().filter_map(kept).collect(),
                _ => Vec::new(),
            };
            Some(HeadReply {
                position: Some((seq, epoch)),
                entries,
                refused: None,
                from: parts.get(4).and_then(number),
                base: parts.get(5).and_then(number).unwrap_or(0),
                prev: parts.get(6).and_then(text).filter(|p| !p.is_empty()),
            })
        }
        _ => None,
    }
}

/// One XRANGE entry: `[id, [field, value, ...]]`.
fn kept(value: &Value) -> Option<Kept> {
    let Value::Array(pair) = value else {
        return None;
    };
    let id = text(pair.first()?)?;
    let seq = id.split('-').next()?.parse().ok()?;
    let Value::Array(fields) = pair.get(1)? else {
        return None;
    };
    let mut ts = None;
    let mut publication = None;
    for field in fields.chunks(2) {
        match (field.first().and_then(text).as_deref(), field.get(1)) {
            (Some("t"), Some(value)) => ts = number(value),
            (Some("m"), Some(Value::BulkString(json))) => publication = wire::publication(json),
            _ => {}
        }
    }
    Some(Kept {
        seq,
        ts: ts?,
        publication: publication?,
    })
}

/// HGETALL of the status hash.
fn statuses(value: Value) -> Vec<(String, crate::Status)> {
    let pairs: Vec<(Value, Value)> = match value {
        Value::Array(flat) => {
            let mut pairs = Vec::new();
            let mut flat = flat.into_iter();
            while let (Some(k), Some(v)) = (flat.next(), flat.next()) {
                pairs.push((k, v));
            }
            pairs
        }
        Value::Map(pairs) => pairs,
        _ => Vec::new(),
    };
    pairs
        .iter()
        .filter_map(|(user, status)| {
            let status = crate::Status::from_wire(&text(status)?)?;
            Some((text(user)?, status))
        })
        .collect()
}

/// The cluster-in thread's loop.
pub(super) fn run_in(
    client: redis::Client,
    settings: Arc<Settings>,
    lane: Lane,
    stop: Arc<AtomicBool>,
) {
    let mut backoff = Backoff::new();
    let channels = [
        wire::bus_channel(&settings.prefix),
        wire::hub_channel(&settings.prefix, &settings.hub),
    ];
    let poll = POLL.min(settings.deadline);
    let quiet = QUIET.min(settings.deadline);
    while !stop.load(Ordering::Acquire) {
        let mut con = match connect(&client, settings.deadline) {
            Ok(con) => con,
            Err(_) => {
                tell(&lane, In::State(Side::In, false));
                sleep_unless_stopped(backoff.next(), &stop);
                continue;
            }
        };
        let mut pubsub = con.as_pubsub();
        if pubsub.subscribe(&channels).is_err() || pubsub.set_read_timeout(Some(poll)).is_err() {
            tell(&lane, In::State(Side::In, false));
            sleep_unless_stopped(backoff.next(), &stop);
            continue;
        }
        backoff = Backoff::new();
        tell(&lane, In::State(Side::In, true));
        let mut heard = Instant::now();
        loop {
            if stop.load(Ordering::Acquire) {
                return;
            }
            match pubsub.get_message() {
                Ok(message) => {
                    heard = Instant::now();
                    let Some(framed) = wire::unframe(message.get_payload_bytes()) else {
                        crate::throttle::warn_throttled!(
                            "ignored a message on {} that no hub of this version sent",
                            message.get_channel_name()
                        );
                        continue;
                    };
                    if !tell(&lane, In::Message(Box::new(framed))) {
                        return;
                    }
                }
                Err(err) if err.is_timeout() => {
                    // Quiet: a stalled Redis is quiet too, so it must answer.
                    if heard.elapsed() < quiet {
                        continue;
                    }
                    if !answers_ping(&mut pubsub, settings.deadline, poll) {
                        crate::throttle::warn_throttled!(
                            "Redis at {} did not answer a PING within {:?}: reconnecting",
                            settings.shown_url,
                            settings.deadline
                        );
                        tell(&lane, In::State(Side::In, false));
                        break;
                    }
                    heard = Instant::now();
                }
                Err(_) => {
                    tell(&lane, In::State(Side::In, false));
                    break;
                }
            }
        }
        sleep_unless_stopped(backoff.next(), &stop);
    }
}

/// Whether Redis answers a PING on the pubsub link within `deadline`
/// (messages that come before the answer are kept for `get_message`).
/// After a timeout the link is given up: its late answer would be out of
/// step.
fn answers_ping(pubsub: &mut redis::PubSub<'_>, deadline: Duration, poll: Duration) -> bool {
    pubsub.set_read_timeout(Some(deadline)).is_ok()
        && pubsub.ping::<Value>().is_ok()
        && pubsub.set_read_timeout(Some(poll)).is_ok()
}

fn sleep_unless_stopped(wait: Duration, stop: &AtomicBool) {
    let mut left = wait;
    while !left.is_zero() && !stop.load(Ordering::Acquire) {
        let step = left.min(POLL);
        thread::sleep(step);
        left -= step;
    }
}
