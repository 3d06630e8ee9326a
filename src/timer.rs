//! The timer thread: wakes the router every tick so it can ping clients,
//! terminate silent ones and cut off closes that take too long.
//!
//! It blocks on a crossbeam `tick` channel and never blocks on the router: a
//! tick that finds the router's queue full is skipped (the next one does the
//! same work). It ends as soon as the router is gone: `router_gone` is a
//! channel nobody sends on, which disconnects when the router thread ends.

use std::time::Duration;

use crossbeam_channel::{Receiver, Sender, TrySendError, select, tick};

use crate::event::Event;

/// Runs the timer until the router stops.
pub(crate) fn run(period: Duration, events: Sender<Event>, router_gone: Receiver<()>) {
    let ticks = tick(period);
    loop {
        select! {
            recv(ticks) -> now => {
                let Ok(now) = now else { return };
                match events.try_send(Event::Tick(now)) {
                    Ok(()) | Err(TrySendError::Full(_)) => {}
                    Err(TrySendError::Disconnected(_)) => return,
                }
            }
            recv(router_gone) -> _ => return,
        }
    }
}
