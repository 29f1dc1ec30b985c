//! The handshake every connection passes before any of its bytes are taken as data: a mutual
//! challenge-response with HMAC-SHA256 over a shared cluster secret.
//!
//! Four messages, each one [frame](super::frame) of at most [`HANDSHAKE_FRAME_BYTES_MAX`]
//! bytes (all integers little-endian):
//!
//! ```text
//! Hello     dialer → listener   = magic "PXWH" | version u16 (1) | mode u8 | kind u8
//!                                 | claimed id u32 | nonce_d [u8; 32]                   (44 B)
//!           mode: 0 insecure, 1 HMAC-SHA256; kind: 1 peer (id = its replica id), 2 client (id 0)
//! Challenge listener → dialer   = tag u8 (1) | mode u8 | listener id u32 | nonce_l [u8; 32]
//!                                 | mac_l [u8; 32] (mode 1 only)                      (38/70 B)
//! Proof     dialer → listener   = tag u8 (2) | mac_d [u8; 32] (mode 1 only)            (1/33 B)
//! Accepted  listener → dialer   = tag u8 (3)                                               (1 B)
//! Refused   listener → dialer   = tag u8 (4) | reason u8, in place of Challenge or Accepted
//!
//! mac_l = HMAC-SHA256(secret, "paxwal-l" | transcript)
//! mac_d = HMAC-SHA256(secret, "paxwal-d" | transcript)
//! transcript = version u16 | kind u8 | claimed id u32 | listener id u32 | nonce_d | nonce_l
//! ```
//!
//! Both sides draw a fresh random nonce per connection, so the other side's MAC covers a value
//! it could not know in advance: a recorded handshake replayed on a new connection fails at the
//! MAC (the listener's new `nonce_l` differs from the recorded one), and the distinct labels keep
//! a listener's MAC from being reflected as a dialer's. The MACs cover the claimed replica id
//! and the listener's id, so a connection is bound to both. With [`Auth::Insecure`] on both
//! sides the same messages flow without MACs (the ids are still exchanged and checked); a
//! secure side meeting an insecure one refuses. The handshake authenticates the connection's
//! start only: the frames after it are not encrypted or MACed (an attacker who can rewrite
//! traffic on the path is out of scope).

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::frame::{read_frame, write_frame, FrameError};
use crate::NodeId;

/// The handshake's version; a different one is refused.
pub const HANDSHAKE_VERSION: u16 = 1;
/// The first bytes of a Hello.
pub const HELLO_MAGIC: [u8; 4] = *b"PXWH";
/// The largest frame read during the handshake.
pub const HANDSHAKE_FRAME_BYTES_MAX: usize = 128;
/// Read and write timeout of each socket operation during the handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(2);
/// The shortest secret accepted.
pub const SECRET_BYTES_MIN: usize = 16;
/// The length of a generated secret.
pub const SECRET_BYTES_GENERATED: usize = 32;

const NONCE_BYTES: usize = 32;
const MAC_BYTES: usize = 32;
const HELLO_BYTES: usize = 12 + NONCE_BYTES;
const TAG_CHALLENGE: u8 = 1;
const TAG_PROOF: u8 = 2;
const TAG_ACCEPTED: u8 = 3;
const TAG_REFUSED: u8 = 4;
const KIND_PEER: u8 = 1;
const KIND_CLIENT: u8 = 2;
const MODE_INSECURE: u8 = 0;
const MODE_HMAC: u8 = 1;

type HmacSha256 = Hmac<Sha256>;

/// The shared cluster secret (at least [`SECRET_BYTES_MIN`] bytes). Its `Debug` shows no byte.
pub struct Secret(Vec<u8>);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Secret({} bytes)", self.0.len())
    }
}

impl Secret {
    /// Reads a secret file: hex text (what [`Secret::write_file`] writes; surrounding
    /// whitespace is ignored) of at least [`SECRET_BYTES_MIN`] bytes. A missing, unreadable,
    /// empty, non-hex or too short file is a clear error. A file that others can read is
    /// accepted with a warning.
    pub fn from_file(path: &Path) -> Result<Secret, AuthError> {
        let text = std::fs::read(path).map_err(|source| AuthError::SecretRead {
            path: path.to_path_buf(),
            source,
        })?;
        let text = text.trim_ascii();
        if text.is_empty() {
            return Err(AuthError::SecretEmpty {
                path: path.to_path_buf(),
            });
        }
        let bytes = decode_hex(text).ok_or_else(|| AuthError::SecretNotHex {
            path: path.to_path_buf(),
        })?;
        if bytes.len() < SECRET_BYTES_MIN {
            return Err(AuthError::SecretTooShort {
                path: path.to_path_buf(),
                bytes: bytes.len(),
            });
        }
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            if let Ok(m) = std::fs::metadata(path) {
                if m.permissions().mode() & 0o077 != 0 {
                    tracing::warn!(path = %path.display(), "secret file is readable by others (chmod 600 it)");
                }
            }
        }
        Ok(Secret(bytes))
    }

    /// A fresh secret of [`SECRET_BYTES_GENERATED`] random bytes from the OS.
    pub fn generate() -> Secret {
        let mut b = vec![0u8; SECRET_BYTES_GENERATED];
        // The OS random source failing is not something a caller can handle: no secret can be
        // made without it.
        getrandom::getrandom(&mut b).expect("the OS random number generator failed");
        Secret(b)
    }

    /// Writes the secret as hex text and a newline, the file's mode 0600 (also when it existed).
    pub fn write_file(&self, path: &Path) -> io::Result<()> {
        let mut o = std::fs::OpenOptions::new();
        o.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            o.mode(0o600);
        }
        let mut f = o.open(path)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
        }
        let mut text = String::with_capacity(self.0.len() * 2 + 1);
        for b in &self.0 {
            text.push_str(&format!("{b:02x}"));
        }
        text.push('\n');
        f.write_all(text.as_bytes())?;
        f.sync_all()
    }

    fn mac(&self, label: &[u8; 8], transcript: &[u8]) -> HmacSha256 {
        // HMAC takes keys of any length; `new_from_slice` cannot fail for it.
        let mut m = <HmacSha256 as Mac>::new_from_slice(&self.0).expect("HMAC accepts any key");
        m.update(label);
        m.update(transcript);
        m
    }
}

fn decode_hex(text: &[u8]) -> Option<Vec<u8>> {
    if text.len() % 2 != 0 {
        return None;
    }
    let digit = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    text.chunks(2)
        .map(|p| Some(digit(p[0])? << 4 | digit(p[1])?))
        .collect()
}

/// How a connection proves itself: with the cluster secret, or not at all (`--insecure`).
#[derive(Clone, Debug)]
pub enum Auth {
    /// HMAC-SHA256 challenge-response over this secret.
    Secret(Arc<Secret>),
    /// No proof; ids are still exchanged. Refused by (and refuses) a side with a secret.
    Insecure,
}

impl Auth {
    fn mode(&self) -> u8 {
        match self {
            Auth::Secret(_) => MODE_HMAC,
            Auth::Insecure => MODE_INSECURE,
        }
    }
}

/// Who is dialing: a replica (with its id) or a client.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConnKind {
    /// Another replica of the cluster.
    Peer(NodeId),
    /// A client of the service.
    Client,
}

/// What a listener accepts on this port.
#[derive(Clone, Copy, Debug)]
pub enum Expect<'a> {
    /// Replicas with one of these ids (never the listener's own id).
    Peers(&'a [NodeId]),
    /// Clients.
    Clients,
}

/// Why the listener refused, as sent in a Refused message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RefuseReason {
    /// The Hello was not one (bad magic, length or version).
    Malformed,
    /// One side has a secret and the other is insecure.
    ModeMismatch,
    /// A client on a peer port or a peer on a client port.
    WrongKind,
    /// A replica id this port does not accept.
    UnknownPeer,
    /// The listener's own replica id.
    OwnId,
    /// The dialer's MAC is wrong (wrong secret, or a replayed handshake).
    BadProof,
    /// A reason code this version does not know.
    Other(u8),
}

impl RefuseReason {
    fn code(self) -> u8 {
        match self {
            RefuseReason::Malformed => 1,
            RefuseReason::ModeMismatch => 2,
            RefuseReason::WrongKind => 3,
            RefuseReason::UnknownPeer => 4,
            RefuseReason::OwnId => 5,
            RefuseReason::BadProof => 6,
            RefuseReason::Other(c) => c,
        }
    }
    fn from_code(c: u8) -> RefuseReason {
        match c {
            1 => RefuseReason::Malformed,
            2 => RefuseReason::ModeMismatch,
            3 => RefuseReason::WrongKind,
            4 => RefuseReason::UnknownPeer,
            5 => RefuseReason::OwnId,
            6 => RefuseReason::BadProof,
            c => RefuseReason::Other(c),
        }
    }
}

impl std::fmt::Display for RefuseReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RefuseReason::Malformed => write!(f, "malformed hello"),
            RefuseReason::ModeMismatch => write!(f, "secure and insecure sides do not mix"),
            RefuseReason::WrongKind => write!(f, "this port does not take this kind of connection"),
            RefuseReason::UnknownPeer => write!(f, "replica id not accepted on this port"),
            RefuseReason::OwnId => write!(f, "the listener's own replica id"),
            RefuseReason::BadProof => write!(f, "wrong secret"),
            RefuseReason::Other(c) => write!(f, "reason code {c}"),
        }
    }
}

/// Why a handshake failed or a secret could not be read.
#[derive(thiserror::Error, Debug)]
#[non_exhaustive]
pub enum AuthError {
    /// The secret file could not be read.
    #[error("cannot read secret file {}: {source}", .path.display())]
    SecretRead {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: io::Error,
    },
    /// The secret file is empty.
    #[error("secret file {} is empty", .path.display())]
    SecretEmpty {
        /// The file.
        path: PathBuf,
    },
    /// The secret file is not hex text.
    #[error("secret file {} is not hex text", .path.display())]
    SecretNotHex {
        /// The file.
        path: PathBuf,
    },
    /// The secret is shorter than [`SECRET_BYTES_MIN`].
    #[error("secret in {} has {bytes} bytes, at least {min} are needed", .path.display(), min = SECRET_BYTES_MIN)]
    SecretTooShort {
        /// The file.
        path: PathBuf,
        /// The secret's length.
        bytes: usize,
    },
    /// The socket failed (or timed out, see [`AuthError::Timeout`]).
    #[error("i/o error during the handshake: {0}")]
    Io(#[from] io::Error),
    /// The other side did not answer within [`HANDSHAKE_TIMEOUT`].
    #[error("handshake timed out")]
    Timeout,
    /// The other side closed the connection.
    #[error("connection closed during the handshake")]
    Closed,
    /// A handshake frame was damaged, too large or cut short.
    #[error("bad handshake frame: {0}")]
    Frame(FrameError),
    /// A handshake message did not parse.
    #[error("malformed handshake message: {0}")]
    Malformed(&'static str),
    /// The other side speaks another handshake version.
    #[error("handshake version {0} is not supported (this is version {HANDSHAKE_VERSION})")]
    Version(u16),
    /// One side has a secret, the other is insecure.
    #[error("secure and insecure sides do not mix (this side is {ours}, the other {theirs})")]
    ModeMismatch {
        /// This side's mode.
        ours: &'static str,
        /// The other side's mode.
        theirs: &'static str,
    },
    /// The dialer is a kind this port does not take.
    #[error("{0:?} connections are not accepted on this port")]
    WrongKind(ConnKind),
    /// The dialer claims a replica id this port does not accept.
    #[error("replica {0} is not accepted on this port")]
    UnknownPeer(NodeId),
    /// The dialer claims the listener's own replica id.
    #[error("the dialer claims this replica's own id {0}")]
    OwnId(NodeId),
    /// The dialer's MAC is wrong: it does not hold the secret, or it replays an old handshake.
    #[error("the dialer's proof is wrong (wrong secret or a replayed handshake)")]
    BadProof,
    /// The listener's MAC is wrong: it does not hold the secret.
    #[error("the listener's proof is wrong (wrong secret)")]
    BadListenerProof,
    /// The listener is not the replica the dialer meant to reach.
    #[error("expected replica {expected}, reached {got}")]
    UnexpectedServer {
        /// The replica dialed.
        expected: NodeId,
        /// The replica that answered.
        got: NodeId,
    },
    /// The listener refused this dialer.
    #[error("refused by the listener: {0}")]
    Refused(RefuseReason),
    /// The OS random number generator failed.
    #[error("no random nonce: {0}")]
    Random(getrandom::Error),
}

impl From<FrameError> for AuthError {
    fn from(e: FrameError) -> AuthError {
        if e.is_timeout() || matches!(e, FrameError::Stalled { .. }) {
            return AuthError::Timeout;
        }
        match e {
            FrameError::Closed => AuthError::Closed,
            FrameError::Io(e) => AuthError::Io(e),
            e => AuthError::Frame(e),
        }
    }
}

fn mode_name(m: u8) -> &'static str {
    if m == MODE_HMAC {
        "secure"
    } else {
        "insecure"
    }
}

/// Deliberately broken handshake variants, so tests can show that each refusal check catches
/// what it is there for (a check that cannot fail is no check).
#[doc(hidden)]
#[derive(Clone, Copy, Debug, Default)]
pub struct HandshakeBugs {
    /// The listener accepts any dialer MAC.
    pub listener_skips_proof_check: bool,
    /// The dialer accepts any listener MAC.
    pub dialer_skips_proof_check: bool,
    /// The listener's nonce is always zero (a replayed handshake then verifies).
    pub listener_fixed_nonce: bool,
    /// The listener takes any kind on any port.
    pub listener_skips_kind_check: bool,
    /// The listener takes any claimed replica id.
    pub listener_skips_id_check: bool,
    /// A secure listener goes on without MACs when the dialer says it is insecure.
    pub listener_allows_downgrade: bool,
    /// No socket timeouts during the handshake.
    pub no_timeout: bool,
}

/// Handshake settings beyond the contract's arguments (tests shorten the timeout, plant bugs).
#[doc(hidden)]
#[derive(Clone, Copy, Debug)]
pub struct HandshakeOptions {
    /// Socket read/write timeout during the handshake.
    pub timeout: Duration,
    /// Planted bugs (none by default).
    pub bugs: HandshakeBugs,
}

impl Default for HandshakeOptions {
    fn default() -> Self {
        HandshakeOptions {
            timeout: HANDSHAKE_TIMEOUT,
            bugs: HandshakeBugs::default(),
        }
    }
}

fn nonce(fixed: bool) -> Result<[u8; NONCE_BYTES], AuthError> {
    let mut n = [0u8; NONCE_BYTES];
    if !fixed {
        getrandom::getrandom(&mut n).map_err(AuthError::Random)?;
    }
    Ok(n)
}

fn transcript(
    kind: u8,
    claimed: u32,
    listener: u32,
    nonce_d: &[u8; NONCE_BYTES],
    nonce_l: &[u8; NONCE_BYTES],
) -> Vec<u8> {
    let mut t = Vec::with_capacity(11 + 2 * NONCE_BYTES);
    t.extend_from_slice(&HANDSHAKE_VERSION.to_le_bytes());
    t.push(kind);
    t.extend_from_slice(&claimed.to_le_bytes());
    t.extend_from_slice(&listener.to_le_bytes());
    t.extend_from_slice(nonce_d);
    t.extend_from_slice(nonce_l);
    t
}

const LABEL_L: &[u8; 8] = b"paxwal-l";
const LABEL_D: &[u8; 8] = b"paxwal-d";

fn set_timeouts(s: &TcpStream, t: Option<Duration>) -> io::Result<()> {
    s.set_read_timeout(t)?;
    s.set_write_timeout(t)
}

fn send(s: &mut impl Write, msg: &[u8]) -> Result<(), AuthError> {
    write_frame(s, msg).map_err(|e| AuthError::from(FrameError::Io(e)))?;
    s.flush().map_err(|e| AuthError::from(FrameError::Io(e)))
}

fn recv(s: &mut impl Read) -> Result<Vec<u8>, AuthError> {
    Ok(read_frame(s, HANDSHAKE_FRAME_BYTES_MAX)?)
}

fn peer_addr(s: &TcpStream) -> String {
    s.peer_addr()
        .map(|a| a.to_string())
        .unwrap_or_else(|_| "?".into())
}

/// Dialer side. Sends who it is, proves the secret, checks the listener's proof (and, when
/// `expect_server` is `Some`, that the listener is that replica). Returns the listener's id.
/// On failure the connection is shut down and the reason logged.
pub fn dial_handshake(
    s: &mut TcpStream,
    auth: &Auth,
    me: ConnKind,
    expect_server: Option<NodeId>,
) -> Result<NodeId, AuthError> {
    dial_handshake_with(s, auth, me, expect_server, &HandshakeOptions::default())
}

/// [`dial_handshake`] with explicit options.
#[doc(hidden)]
pub fn dial_handshake_with(
    s: &mut TcpStream,
    auth: &Auth,
    me: ConnKind,
    expect_server: Option<NodeId>,
    opt: &HandshakeOptions,
) -> Result<NodeId, AuthError> {
    let res = (|| {
        set_timeouts(s, (!opt.bugs.no_timeout).then_some(opt.timeout))?;
        let id = dial_inner(s, auth, me, expect_server, opt)?;
        set_timeouts(s, None)?;
        Ok(id)
    })();
    if let Err(e) = &res {
        tracing::warn!(peer = %peer_addr(s), reason = %e, "handshake failed (dialing)");
        let _ = s.shutdown(std::net::Shutdown::Both);
    }
    res
}

fn dial_inner(
    s: &mut TcpStream,
    auth: &Auth,
    me: ConnKind,
    expect_server: Option<NodeId>,
    opt: &HandshakeOptions,
) -> Result<NodeId, AuthError> {
    let (kind, claimed) = match me {
        ConnKind::Peer(id) => (KIND_PEER, id.0),
        ConnKind::Client => (KIND_CLIENT, 0),
    };
    let nonce_d = nonce(false)?;
    let mut hello = Vec::with_capacity(HELLO_BYTES);
    hello.extend_from_slice(&HELLO_MAGIC);
    hello.extend_from_slice(&HANDSHAKE_VERSION.to_le_bytes());
    hello.push(auth.mode());
    hello.push(kind);
    hello.extend_from_slice(&claimed.to_le_bytes());
    hello.extend_from_slice(&nonce_d);
    send(s, &hello)?;

    let msg = recv(s)?;
    match msg.first() {
        Some(&TAG_REFUSED) if msg.len() == 2 => {
            return Err(AuthError::Refused(RefuseReason::from_code(msg[1])))
        }
        Some(&TAG_CHALLENGE) => {}
        _ => return Err(AuthError::Malformed("expected a challenge")),
    }
    if msg.len() < 6 {
        return Err(AuthError::Malformed("short challenge"));
    }
    let mode = msg[1];
    if mode != auth.mode() {
        return Err(AuthError::ModeMismatch {
            ours: mode_name(auth.mode()),
            theirs: mode_name(mode),
        });
    }
    let listener = u32::from_le_bytes([msg[2], msg[3], msg[4], msg[5]]);
    let want = 6 + NONCE_BYTES + if mode == MODE_HMAC { MAC_BYTES } else { 0 };
    if msg.len() != want {
        return Err(AuthError::Malformed("challenge length"));
    }
    if let Some(expected) = expect_server {
        if expected.0 != listener {
            return Err(AuthError::UnexpectedServer {
                expected,
                got: NodeId(listener),
            });
        }
    }
    let mut nonce_l = [0u8; NONCE_BYTES];
    nonce_l.copy_from_slice(&msg[6..6 + NONCE_BYTES]);
    let t = transcript(kind, claimed, listener, &nonce_d, &nonce_l);
    let mut proof = vec![TAG_PROOF];
    if let Auth::Secret(secret) = auth {
        let mac_l = &msg[6 + NONCE_BYTES..];
        if secret.mac(LABEL_L, &t).verify_slice(mac_l).is_err()
            && !opt.bugs.dialer_skips_proof_check
        {
            return Err(AuthError::BadListenerProof);
        }
        proof.extend_from_slice(&secret.mac(LABEL_D, &t).finalize().into_bytes());
    }
    send(s, &proof)?;

    let msg = recv(s)?;
    match msg[..] {
        [TAG_ACCEPTED] => Ok(NodeId(listener)),
        [TAG_REFUSED, code] => Err(AuthError::Refused(RefuseReason::from_code(code))),
        _ => Err(AuthError::Malformed("expected accepted or refused")),
    }
}

/// Listener side; `me` is this replica's id. Refuses (logging the peer's address and the
/// reason, and shutting the connection down): a missing or wrong secret, a kind the port does
/// not take, an unknown or own replica id, a replayed handshake, garbage, and a dialer silent
/// for [`HANDSHAKE_TIMEOUT`]. The timeouts are cleared once the handshake succeeds.
pub fn accept_handshake(
    s: &mut TcpStream,
    auth: &Auth,
    me: NodeId,
    expect: Expect<'_>,
) -> Result<ConnKind, AuthError> {
    accept_handshake_with(s, auth, me, expect, &HandshakeOptions::default())
}

/// [`accept_handshake`] with explicit options.
#[doc(hidden)]
pub fn accept_handshake_with(
    s: &mut TcpStream,
    auth: &Auth,
    me: NodeId,
    expect: Expect<'_>,
    opt: &HandshakeOptions,
) -> Result<ConnKind, AuthError> {
    let res = (|| {
        set_timeouts(s, (!opt.bugs.no_timeout).then_some(opt.timeout))?;
        let kind = accept_inner(s, auth, me, expect, opt)?;
        set_timeouts(s, None)?;
        Ok(kind)
    })();
    if let Err(e) = &res {
        tracing::warn!(peer = %peer_addr(s), reason = %e, "handshake refused");
        let _ = s.shutdown(std::net::Shutdown::Both);
    }
    res
}

fn refuse(s: &mut TcpStream, reason: RefuseReason, e: AuthError) -> AuthError {
    // Best effort: the dialer learns why; a failure to tell it changes nothing.
    let _ = send(s, &[TAG_REFUSED, reason.code()]);
    e
}

fn accept_inner(
    s: &mut TcpStream,
    auth: &Auth,
    me: NodeId,
    expect: Expect<'_>,
    opt: &HandshakeOptions,
) -> Result<ConnKind, AuthError> {
    let bugs = opt.bugs;
    let hello = recv(s)?;
    if hello.len() != HELLO_BYTES || hello[..4] != HELLO_MAGIC {
        let e = AuthError::Malformed("not a hello");
        return Err(refuse(s, RefuseReason::Malformed, e));
    }
    let version = u16::from_le_bytes([hello[4], hello[5]]);
    if version != HANDSHAKE_VERSION {
        return Err(refuse(
            s,
            RefuseReason::Malformed,
            AuthError::Version(version),
        ));
    }
    let (mode, kind) = (hello[6], hello[7]);
    let claimed = u32::from_le_bytes([hello[8], hello[9], hello[10], hello[11]]);
    let mut nonce_d = [0u8; NONCE_BYTES];
    nonce_d.copy_from_slice(&hello[12..]);

    let secret = match (auth, mode) {
        (Auth::Secret(secret), MODE_HMAC) => Some(secret),
        (Auth::Secret(_), MODE_INSECURE) if bugs.listener_allows_downgrade => None,
        (Auth::Insecure, MODE_INSECURE) => None,
        (_, m) => {
            let e = AuthError::ModeMismatch {
                ours: mode_name(auth.mode()),
                theirs: if m == MODE_HMAC || m == MODE_INSECURE {
                    mode_name(m)
                } else {
                    "unknown"
                },
            };
            return Err(refuse(s, RefuseReason::ModeMismatch, e));
        }
    };
    let conn = match (kind, claimed) {
        (KIND_PEER, id) => ConnKind::Peer(NodeId(id)),
        (KIND_CLIENT, 0) => ConnKind::Client,
        _ => {
            let e = AuthError::Malformed("unknown connection kind");
            return Err(refuse(s, RefuseReason::Malformed, e));
        }
    };
    match (conn, expect) {
        (ConnKind::Peer(id), Expect::Peers(ids)) => {
            if id == me && !bugs.listener_skips_id_check {
                return Err(refuse(s, RefuseReason::OwnId, AuthError::OwnId(id)));
            }
            if !ids.contains(&id) && !bugs.listener_skips_id_check {
                return Err(refuse(
                    s,
                    RefuseReason::UnknownPeer,
                    AuthError::UnknownPeer(id),
                ));
            }
        }
        (ConnKind::Client, Expect::Clients) => {}
        (k, _) if !bugs.listener_skips_kind_check => {
            return Err(refuse(s, RefuseReason::WrongKind, AuthError::WrongKind(k)))
        }
        _ => {}
    }

    let nonce_l = nonce(bugs.listener_fixed_nonce)?;
    let t = transcript(kind, claimed, me.0, &nonce_d, &nonce_l);
    let mut challenge = Vec::with_capacity(6 + NONCE_BYTES + MAC_BYTES);
    challenge.push(TAG_CHALLENGE);
    challenge.push(if secret.is_some() {
        MODE_HMAC
    } else {
        MODE_INSECURE
    });
    challenge.extend_from_slice(&me.0.to_le_bytes());
    challenge.extend_from_slice(&nonce_l);
    if let Some(secret) = secret {
        challenge.extend_from_slice(&secret.mac(LABEL_L, &t).finalize().into_bytes());
    }
    send(s, &challenge)?;

    let proof = recv(s)?;
    if proof.first() != Some(&TAG_PROOF) {
        let e = AuthError::Malformed("expected a proof");
        return Err(refuse(s, RefuseReason::Malformed, e));
    }
    if let Some(secret) = secret {
        if secret.mac(LABEL_D, &t).verify_slice(&proof[1..]).is_err()
            && !bugs.listener_skips_proof_check
        {
            return Err(refuse(s, RefuseReason::BadProof, AuthError::BadProof));
        }
    } else if proof.len() != 1 {
        let e = AuthError::Malformed("proof length");
        return Err(refuse(s, RefuseReason::Malformed, e));
    }
    send(s, &[TAG_ACCEPTED])?;
    Ok(conn)
}
