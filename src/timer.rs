//! The timer thread: wakes the router every tick so it can ping clients,
//! terminate silent ones, end expired tokens and cut off closes that take
//! too long. Once a second it also reads the process's resident memory
//! for the analytics, so that no read of `/proc` is ever the router's.
//!
//! It blocks on a crossbeam `tick` channel and sends into a channel of its
//! own that holds one tick, which the router watches beside its events, so
//! no flood of events can starve it. It never blocks on the router: when a
//! tick is already waiting, the new one is dropped (the waiting one does the
//! same work). It ends as soon as the router is gone: `router_gone` is a
//! channel nobody sends on, which disconnects when the router thread ends.

use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, TrySendError, select, tick};

use crate::analytics::Meters;

/// How often the resident memory is read.
const MEMORY_EVERY: Duration = Duration::from_secs(1);

/// Runs the timer until the router stops. `router` holds at most one tick:
/// a tick the router has not taken yet stands for the next ones too.
pub(crate) fn run(
    period: Duration,
    router: Sender<Instant>,
    router_gone: Receiver<()>,
    meters: &Meters,
) {
    let ticks = tick(period);
    meters.read_resident();
    let mut next_read = Instant::now() + MEMORY_EVERY;
    loop {
        select! {
            recv(ticks) -> now => {
                let Ok(now) = now else { return };
                match router.try_send(now) {
                    Ok(()) | Err(TrySendError::Full(_)) => {}
                    Err(TrySendError::Disconnected(_)) => return,
                }
                // After the tick: the router never waits for it. Half a
                // period early is on time (ticks of a second stay a second).
                if now + period / 2 >= next_read {
                    meters.read_resident();
                    next_read = now + MEMORY_EVERY;
                }
            }
            recv(router_gone) -> _ => return,
        }
    }
}
