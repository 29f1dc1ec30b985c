//! Length-prefixed, checksummed frames: the unit every connection carries, the handshake's
//! messages included.
//!
//! ```text
//! frame = { u32 LE payload_len | u32 LE crc32(payload_len bytes ‖ payload) | payload }
//! ```
//!
//! The checksum covers the length bytes too, so a flipped length bit is caught as a checksum
//! failure once the (wrong) number of bytes has arrived, and never read as a valid frame. A length
//! above the reader's `max` is refused before any byte of the payload is read; a length below
//! `max` that the peer never fills costs only the bytes that really arrived (the payload buffer
//! grows as data comes, it is not allocated up front).

use std::io::{self, Read, Write};

/// Bytes before the payload: the length and the checksum.
pub const FRAME_HEADER_BYTES: usize = 8;

/// The largest payload any reader in paxwal accepts (64 MiB); readers may pass a lower `max`.
pub const FRAME_BYTES_MAX: usize = 64 << 20;

/// Payload bytes read per step while a frame arrives: the buffer grows by at most this much
/// beyond what was actually received.
const READ_CHUNK_BYTES: usize = 64 << 10;

/// Why a frame could not be read.
#[derive(thiserror::Error, Debug)]
#[non_exhaustive]
pub enum FrameError {
    /// The underlying stream failed (a timeout shows up here as `WouldBlock` / `TimedOut`).
    #[error("i/o error: {0}")]
    Io(#[from] io::Error),
    /// The header announces more payload than the reader accepts.
    #[error("frame of {len} bytes exceeds the limit of {max} bytes")]
    TooLarge {
        /// The announced payload length.
        len: usize,
        /// The reader's limit.
        max: usize,
    },
    /// The checksum does not match the length and payload.
    #[error("frame checksum mismatch")]
    Checksum,
    /// The stream ended at a frame boundary (a clean close).
    #[error("connection closed")]
    Closed,
    /// A socket timeout inside a frame ([`read_frame`] only; a [`FrameReader`] keeps waiting):
    /// bytes were consumed, so the stream is no longer at a frame boundary.
    #[error("timed out inside a frame ({got} of {want} bytes)")]
    Stalled {
        /// Bytes of the frame received.
        got: usize,
        /// Bytes the frame needed (the header's 8 while it is incomplete).
        want: usize,
    },
    /// The stream ended inside a frame.
    #[error("connection closed inside a frame ({got} of {want} bytes)")]
    Truncated {
        /// Bytes of the frame received.
        got: usize,
        /// Bytes the frame needed.
        want: usize,
    },
}

impl FrameError {
    /// True for a read or write timeout of the underlying socket.
    pub fn is_timeout(&self) -> bool {
        matches!(self, FrameError::Io(e)
            if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut))
    }
}

fn checksum(len_bytes: &[u8; 4], payload: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(len_bytes);
    h.update(payload);
    h.finalize()
}

fn header(payload: &[u8]) -> [u8; FRAME_HEADER_BYTES] {
    // A payload above u32::MAX cannot be framed; every caller bounds payloads far lower
    // (FRAME_BYTES_MAX), so this is a programming error, not bad input.
    let len = u32::try_from(payload.len()).expect("frame payload exceeds u32::MAX bytes");
    let len_bytes = len.to_le_bytes();
    let mut h = [0u8; FRAME_HEADER_BYTES];
    h[..4].copy_from_slice(&len_bytes);
    h[4..].copy_from_slice(&checksum(&len_bytes, payload).to_le_bytes());
    h
}

/// Appends the frame holding `payload` to `out`.
pub fn encode_frame(payload: &[u8], out: &mut Vec<u8>) {
    out.reserve(FRAME_HEADER_BYTES + payload.len());
    out.extend_from_slice(&header(payload));
    out.extend_from_slice(payload);
}

/// Writes the frame holding `payload` to `w` (two `write_all`s: give it a `BufWriter` when
/// frames are small and many).
pub fn write_frame(w: &mut impl Write, payload: &[u8]) -> io::Result<()> {
    w.write_all(&header(payload))?;
    w.write_all(payload)
}

/// Reads one frame and returns its payload. Never panics; a length above `max` is refused
/// before its payload is read, and a lying length below `max` allocates only as much as
/// actually arrives. EOF before the first byte is [`FrameError::Closed`], EOF later is
/// [`FrameError::Truncated`]. A socket timeout before the first byte is `Io` (with
/// [`FrameError::is_timeout`]; nothing was consumed, call again); a timeout inside a frame is
/// [`FrameError::Stalled`]: bytes were consumed, the stream is no longer at a frame boundary and
/// must be closed. To wait across timeouts inside frames, keep a [`FrameReader`] instead.
pub fn read_frame(r: &mut impl Read, max: usize) -> Result<Vec<u8>, FrameError> {
    let mut fr = FrameReader::new(max);
    match fr.read(r) {
        Err(e) if e.is_timeout() && fr.in_frame() => Err(FrameError::Stalled {
            got: fr.got(),
            want: fr.want(),
        }),
        res => res,
    }
}

/// A frame reader that keeps its progress across socket timeouts: [`FrameReader::read`]
/// returning a timeout (`Io`, [`FrameError::is_timeout`]) can simply be called again and goes
/// on where it stopped, inside a frame or not. Same limits as [`read_frame`].
#[derive(Debug)]
pub struct FrameReader {
    max: usize,
    header: [u8; FRAME_HEADER_BYTES],
    header_got: usize,
    payload: Vec<u8>,
    filled: usize,
}

impl FrameReader {
    /// A reader refusing payloads above `max` bytes.
    pub fn new(max: usize) -> FrameReader {
        FrameReader {
            max,
            header: [0; FRAME_HEADER_BYTES],
            header_got: 0,
            payload: Vec::new(),
            filled: 0,
        }
    }

    /// True when part of a frame has been read.
    pub fn in_frame(&self) -> bool {
        self.header_got > 0
    }

    fn len(&self) -> usize {
        u32::from_le_bytes([
            self.header[0],
            self.header[1],
            self.header[2],
            self.header[3],
        ]) as usize
    }

    fn got(&self) -> usize {
        self.header_got + self.filled
    }

    fn want(&self) -> usize {
        if self.header_got < FRAME_HEADER_BYTES {
            FRAME_HEADER_BYTES
        } else {
            FRAME_HEADER_BYTES + self.len()
        }
    }

    fn reset(&mut self) {
        self.header_got = 0;
        self.payload = Vec::new();
        self.filled = 0;
    }

    /// Reads until a whole frame is in and returns its payload. On a timeout the progress is
    /// kept; on any other error the reader starts afresh (the stream should be closed).
    pub fn read(&mut self, r: &mut impl Read) -> Result<Vec<u8>, FrameError> {
        let res = self.read_inner(r);
        match &res {
            Err(e) if e.is_timeout() => {}
            _ => self.reset(),
        }
        res
    }

    fn read_inner(&mut self, r: &mut impl Read) -> Result<Vec<u8>, FrameError> {
        while self.header_got < FRAME_HEADER_BYTES {
            match r.read(&mut self.header[self.header_got..]) {
                Ok(0) if self.header_got == 0 => return Err(FrameError::Closed),
                Ok(0) => {
                    return Err(FrameError::Truncated {
                        got: self.got(),
                        want: self.want(),
                    })
                }
                Ok(n) => {
                    self.header_got += n;
                    if self.header_got == FRAME_HEADER_BYTES && self.len() > self.max {
                        return Err(FrameError::TooLarge {
                            len: self.len(),
                            max: self.max,
                        });
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(FrameError::Io(e)),
            }
        }
        let len = self.len();
        while self.filled < len {
            if self.filled == self.payload.len() {
                // Grow one chunk at a time, as bytes arrive: a lying length costs one chunk.
                let step = (len - self.filled).min(READ_CHUNK_BYTES);
                self.payload.resize(self.filled + step, 0);
            }
            match r.read(&mut self.payload[self.filled..]) {
                Ok(0) => {
                    return Err(FrameError::Truncated {
                        got: self.got(),
                        want: self.want(),
                    })
                }
                Ok(n) => self.filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(FrameError::Io(e)),
            }
        }
        let len_bytes = [
            self.header[0],
            self.header[1],
            self.header[2],
            self.header[3],
        ];
        let crc = u32::from_le_bytes([
            self.header[4],
            self.header[5],
            self.header[6],
            self.header[7],
        ]);
        if checksum(&len_bytes, &self.payload) != crc {
            return Err(FrameError::Checksum);
        }
        let payload = std::mem::take(&mut self.payload);
        self.reset();
        Ok(payload)
    }
}

/// Decodes the frame at the front of `buf`: `Ok(Some((payload, bytes_used)))`, `Ok(None)` when
/// `buf` holds only part of a frame (read more), or an error when the frame is too large or
/// damaged. Never panics on any bytes.
pub fn decode_frame(buf: &[u8], max: usize) -> Result<Option<(&[u8], usize)>, FrameError> {
    let Some(h) = buf.get(..FRAME_HEADER_BYTES) else {
        return Ok(None);
    };
    let len_bytes = [h[0], h[1], h[2], h[3]];
    let len = u32::from_le_bytes(len_bytes) as usize;
    let crc = u32::from_le_bytes([h[4], h[5], h[6], h[7]]);
    if len > max {
        return Err(FrameError::TooLarge { len, max });
    }
    let Some(payload) = buf.get(FRAME_HEADER_BYTES..FRAME_HEADER_BYTES + len) else {
        return Ok(None);
    };
    if checksum(&len_bytes, payload) != crc {
        return Err(FrameError::Checksum);
    }
    Ok(Some((payload, FRAME_HEADER_BYTES + len)))
}

/// The cargo-fuzz body (`fuzz/fuzz_targets/wire_frames.rs`): decodes `data` as a stream of
/// frames both ways ([`decode_frame`] over the slice, [`read_frame`] over a reader that hands
/// out the bytes in uneven pieces) and checks that they agree, that every decoded frame
/// re-encodes to exactly the bytes it came from, and that framing the pieces of `data` and
/// decoding them gives them back. `Err(description)` on a contract violation; a panic is one too.
#[doc(hidden)]
pub fn fuzz_frames(data: &[u8]) -> Result<(), String> {
    // A small limit so lengths above it are exercised as well as below.
    const MAX: usize = 1 << 12;
    let mut at = 0;
    let mut from_slice = Vec::new();
    let slice_end = loop {
        match decode_frame(&data[at..], MAX) {
            Ok(Some((payload, used))) => {
                let mut again = Vec::new();
                encode_frame(payload, &mut again);
                if again[..] != data[at..at + used] {
                    return Err(format!("frame at {at} does not re-encode to its bytes"));
                }
                from_slice.push(payload.to_vec());
                at += used;
            }
            Ok(None) => break None,
            Err(e) => break Some(e),
        }
    };
    let mut reader = Uneven {
        data,
        at: 0,
        step: 0,
        block: false,
    };
    let mut from_reader = Vec::new();
    let reader_end = loop {
        match read_frame(&mut reader, MAX) {
            Ok(p) => from_reader.push(p),
            Err(e) => break e,
        }
    };
    // The same through a FrameReader over a reader that also times out on every third call.
    let mut reader = Uneven {
        data,
        at: 0,
        step: 0,
        block: true,
    };
    let mut fr = FrameReader::new(MAX);
    let mut resumed = Vec::new();
    let resumed_end = loop {
        match fr.read(&mut reader) {
            Ok(p) => resumed.push(p),
            Err(e) if e.is_timeout() => {}
            Err(e) => break e,
        }
    };
    if resumed != from_reader || format!("{resumed_end:?}") != format!("{reader_end:?}") {
        return Err(format!(
            "FrameReader across timeouts: {} frames and {resumed_end:?}; read_frame: {} and {reader_end:?}",
            resumed.len(),
            from_reader.len()
        ));
    }
    if from_slice != from_reader {
        return Err(format!(
            "decode_frame read {} frames, read_frame {}",
            from_slice.len(),
            from_reader.len()
        ));
    }
    let agree = match (&slice_end, &reader_end) {
        (None, FrameError::Closed) => at == data.len(),
        (None, FrameError::Truncated { .. }) => at < data.len(),
        (Some(FrameError::TooLarge { len: a, .. }), FrameError::TooLarge { len: b, .. }) => a == b,
        (Some(FrameError::Checksum), FrameError::Checksum) => true,
        _ => false,
    };
    if !agree {
        return Err(format!(
            "decode_frame ended with {slice_end:?}, read_frame with {reader_end:?}"
        ));
    }
    // Round trip: the pieces of `data` split at every 0xff byte, framed and decoded.
    let pieces: Vec<&[u8]> = data.split(|&b| b == 0xff).collect();
    let mut stream = Vec::new();
    for p in &pieces {
        encode_frame(p, &mut stream);
    }
    let mut at = 0;
    for p in &pieces {
        match decode_frame(&stream[at..], MAX) {
            Ok(Some((got, used))) if got == *p => at += used,
            other => return Err(format!("round trip failed at {at}: {other:?}")),
        }
    }
    if at != stream.len() {
        return Err("round trip left bytes over".into());
    }
    Ok(())
}

/// A reader that hands out `data` in pieces of 1, 2, 3, … 7 bytes, so frame reading is tested
/// across short reads; with `block`, every third call times out instead (`WouldBlock`).
struct Uneven<'a> {
    data: &'a [u8],
    at: usize,
    step: usize,
    block: bool,
}

impl Read for Uneven<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.step = self.step % 7 + 1;
        if self.block && self.step % 3 == 0 {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let n = self.step.min(buf.len()).min(self.data.len() - self.at);
        buf[..n].copy_from_slice(&self.data[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn round_trip_through_both_readers() {
        let payloads: Vec<Vec<u8>> = vec![vec![], b"x".to_vec(), vec![7u8; 100_000]];
        let mut stream = Vec::new();
        for p in &payloads {
            encode_frame(p, &mut stream);
        }
        let mut w = Vec::new();
        for p in &payloads {
            write_frame(&mut w, p).unwrap();
        }
        assert_eq!(
            w, stream,
            "encode_frame and write_frame write the same bytes"
        );
        let mut r = &stream[..];
        for p in &payloads {
            assert_eq!(&read_frame(&mut r, FRAME_BYTES_MAX).unwrap(), p);
        }
        assert!(matches!(
            read_frame(&mut r, FRAME_BYTES_MAX),
            Err(FrameError::Closed)
        ));
        let mut at = 0;
        for p in &payloads {
            let (got, used) = decode_frame(&stream[at..], FRAME_BYTES_MAX)
                .unwrap()
                .unwrap();
            assert_eq!(got, &p[..]);
            at += used;
        }
        assert_eq!(at, stream.len());
        // Every strict prefix of a frame is "incomplete", not an error.
        let mut one = Vec::new();
        encode_frame(b"xy", &mut one);
        for cut in 0..one.len() {
            assert!(
                decode_frame(&one[..cut], 16).unwrap().is_none(),
                "cut {cut}"
            );
        }
    }

    #[test]
    fn damage_is_a_checksum_error_and_eof_inside_is_truncated() {
        let mut f = Vec::new();
        encode_frame(b"hello", &mut f);
        for i in 0..f.len() {
            let mut bad = f.clone();
            bad[i] ^= 0x01;
            let res = read_frame(&mut &bad[..], 1 << 10);
            // A flipped length bit announces more bytes than follow (Truncated, or TooLarge
            // past the limit) or fewer (Checksum); any other flip is a checksum error.
            let want_checksum = !(i < 4 && (i > 0 || bad[0] > 5));
            assert!(
                match res {
                    Err(FrameError::Checksum) => want_checksum,
                    Err(FrameError::Truncated { .. } | FrameError::TooLarge { .. }) =>
                        !want_checksum,
                    _ => false,
                },
                "byte {i}: {res:?}"
            );
        }
        let res = read_frame(&mut &f[..f.len() - 1], 1 << 10);
        assert!(
            matches!(res, Err(FrameError::Truncated { got: 12, want: 13 })),
            "{res:?}"
        );
        let res = read_frame(&mut &f[..3], 1 << 10);
        assert!(
            matches!(res, Err(FrameError::Truncated { got: 3, want: 8 })),
            "{res:?}"
        );
    }

    #[test]
    fn a_timeout_inside_a_frame_is_stalled_for_read_frame_and_resumed_by_frame_reader() {
        let mut f = Vec::new();
        encode_frame(b"hello world", &mut f);
        encode_frame(b"second", &mut f);
        let mut r = Uneven {
            data: &f,
            at: 0,
            step: 0,
            block: true,
        };
        // Calls: 1 byte, 2 bytes, timeout — inside the first frame's header.
        let res = read_frame(&mut r, 1 << 10);
        assert!(
            matches!(res, Err(FrameError::Stalled { got: 3, want: 8 })),
            "{res:?}"
        );
        assert!(
            !res.unwrap_err().is_timeout(),
            "Stalled is not a retryable timeout"
        );
        let mut r = Uneven {
            data: &f,
            at: 0,
            step: 0,
            block: true,
        };
        let mut fr = FrameReader::new(1 << 10);
        let mut got = Vec::new();
        let mut timeouts = 0;
        loop {
            match fr.read(&mut r) {
                Ok(p) => got.push(p),
                Err(e) if e.is_timeout() => timeouts += 1,
                Err(FrameError::Closed) => break,
                Err(e) => panic!("{e}"),
            }
        }
        assert_eq!(got, vec![b"hello world".to_vec(), b"second".to_vec()]);
        assert!(
            timeouts > 3,
            "the reader did time out mid-frame ({timeouts})"
        );
    }

    /// A reader that counts the bytes handed out and then has nothing more (EOF).
    struct Counting<'a>(&'a [u8], usize);
    impl Read for Counting<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = buf.len().min(self.0.len());
            buf[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            self.1 += n;
            Ok(n)
        }
    }

    #[test]
    fn a_lying_length_is_refused_without_a_big_allocation() {
        // Above the limit: refused from the header alone, no payload byte read.
        let mut h = Vec::from(u32::MAX.to_le_bytes());
        h.extend_from_slice(&[0; 4]);
        h.extend_from_slice(&[1; 100]);
        let mut r = Counting(&h, 0);
        let res = read_frame(&mut r, FRAME_BYTES_MAX);
        assert!(matches!(res, Err(FrameError::TooLarge { len, max })
            if len == u32::MAX as usize && max == FRAME_BYTES_MAX));
        assert_eq!(r.1, FRAME_HEADER_BYTES, "nothing past the header was read");
        assert!(matches!(
            decode_frame(&h, FRAME_BYTES_MAX),
            Err(FrameError::TooLarge { .. })
        ));
        // At the limit (64 MiB announced) but only 100 bytes sent: Truncated after those 100
        // bytes; the payload buffer grows one READ_CHUNK_BYTES step at a time as bytes arrive,
        // so a liar costs at most one chunk beyond what it really sent.
        let mut h = Vec::from((FRAME_BYTES_MAX as u32).to_le_bytes());
        h.extend_from_slice(&[0; 4]);
        h.extend_from_slice(&[1; 100]);
        let res = read_frame(&mut Counting(&h, 0), FRAME_BYTES_MAX);
        assert!(
            matches!(res, Err(FrameError::Truncated { got: 108, .. })),
            "{res:?}"
        );
    }

    fn valid_stream() -> impl Strategy<Value = Vec<u8>> {
        proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..40), 0..5).prop_map(
            |ps| {
                let mut s = Vec::new();
                for p in ps {
                    encode_frame(&p, &mut s);
                }
                s
            },
        )
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

        #[test]
        fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..200)) {
            fuzz_frames(&data).map_err(TestCaseError::fail)?;
        }

        #[test]
        fn mutated_valid_frames_never_panic(
            stream in valid_stream(),
            edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 0..4),
            cut in any::<usize>(),
        ) {
            let mut data = stream;
            for (at, b) in edits {
                if !data.is_empty() {
                    let i = at % data.len();
                    data[i] = b;
                }
            }
            if !data.is_empty() && cut % 3 == 0 {
                data.truncate(cut % data.len());
            }
            fuzz_frames(&data).map_err(TestCaseError::fail)?;
        }
    }
}
