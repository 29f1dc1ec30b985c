//! Byte layouts of segment headers, frames and the `META` file. All integers little-endian.
//! `docs/format.md` has the full picture; each layout is also written on its type below.
//!
//! Every byte read back as data is covered by a CRC-32 (IEEE, `crc32fast`)
//! that also covers the frame's segment id and first LSN, so a stale frame left in a reused
//! file, or a frame copied from another segment, never passes as valid.

use crate::types::{Lsn, SegmentId};

/// Newest on-disk format version this build writes and reads.
pub const FORMAT_VERSION: u32 = 1;

/// Block size the writer aligns synced batches to: a synced batch never rewrites a block that
/// holds acknowledged data.
pub const BLOCK: u64 = 4096;

/// Sector size used to tell a torn write from a bit flip (see [`FrameHeader::flags`]).
pub const SECTOR: usize = 512;

/// Offset of the first frame in a segment file (the header owns block 0).
pub const DATA_START: u64 = BLOCK;

/// Segment header magic.
pub const SEGMENT_MAGIC: [u8; 8] = *b"PXWALSEG";
/// Segment header length in bytes.
pub const SEGMENT_HEADER_LEN: usize = 64;

/// Frame magic (`"PXWF"` as little-endian u32).
pub const FRAME_MAGIC: u32 = u32::from_le_bytes(*b"PXWF");
/// Frame header length in bytes.
pub const FRAME_HEADER_LEN: usize = 56;
/// Trailer length in bytes.
pub const TRAILER_LEN: usize = 8;
/// Length prefix of each record inside a frame.
pub const RECORD_PREFIX_LEN: usize = 4;

/// Frame kind: a batch of records.
pub const KIND_DATA: u8 = 1;
/// Frame kind: the segment is sealed; the log continues in the next segment.
pub const KIND_SEAL: u8 = 2;

/// Flag: some 512-byte sector of `[frame start, payload end)` is all zeros *by intent*, so an
/// all-zero sector found on read proves nothing about a torn write.
pub const FLAG_ZERO_SECTOR: u8 = 1;

/// Payload length of a seal frame.
pub const SEAL_PAYLOAD_LEN: usize = 16;

/// Bytes a segment keeps free at its end for the seal frame.
pub const SEAL_RESERVE: u64 = BLOCK;

/// META file magic.
pub const META_MAGIC: [u8; 8] = *b"PXWALMTA";
/// META file length.
pub const META_LEN: usize = 40;

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(a)
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}

/// Rounds `x` up to a multiple of `to` (a power of two).
pub fn align_up(x: u64, to: u64) -> u64 {
    (x + to - 1) & !(to - 1)
}

/// Segment header, at offset 0 of every segment file; the rest of block 0 is zero.
///
/// ```text
/// 0  [u8; 8] magic "PXWALSEG"
/// 8  u32     format version
/// 12 u32     header length (64)
/// 16 u64     segment id (must match the file name)
/// 24 u64     segment size in bytes (the file's preallocated length)
/// 32 u32     flags (bit 0: SEGMENT_RECYCLED)
/// 36 [u8;24] reserved, zero
/// 60 u32     crc32 of bytes 0..60
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SegmentHeader {
    /// Format version.
    pub version: u32,
    /// The segment's id.
    pub id: SegmentId,
    /// The file's allocated length.
    pub segment_bytes: u64,
    /// Flags ([`SEGMENT_RECYCLED`]).
    pub flags: u32,
}

/// Segment header flag: the file is a recycled segment, so the bytes behind its last valid frame
/// are stale frames of the segment it used to be (recovery reads them as the end of the data).
pub const SEGMENT_RECYCLED: u32 = 1;

/// Why a segment header did not decode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeaderError {
    /// Magic or checksum wrong (torn, never written, or damaged).
    Invalid,
    /// A valid header of a newer format version.
    TooNew(u32),
}

impl SegmentHeader {
    /// Encodes the header into the first 64 bytes of `out`.
    pub fn encode(&self, out: &mut [u8]) {
        out[..SEGMENT_HEADER_LEN].fill(0);
        out[0..8].copy_from_slice(&SEGMENT_MAGIC);
        out[8..12].copy_from_slice(&self.version.to_le_bytes());
        out[12..16].copy_from_slice(&(SEGMENT_HEADER_LEN as u32).to_le_bytes());
        out[16..24].copy_from_slice(&self.id.0.to_le_bytes());
        out[24..32].copy_from_slice(&self.segment_bytes.to_le_bytes());
        out[32..36].copy_from_slice(&self.flags.to_le_bytes());
        let crc = crc32fast::hash(&out[0..60]);
        out[60..64].copy_from_slice(&crc.to_le_bytes());
    }

    /// Decodes and checks a header.
    pub fn decode(b: &[u8]) -> Result<SegmentHeader, HeaderError> {
        if b.len() < SEGMENT_HEADER_LEN || b[0..8] != SEGMENT_MAGIC {
            return Err(HeaderError::Invalid);
        }
        if crc32fast::hash(&b[0..60]) != u32_at(b, 60) {
            return Err(HeaderError::Invalid);
        }
        let version = u32_at(b, 8);
        if version > FORMAT_VERSION {
            return Err(HeaderError::TooNew(version));
        }
        Ok(SegmentHeader {
            version,
            id: SegmentId(u64_at(b, 16)),
            segment_bytes: u64_at(b, 24),
            flags: u32_at(b, 32),
        })
    }
}

/// Frame header: one per group-commit batch.
///
/// ```text
/// 0  u32 magic "PXWF"
/// 4  u8  kind (1 data, 2 seal)
/// 5  u8  flags (bit 0: FLAG_ZERO_SECTOR)
/// 6  u16 header length (56)
/// 8  u64 segment id
/// 16 u64 first LSN (data: LSN of the first record; seal: the LSN after the segment's last)
/// 24 u32 record count
/// 28 u32 payload length
/// 32 u32 frame length = align8(56 + payload) + 8 (trailer)
/// 36 u32 reserved, zero
/// 40 u64 durable LSN: the log's durable point when this frame was written
/// 48 u32 payload crc32: crc over bytes 0..48, then the payload
/// 52 u32 header crc32: crc over bytes 0..52
/// 56 payload (data: `count` × { u32 length, bytes }; seal: u64 next segment id, u64 next LSN)
/// .. zero padding to a multiple of 8
/// .. u64 trailer = header crc << 32 | !header crc (never zero)
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameHeader {
    /// `KIND_DATA` or `KIND_SEAL`.
    pub kind: u8,
    /// Flag bits.
    pub flags: u8,
    /// Segment the frame belongs to.
    pub segment: SegmentId,
    /// First LSN in the frame.
    pub first_lsn: Lsn,
    /// Number of records.
    pub count: u32,
    /// Payload bytes.
    pub payload_len: u32,
    /// The log's durable LSN when this frame was written: everything up to it had been
    /// acknowledged, which recovery uses to tell corruption from a torn tail.
    pub durable_lsn: Lsn,
    /// Stored payload crc.
    pub payload_crc: u32,
    /// Stored header crc.
    pub header_crc: u32,
}

/// Total length of a frame with this payload length.
pub fn frame_len(payload_len: usize) -> usize {
    align_up((FRAME_HEADER_LEN + payload_len) as u64, 8) as usize + TRAILER_LEN
}

/// The trailer value for a header crc.
pub fn trailer(header_crc: u32) -> u64 {
    trailer_keyed(header_crc, 0)
}

/// A frame's trailer in a segment with trailer key `key` (0 in a fresh segment; see
/// [`trailer_key`]): `(x << 32) | !x` with `x = header crc ^ key`, never zero.
pub fn trailer_keyed(header_crc: u32, key: u32) -> u64 {
    let x = header_crc ^ key;
    (u64::from(x) << 32) | u64::from(!x)
}

/// The trailer key of a segment: 0 in a fresh one; in a recycled one a non-zero value derived
/// from its id, so a frame the file held before (whose trailer matches its own stored header
/// crc) never looks whole when part of a new header is torn over its old one.
pub fn trailer_key(flags: u32, id: SegmentId) -> u32 {
    if flags & SEGMENT_RECYCLED == 0 {
        return 0;
    }
    let v = id.0.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    ((v >> 32) as u32 ^ v as u32) | 1
}

/// How a frame failed to decode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameError {
    /// The 56 header bytes are all zero: nothing was written here.
    Zero,
    /// The header does not check out (magic, crc, lengths).
    BadHeader,
    /// The header is valid but names another segment or an unexpected LSN (a stale frame).
    Stale,
    /// The header is valid but the payload or trailer is not.
    BadBody {
        /// True if the damage looks like a write that never completed (trailer missing, or an
        /// all-zero sector that should hold data); false if every sector was written.
        torn: bool,
    },
}

impl FrameHeader {
    /// Encodes bytes 0..56, computing both crcs over the header and `payload`; returns the
    /// header crc.
    pub fn encode(&mut self, out: &mut [u8], payload: &[u8]) -> u32 {
        out[0..4].copy_from_slice(&FRAME_MAGIC.to_le_bytes());
        out[4] = self.kind;
        out[5] = self.flags;
        out[6..8].copy_from_slice(&(FRAME_HEADER_LEN as u16).to_le_bytes());
        out[8..16].copy_from_slice(&self.segment.0.to_le_bytes());
        out[16..24].copy_from_slice(&self.first_lsn.0.to_le_bytes());
        out[24..28].copy_from_slice(&self.count.to_le_bytes());
        out[28..32].copy_from_slice(&self.payload_len.to_le_bytes());
        out[32..36].copy_from_slice(&(frame_len(self.payload_len as usize) as u32).to_le_bytes());
        out[36..40].fill(0);
        out[40..48].copy_from_slice(&self.durable_lsn.0.to_le_bytes());
        let mut h = crc32fast::Hasher::new();
        h.update(&out[0..48]);
        h.update(payload);
        self.payload_crc = h.finalize();
        out[48..52].copy_from_slice(&self.payload_crc.to_le_bytes());
        self.header_crc = crc32fast::hash(&out[0..52]);
        out[52..56].copy_from_slice(&self.header_crc.to_le_bytes());
        self.header_crc
    }

    /// Decodes and checks the 56 header bytes only (not the payload).
    pub fn decode_header(b: &[u8]) -> Result<FrameHeader, FrameError> {
        if b.len() < FRAME_HEADER_LEN {
            return Err(FrameError::BadHeader);
        }
        if b[..FRAME_HEADER_LEN].iter().all(|&x| x == 0) {
            return Err(FrameError::Zero);
        }
        if u32_at(b, 0) != FRAME_MAGIC
            || crc32fast::hash(&b[0..52]) != u32_at(b, 52)
            || usize::from(u16_at(b, 6)) != FRAME_HEADER_LEN
        {
            return Err(FrameError::BadHeader);
        }
        let h = FrameHeader {
            kind: b[4],
            flags: b[5],
            segment: SegmentId(u64_at(b, 8)),
            first_lsn: Lsn(u64_at(b, 16)),
            count: u32_at(b, 24),
            payload_len: u32_at(b, 28),
            durable_lsn: Lsn(u64_at(b, 40)),
            payload_crc: u32_at(b, 48),
            header_crc: u32_at(b, 52),
        };
        let len_ok = u32_at(b, 32) as usize == frame_len(h.payload_len as usize);
        let kind_ok = match h.kind {
            KIND_DATA => h.count > 0,
            KIND_SEAL => h.count == 0 && h.payload_len as usize == SEAL_PAYLOAD_LEN,
            _ => false,
        };
        if !len_ok || !kind_ok {
            return Err(FrameError::BadHeader);
        }
        Ok(h)
    }

    /// Total frame length.
    pub fn frame_len(&self) -> usize {
        frame_len(self.payload_len as usize)
    }

    /// Checks the payload and trailer of a frame whose header decoded. `frame` starts at the
    /// header and holds at least [`FrameHeader::frame_len`] bytes; `file_offset` is where the
    /// frame starts in its file (to find sector boundaries).
    pub fn check_body(&self, frame: &[u8], file_offset: u64) -> Result<(), FrameError> {
        self.check_body_keyed(frame, file_offset, 0)
    }

    /// [`Self::check_body`] in a segment whose trailer key is `key` ([`trailer_key`]).
    pub fn check_body_keyed(
        &self,
        frame: &[u8],
        file_offset: u64,
        key: u32,
    ) -> Result<(), FrameError> {
        let payload_end = FRAME_HEADER_LEN + self.payload_len as usize;
        let flen = self.frame_len();
        let trailer_ok = u64_at(frame, flen - TRAILER_LEN) == trailer_keyed(self.header_crc, key)
            && frame[payload_end..flen - TRAILER_LEN]
                .iter()
                .all(|&x| x == 0);
        let mut h = crc32fast::Hasher::new();
        h.update(&frame[0..48]);
        h.update(&frame[FRAME_HEADER_LEN..payload_end]);
        let crc_ok = h.finalize() == self.payload_crc;
        let records_ok = crc_ok && self.records_well_formed(&frame[FRAME_HEADER_LEN..payload_end]);
        if trailer_ok && crc_ok && records_ok {
            return Ok(());
        }
        let torn = !trailer_ok
            || (self.flags & FLAG_ZERO_SECTOR == 0
                && has_zero_sector(&frame[..payload_end], file_offset));
        Err(FrameError::BadBody { torn })
    }

    fn records_well_formed(&self, payload: &[u8]) -> bool {
        if self.kind == KIND_SEAL {
            return true;
        }
        let mut at = 0usize;
        for _ in 0..self.count {
            if at + RECORD_PREFIX_LEN > payload.len() {
                return false;
            }
            let len = u32_at(payload, at) as usize;
            at += RECORD_PREFIX_LEN;
            if len > payload.len() - at {
                return false;
            }
            at += len;
        }
        at == payload.len()
    }
}

/// True if some 512-byte sector of the file, intersected with `bytes` (which start at
/// `file_offset`), is all zeros.
pub fn has_zero_sector(bytes: &[u8], file_offset: u64) -> bool {
    let mut at = 0usize;
    while at < bytes.len() {
        let sector_end = align_up(file_offset + at as u64 + 1, SECTOR as u64);
        let end = ((sector_end - file_offset) as usize).min(bytes.len());
        if bytes[at..end].iter().all(|&x| x == 0) {
            return true;
        }
        at = end;
    }
    false
}

/// The record boundaries inside a data frame's payload: `(offset of the length prefix
/// relative to the frame start, record length)`.
pub fn records<'a>(frame: &'a [u8], h: &FrameHeader) -> impl Iterator<Item = (u32, u32)> + 'a {
    let mut at = FRAME_HEADER_LEN;
    (0..h.count).map(move |_| {
        let len = u32_at(frame, at);
        let item = (at as u32, len);
        at += RECORD_PREFIX_LEN + len as usize;
        item
    })
}

/// Seal payload: where the log continues.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Seal {
    /// The next segment's id.
    pub next_segment: SegmentId,
    /// The first LSN of the next segment.
    pub next_lsn: Lsn,
}

impl Seal {
    /// Encodes the 16-byte payload.
    pub fn encode(&self) -> [u8; SEAL_PAYLOAD_LEN] {
        let mut b = [0u8; SEAL_PAYLOAD_LEN];
        b[0..8].copy_from_slice(&self.next_segment.0.to_le_bytes());
        b[8..16].copy_from_slice(&self.next_lsn.0.to_le_bytes());
        b
    }

    /// Decodes the 16-byte payload.
    pub fn decode(b: &[u8]) -> Seal {
        Seal {
            next_segment: SegmentId(u64_at(b, 0)),
            next_lsn: Lsn(u64_at(b, 8)),
        }
    }
}

/// A complete seal frame (header, payload, padding, trailer).
pub fn seal_frame(segment: SegmentId, seal: Seal, durable_lsn: Lsn) -> Vec<u8> {
    seal_frame_keyed(segment, seal, durable_lsn, 0)
}

/// [`seal_frame`] for a segment whose trailer key is `key` ([`trailer_key`]).
pub fn seal_frame_keyed(segment: SegmentId, seal: Seal, durable_lsn: Lsn, key: u32) -> Vec<u8> {
    let payload = seal.encode();
    let mut out = vec![0u8; frame_len(SEAL_PAYLOAD_LEN)];
    out[FRAME_HEADER_LEN..FRAME_HEADER_LEN + SEAL_PAYLOAD_LEN].copy_from_slice(&payload);
    let mut h = FrameHeader {
        kind: KIND_SEAL,
        flags: 0,
        segment,
        first_lsn: seal.next_lsn,
        count: 0,
        payload_len: SEAL_PAYLOAD_LEN as u32,
        durable_lsn,
        payload_crc: 0,
        header_crc: 0,
    };
    let (head, rest) = out.split_at_mut(FRAME_HEADER_LEN);
    let hcrc = h.encode(head, &rest[..SEAL_PAYLOAD_LEN]);
    let n = out.len();
    out[n - TRAILER_LEN..].copy_from_slice(&trailer_keyed(hcrc, key).to_le_bytes());
    out
}

/// The `META` file: which segments and LSNs the log starts at (written at creation and by
/// compaction, atomically by write-to-temp, fsync, rename, fsync directory).
///
/// ```text
/// 0  [u8; 8] magic "PXWALMTA"
/// 8  u32     format version
/// 12 u32     reserved, zero
/// 16 u64     first segment id kept (every segment below it is an orphan to delete)
/// 24 u64     first LSN kept (the first LSN of that segment)
/// 32 u32     reserved, zero
/// 36 u32     crc32 of bytes 0..36
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Meta {
    /// First segment still part of the log.
    pub first_segment: SegmentId,
    /// First LSN of that segment.
    pub first_lsn: Lsn,
}

impl Meta {
    /// Encodes the file.
    pub fn encode(&self) -> [u8; META_LEN] {
        let mut b = [0u8; META_LEN];
        b[0..8].copy_from_slice(&META_MAGIC);
        b[8..12].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
        b[16..24].copy_from_slice(&self.first_segment.0.to_le_bytes());
        b[24..32].copy_from_slice(&self.first_lsn.0.to_le_bytes());
        let crc = crc32fast::hash(&b[0..36]);
        b[36..40].copy_from_slice(&crc.to_le_bytes());
        b
    }

    /// Decodes and checks the file.
    pub fn decode(b: &[u8]) -> Result<Meta, HeaderError> {
        if b.len() != META_LEN
            || b[0..8] != META_MAGIC
            || crc32fast::hash(&b[0..36]) != u32_at(b, 36)
        {
            return Err(HeaderError::Invalid);
        }
        let version = u32_at(b, 8);
        if version > FORMAT_VERSION {
            return Err(HeaderError::TooNew(version));
        }
        let m = Meta {
            first_segment: SegmentId(u64_at(b, 16)),
            first_lsn: Lsn(u64_at(b, 24)),
        };
        // Segment ids and LSNs start at 1: a META naming 0 was not written by paxwal, whatever
        // its checksum says.
        if m.first_segment.0 == 0 || m.first_lsn == Lsn(0) {
            return Err(HeaderError::Invalid);
        }
        Ok(m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data_frame(records: &[&[u8]], offset: u64) -> Vec<u8> {
        let mut payload = Vec::new();
        for r in records {
            payload.extend_from_slice(&(r.len() as u32).to_le_bytes());
            payload.extend_from_slice(r);
        }
        let mut out = vec![0u8; frame_len(payload.len())];
        out[FRAME_HEADER_LEN..FRAME_HEADER_LEN + payload.len()].copy_from_slice(&payload);
        let zero = has_zero_sector(&out[..FRAME_HEADER_LEN + payload.len()], offset);
        let mut h = FrameHeader {
            kind: KIND_DATA,
            flags: if zero { FLAG_ZERO_SECTOR } else { 0 },
            segment: SegmentId(3),
            first_lsn: Lsn(10),
            count: records.len() as u32,
            payload_len: payload.len() as u32,
            durable_lsn: Lsn(9),
            payload_crc: 0,
            header_crc: 0,
        };
        let (head, rest) = out.split_at_mut(FRAME_HEADER_LEN);
        let c = h.encode(head, &rest[..payload.len()]);
        let n = out.len();
        out[n - TRAILER_LEN..].copy_from_slice(&trailer(c).to_le_bytes());
        out
    }

    #[test]
    fn frame_round_trips_and_names_its_records() {
        let f = data_frame(&[b"ab", b"", b"xyz"], 4096);
        let h = FrameHeader::decode_header(&f).unwrap();
        assert_eq!(h.frame_len(), f.len());
        h.check_body(&f, 4096).unwrap();
        let recs: Vec<_> = records(&f, &h).collect();
        assert_eq!(recs, vec![(56, 2), (62, 0), (66, 3)]);
    }

    #[test]
    fn every_single_bit_flip_is_detected() {
        // Pair assertion: the checksum is checked on the way in (encode) and on the way out.
        let f = data_frame(&[b"hello world", b"0123456789"], 4096);
        for bit in 0..f.len() * 8 {
            let mut g = f.clone();
            g[bit / 8] ^= 1 << (bit % 8);
            let ok = FrameHeader::decode_header(&g).and_then(|h| h.check_body(&g, 4096));
            assert!(ok.is_err(), "flip of bit {bit} went unnoticed");
        }
    }

    #[test]
    fn payload_flip_is_corruption_but_missing_tail_is_torn() {
        let recs: Vec<u8> = (0..2000u32).map(|i| (i % 251 + 1) as u8).collect();
        let f = data_frame(&[&recs], 4096);
        let h = FrameHeader::decode_header(&f).unwrap();
        let mut flipped = f.clone();
        flipped[1000] ^= 0x10;
        assert_eq!(
            h.check_body(&flipped, 4096),
            Err(FrameError::BadBody { torn: false })
        );
        let mut torn = f.clone();
        let n = torn.len();
        torn[n - 700..].fill(0);
        assert_eq!(
            h.check_body(&torn, 4096),
            Err(FrameError::BadBody { torn: true })
        );
        // A sector in the middle that never reached the disk.
        let mut hole = f.clone();
        hole[1024..1536].fill(0);
        assert_eq!(
            h.check_body(&hole, 4096),
            Err(FrameError::BadBody { torn: true })
        );
    }

    #[test]
    fn stale_and_foreign_headers_are_rejected_by_header_checks() {
        assert_eq!(
            FrameHeader::decode_header(&[0u8; 56]),
            Err(FrameError::Zero)
        );
        let mut f = data_frame(&[b"a"], 4096);
        f[16] ^= 1; // LSN changed: header crc fails
        assert_eq!(FrameHeader::decode_header(&f), Err(FrameError::BadHeader));
    }

    #[test]
    fn segment_header_and_meta_round_trip_and_refuse_newer_versions() {
        let mut b = [0u8; 64];
        let h = SegmentHeader {
            version: FORMAT_VERSION,
            id: SegmentId(7),
            segment_bytes: 1 << 20,
            flags: SEGMENT_RECYCLED,
        };
        h.encode(&mut b);
        assert_eq!(SegmentHeader::decode(&b), Ok(h));
        b[8] = 9;
        let crc = crc32fast::hash(&b[0..60]);
        b[60..64].copy_from_slice(&crc.to_le_bytes());
        assert_eq!(SegmentHeader::decode(&b), Err(HeaderError::TooNew(9)));
        let m = Meta {
            first_segment: SegmentId(4),
            first_lsn: Lsn(99),
        };
        assert_eq!(Meta::decode(&m.encode()), Ok(m));
        let mut e = m.encode();
        e[20] ^= 1;
        assert_eq!(Meta::decode(&e), Err(HeaderError::Invalid));
    }

    #[test]
    fn seal_frames_decode() {
        let seal = Seal {
            next_segment: SegmentId(8),
            next_lsn: Lsn(500),
        };
        let f = seal_frame(SegmentId(7), seal, Lsn(499));
        let h = FrameHeader::decode_header(&f).unwrap();
        assert_eq!(h.kind, KIND_SEAL);
        h.check_body(&f, 8192).unwrap();
        assert_eq!(
            Seal::decode(&f[FRAME_HEADER_LEN..FRAME_HEADER_LEN + 16]),
            seal
        );
    }
}
