//! The timer thread: wakes the router every tick so it can ping clients,
//! terminate silent ones and cut off closes that take too long.
//!
//! It blocks on a crossbeam `tick` channel and never blocks on the router: a
//! tick that finds the router's queue full is skipped (the next one does the
//! same work). It ends when the router is gone.

use std::time::Duration;

use crossbeam_channel::{Sender, TrySendError, tick};

use crate::event::Event;

/// Runs the timer until the router stops.
pub(crate) fn run(period: Duration, events: Sender<Event>) {
    let ticks = tick(period);
    while let Ok(now) = ticks.recv() {
        match events.try_send(Event::Tick(now)) {
            Ok(()) | Err(TrySendError::Full(_)) => {}
            Err(TrySendError::Disconnected(_)) => break,
        }
    }
}
