//! The timer thread: wakes the router every tick so it can ping clients,
//! terminate silent ones, end expired tokens and cut off closes that take
//! too long.
//!
//! It blocks on a crossbeam `tick` channel and sends into a channel of its
//! own that holds one tick, which the router watches beside its events, so
//! no flood of events can starve it. It never blocks on the router: when a
//! tick is already waiting, the new one is dropped (the waiting one does the
//! same work). It ends as soon as the router is gone: `router_gone` is a
//! channel nobody sends on, which disconnects when the router thread ends.

use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, TrySendError, select, tick};

/// Runs the timer until the router stops. `router` holds at most one tick:
/// a tick the router has not taken yet stands for the next ones too.
pub(crate) fn run(period: Duration, router: Sender<Instant>, router_gone: Receiver<()>) {
    let ticks = tick(period);
    loop {
        select! {
            recv(ticks) -> now => {
                let Ok(now) = now else { return };
                match router.try_send(now) {
                    Ok(()) | Err(TrySendError::Full(_)) => {}
                    Err(TrySendError::Disconnected(_)) => return,
                }
            }
            recv(router_gone) -> _ => return,
        }
    }
}
