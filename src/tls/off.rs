//! Without the `tls` feature: the TLS types the connection code names, as
//! stand-ins that are never made (`Tls::new` gives none, and
//! `Config::validate` refuses a certificate), so that code compiles
//! unchanged and its TLS branches are never taken.

// Nothing here is ever constructed in this build.
#![allow(dead_code)]

use std::collections::VecDeque;
use std::io;
use std::sync::Arc;

use tungstenite::Bytes;

use super::TlsError;

fn unsupported() -> io::Error {
    io::Error::other(TlsError::Unsupported)
}

/// A hub's TLS: none in this build.
#[derive(Debug)]
pub(crate) struct Tls;

impl Tls {
    pub(crate) fn new(
        _cert: Option<&std::path::PathBuf>,
        _key: Option<&std::path::PathBuf>,
    ) -> Result<Option<Arc<Tls>>, TlsError> {
        Ok(None)
    }

    pub(crate) fn session(&self) -> io::Result<Session> {
        Err(unsupported())
    }

    pub(crate) fn refusal(&self) -> &[u8] {
        &[]
    }

    pub(crate) fn reload(&self) -> Result<(), TlsError> {
        Err(TlsError::Unsupported)
    }
}

/// A TLS session: none in this build.
#[derive(Debug)]
pub(crate) struct Session;

impl Session {
    pub(crate) fn inbound(&self, _size: usize) -> Inbound {
        Inbound
    }

    pub(crate) fn is_handshaking(&self) -> bool {
        false
    }

    pub(crate) fn describe(&self) -> String {
        String::new()
    }

    pub(crate) fn records(&self, _out: &mut Vec<u8>) {}

    pub(crate) fn seal_all(&self, _plaintext: &[u8], _out: &mut Vec<u8>) -> io::Result<()> {
        Err(unsupported())
    }

    pub(crate) fn end(&self) -> bool {
        false
    }

    pub(crate) fn seal(
        &self,
        _batch: &mut VecDeque<Bytes>,
        _offset: &mut usize,
        _scratch: &mut Scratch,
        _sealed_whole: impl FnMut(&Bytes),
    ) -> io::Result<(usize, usize)> {
        Err(unsupported())
    }

    pub(crate) fn tail(&self) -> Tail {
        Tail
    }
}

/// Ciphertext a full socket did not take: none in this build.
#[derive(Debug)]
pub(crate) struct Tail;

impl Tail {
    pub(crate) fn unsent(&self) -> &[u8] {
        &[]
    }

    pub(crate) fn advance(&mut self, _n: usize) {}

    pub(crate) fn keep(&mut self, _bytes: &[u8]) {}
}

/// A drainer's TLS buffers: none in this build.
#[derive(Debug, Default)]
pub(crate) struct Scratch;

impl Scratch {
    pub(crate) fn sealed(&self) -> &[u8] {
        &[]
    }
}

/// The reading side of a session: none in this build.
#[derive(Debug)]
pub(crate) struct Inbound;

impl Inbound {
    pub(crate) fn space(&mut self) -> &mut [u8] {
        &mut []
    }

    pub(crate) fn filled(&mut self, _n: usize) {}

    pub(crate) fn unread(&self) -> &[u8] {
        &[]
    }

    pub(crate) fn feed(&mut self, _session: &Session) -> io::Result<()> {
        Err(unsupported())
    }

    pub(crate) fn read(
        &mut self,
        _session: &Session,
        _buf: &mut [u8],
        _fill: impl FnMut(&mut [u8]) -> io::Result<usize>,
        _wake: impl FnMut(),
    ) -> io::Result<usize> {
        Err(unsupported())
    }
}
