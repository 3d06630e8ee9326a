//! One client's writer thread: the only code that writes to its socket.
//!
//! It blocks on its two queues: [`Control`] (pongs, closes; read first) and
//! [`Outbound`] (the router's frames, in order). Frames arrive already
//! encoded, so writing is copying shared bytes to the socket; whatever is
//! queued is written with one `writev`. Because every byte goes through this
//! thread, frames never interleave and the reader's pong and close replies
//! are never lost.
//!
//! It ends after a close handshake, when the reader stops, on a write error,
//! or when every sender is gone; in every case it shuts the socket down,
//! which also wakes a reader blocked in `read`.

use std::io::{self, IoSlice, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use crossbeam_channel::{Receiver, TryRecvError, select};
use tungstenite::Bytes;

use crate::event::{Control, Outbound};
use crate::protocol;

/// Most frames gathered into one `writev`.
const MAX_BATCH: usize = 64;

/// How a writer ended, for the debug log.
#[derive(Debug)]
enum Ending {
    /// We sent Close and the client answered (or went away).
    Closed,
    /// The client sent Close and we answered.
    PeerClosed,
    /// The reader stopped without a close handshake.
    ReaderDone,
    /// Every sender is gone.
    Orphaned,
    /// The socket refused a write.
    WriteFailed(io::Error),
}

/// The next thing to do.
enum Next {
    Control(Control),
    Data(Outbound),
}

/// Runs one client's writer until the connection ends.
pub(crate) fn run(
    name: &str,
    stream: Arc<TcpStream>,
    data: Receiver<Outbound>,
    control: Receiver<Control>,
    queued_bytes: Arc<AtomicUsize>,
) {
    let mut writer = Writer {
        stream: &stream,
        data,
        control,
        queued_bytes,
        batch: Vec::new(),
        data_open: true,
    };
    match writer.serve() {
        Ending::WriteFailed(err) => log::debug!("writer of {name} ended: write failed: {err}"),
        ending => log::debug!("writer of {name} ended: {ending:?}"),
    }
    // Wakes the reader if it is still blocked in `read`; an error only means
    // the socket is already gone.
    let _ = stream.shutdown(Shutdown::Both);
}

struct Writer<'a> {
    stream: &'a TcpStream,
    data: Receiver<Outbound>,
    control: Receiver<Control>,
    /// The router's count of bytes queued here: what is written comes off.
    queued_bytes: Arc<AtomicUsize>,
    /// Frames gathered for one `writev`, kept between batches.
    batch: Vec<Bytes>,
    /// False once the router has dropped its sender.
    data_open: bool,
}

impl Writer<'_> {
    fn serve(&mut self) -> Ending {
        loop {
            let Some(next) = self.next() else {
                return Ending::Orphaned;
            };
            let result = match next {
                Next::Control(Control::Pong(payload)) => {
                    self.write(&[protocol::pong_frame(payload)])
                }
                Next::Control(Control::Abort(close)) => {
                    return self.close_with(close);
                }
                Next::Control(Control::PeerClosed(frame)) => {
                    return match self.write(&[protocol::close_reply(frame.as_ref())]) {
                        Ok(()) => Ending::PeerClosed,
                        Err(err) => Ending::WriteFailed(err),
                    };
                }
                Next::Control(Control::ReaderDone) => return Ending::ReaderDone,
                Next::Data(Outbound::Close(close)) => return self.close_with(close),
                Next::Data(Outbound::Frame(first)) => match self.write_batch(first) {
                    Ok(None) => Ok(()),
                    Ok(Some(close)) => return self.close_with(close),
                    Err(err) => Err(err),
                },
            };
            if let Err(err) = result {
                return Ending::WriteFailed(err);
            }
        }
    }

    /// Waits for the next control message or frame, control first.
    /// `None` when nothing can arrive any more.
    fn next(&mut self) -> Option<Next> {
        match self.control.try_recv() {
            Ok(control) => return Some(Next::Control(control)),
            Err(TryRecvError::Disconnected) => return None,
            Err(TryRecvError::Empty) => {}
        }
        loop {
            if !self.data_open {
                return self.control.recv().ok().map(Next::Control);
            }
            select! {
                recv(self.control) -> control => return control.ok().map(Next::Control),
                recv(self.data) -> data => match data {
                    Ok(data) => return Some(Next::Data(data)),
                    Err(_) => self.data_open = false,
                },
            }
        }
    }

    /// Writes `first` and whatever else is queued behind it, in one `writev`.
    /// Returns a Close frame met in the queue, to send after the batch.
    fn write_batch(&mut self, first: Bytes) -> io::Result<Option<Bytes>> {
        // The batch vector is kept between calls: no allocation per message.
        let mut batch = std::mem::take(&mut self.batch);
        batch.push(first);
        let mut close = None;
        while batch.len() < MAX_BATCH && self.control.is_empty() {
            match self.data.try_recv() {
                Ok(Outbound::Frame(frame)) => batch.push(frame),
                Ok(Outbound::Close(frame)) => {
                    close = Some(frame);
                    break;
                }
                Err(_) => break,
            }
        }
        let written: usize = batch.iter().map(Bytes::len).sum();
        let result = self.write(&batch);
        batch.clear();
        self.batch = batch;
        result?;
        self.queued_bytes.fetch_sub(written, Ordering::AcqRel);
        Ok(close)
    }

    /// Sends our Close, then waits for the client's answer (or the reader's end).
    /// The router cuts the socket if that takes longer than `close_timeout`,
    /// which ends the reader and so this wait.
    fn close_with(&mut self, close: Bytes) -> Ending {
        if let Err(err) = self.write(&[close]) {
            return Ending::WriteFailed(err);
        }
        // Nothing more will be sent: say so at the TCP level too. A client
        // whose stream the reader can no longer parse (after a frame that
        // was too big, say) then sees the end at once and closes its side.
        let _ = self.stream.shutdown(Shutdown::Write);
        loop {
            match self.control.recv() {
                Ok(Control::PeerClosed(_) | Control::ReaderDone) | Err(_) => return Ending::Closed,
                Ok(Control::Pong(_) | Control::Abort(_)) => {}
            }
        }
    }

    /// Writes whole frames (at most [`MAX_BATCH`]), however many calls the
    /// socket needs.
    fn write(&self, frames: &[Bytes]) -> io::Result<()> {
        debug_assert!(frames.len() <= MAX_BATCH, "batches are cut at MAX_BATCH");
        let mut slices = [IoSlice::new(&[]); MAX_BATCH];
        for (slice, frame) in slices.iter_mut().zip(frames) {
            *slice = IoSlice::new(frame);
        }
        let mut remaining = &mut slices[..frames.len().min(MAX_BATCH)];
        while !remaining.is_empty() {
            match (&mut &*self.stream).write_vectored(remaining) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(written) => IoSlice::advance_slices(&mut remaining, written),
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                Err(err) => return Err(err),
            }
        }
        Ok(())
    }
}
