//! The recovery case table (`wal::recovery` module docs): one test per row, each across the
//! four recovery modes, plus the storage rows of the fault catalogue that are not about
//! recovery modes (fail-stop after a failed fsync, ENOSPC, read errors, misdirected writes).
//! Damage is made by editing bytes "offline" on the simulated disk, which runs the real WAL.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use paxwal::wal::codec::{
    FrameHeader, Meta, SegmentHeader, DATA_START, FRAME_HEADER_LEN, SEGMENT_RECYCLED,
};
use paxwal::wal::simdisk::{Faults, SimDisk};
use paxwal::wal::{Options, Prealloc, RecoveryMode, SyncMode, Wal};
use paxwal::{Error, Lsn, SegmentId};

const DIR: &str = "/log";
const MODES: [RecoveryMode; 4] = [
    RecoveryMode::Strict,
    RecoveryMode::TolerateTornTail,
    RecoveryMode::PointInTime,
    RecoveryMode::SkipCorrupted,
];

fn opts(mode: RecoveryMode) -> Options {
    Options {
        sync: SyncMode::Always,
        recovery: mode,
        prealloc: Prealloc::Inline,
        segment_bytes: 64 << 10,
        ..Options::default()
    }
}

fn payload(lsn: u64) -> Vec<u8> {
    (0..900)
        .map(|i| (lsn as usize * 7 + i) as u8 | 0x80)
        .collect()
}

/// A log of `n` entries (one frame each; about 14 per 64 KiB segment).
fn build(n: u64) -> SimDisk {
    let disk = SimDisk::new();
    let wal = Wal::open_with(Arc::new(disk.clone()), DIR, opts(RecoveryMode::Strict)).unwrap();
    for i in 1..=n {
        assert_eq!(wal.append(&payload(i)).unwrap(), Lsn(i));
    }
    wal.close().unwrap();
    disk
}

fn seg(id: u64) -> PathBuf {
    Path::new(DIR).join(format!("{}.seg", SegmentId(id)))
}

/// `(offset, header)` of every valid frame in a segment file.
fn frames(disk: &SimDisk, id: u64) -> Vec<(usize, FrameHeader)> {
    let b = disk.read_file(&seg(id)).unwrap();
    let mut out = Vec::new();
    let mut pos = DATA_START as usize;
    while pos + FRAME_HEADER_LEN <= b.len() {
        match FrameHeader::decode_header(&b[pos..]) {
            // A recycled file's stale frames (another segment's) are not this segment's.
            Ok(h) if h.segment != SegmentId(id) => break,
            Ok(h) => {
                out.push((pos, h));
                pos += h.frame_len();
            }
            Err(_) if pos % 4096 != 0 => pos = (pos / 4096 + 1) * 4096,
            Err(_) => break,
        }
    }
    out
}

fn edit(disk: &SimDisk, id: u64, f: impl FnOnce(&mut Vec<u8>)) {
    let mut b = disk.read_file(&seg(id)).unwrap();
    f(&mut b);
    disk.write_file(&seg(id), b);
}

fn open(disk: &SimDisk, mode: RecoveryMode) -> Result<Wal, Error> {
    Wal::open_with(Arc::new(disk.clone()), DIR, opts(mode))
}

/// Every LSN from first to last reads its exact payload (or was skipped).
fn assert_exact(wal: &Wal) {
    for lsn in wal.first_lsn().0..=wal.last_lsn().0 {
        match wal.read(Lsn(lsn)) {
            Ok(e) => assert_eq!(&*e, &payload(lsn)[..], "LSN {lsn}"),
            Err(Error::Skipped { .. }) => {}
            Err(e) => panic!("LSN {lsn}: {e}"),
        }
    }
}

fn expect_corruption(r: Result<Wal, Error>, seg_id: u64) {
    match r {
        Err(Error::Corruption { segment, .. }) => assert_eq!(segment, SegmentId(seg_id)),
        Err(e) => panic!("expected corruption in segment {seg_id}, got {e}"),
        Ok(w) => panic!("expected corruption, opened to LSN {}", w.last_lsn()),
    }
}

#[test]
fn row_clean_end_opens_in_every_mode() {
    let disk = build(30);
    for mode in MODES {
        let wal = open(&disk, mode).unwrap();
        assert_eq!(wal.last_lsn(), Lsn(30), "{mode:?}");
        assert!(wal.recovery_report().torn.is_none());
        assert_exact(&wal);
    }
}

#[test]
fn row_torn_tail_is_truncated_except_in_strict_mode() {
    // FAULTS 1, 2: the last frame's payload tail never reached the disk.
    for mode in MODES {
        let disk = build(20);
        let last_seg = 2;
        let (off, h) = *frames(&disk, last_seg).last().unwrap();
        assert_eq!(h.first_lsn, Lsn(20));
        edit(&disk, last_seg, |b| {
            b[off + 600..off + h.frame_len()].fill(0)
        });
        match (mode, open(&disk, mode)) {
            (RecoveryMode::Strict, Err(Error::TornTail { lsn, .. })) => assert_eq!(lsn, Lsn(20)),
            (RecoveryMode::Strict, r) => panic!("strict: {:?}", r.map(|w| w.last_lsn())),
            (_, Ok(wal)) => {
                assert_eq!(wal.last_lsn(), Lsn(19), "{mode:?}");
                assert_eq!(wal.recovery_report().torn.as_ref().unwrap().lsn, Lsn(20));
                assert_exact(&wal);
                // The tail is usable again.
                assert_eq!(wal.append(&payload(20)).unwrap(), Lsn(20));
            }
            (_, Err(e)) => panic!("{mode:?}: {e}"),
        }
    }
}

#[test]
fn row_file_cut_inside_a_frame_header_is_a_torn_tail() {
    // FAULTS 1 on a file whose length was cut (a copy or restore that stopped short): the last
    // frame's first three bytes remain at the end of the file. Found by `recovery_edits`: the
    // open took them for the end, the next append went to the next block, and the open after
    // that stopped at the three bytes and dropped the acknowledged append.
    for mode in MODES {
        let disk = build(20);
        let (off, h) = *frames(&disk, 2).last().unwrap();
        assert_eq!(h.first_lsn, Lsn(20));
        edit(&disk, 2, |b| b.truncate(off + 3));
        match (mode, open(&disk, mode)) {
            (RecoveryMode::Strict, Err(Error::TornTail { lsn, .. })) => assert_eq!(lsn, Lsn(20)),
            (RecoveryMode::Strict, r) => panic!("strict: {:?}", r.map(|w| w.last_lsn())),
            (_, Ok(wal)) => {
                assert_eq!(wal.last_lsn(), Lsn(19), "{mode:?}");
                assert_eq!(wal.recovery_report().torn.as_ref().unwrap().lsn, Lsn(20));
                assert_eq!(wal.append(&payload(20)).unwrap(), Lsn(20));
                wal.close().unwrap();
                let again = open(&disk, mode).unwrap();
                assert_eq!(
                    again.last_lsn(),
                    Lsn(20),
                    "{mode:?}: the append after repair"
                );
                assert!(again.recovery_report().torn.is_none(), "{mode:?}");
                assert_exact(&again);
            }
            (_, Err(e)) => panic!("{mode:?}: {e}"),
        }
    }
}

#[test]
fn row_torn_frame_header_and_zero_tail_end_the_log() {
    // FAULTS 1 (header torn) and 3 (zero tail left by preallocation).
    let disk = build(20);
    let (off, _) = *frames(&disk, 2).last().unwrap();
    edit(&disk, 2, |b| b[off + 20..off + 56].fill(0));
    let wal = open(&disk, RecoveryMode::TolerateTornTail).unwrap();
    assert_eq!(wal.last_lsn(), Lsn(19));
    assert_exact(&wal);
}

#[test]
fn row_corrupt_frame_before_the_tail() {
    // FAULTS 8: a damaged frame followed by frames written after it was acknowledged.
    for mode in MODES {
        let disk = build(20);
        let fr = frames(&disk, 2);
        let (off, h) = fr[2];
        let bad = h.first_lsn;
        edit(&disk, 2, |b| b[off + 300] ^= 0x04);
        match mode {
            RecoveryMode::Strict | RecoveryMode::TolerateTornTail => match open(&disk, mode) {
                Err(Error::Corruption {
                    segment,
                    offset,
                    lsn,
                    ..
                }) => {
                    assert_eq!((segment, offset, lsn), (SegmentId(2), off as u64, bad));
                }
                r => panic!("{mode:?}: {:?}", r.map(|w| w.last_lsn())),
            },
            RecoveryMode::PointInTime => {
                let wal = open(&disk, mode).unwrap();
                assert_eq!(wal.last_lsn(), bad.prev());
                assert_exact(&wal);
            }
            RecoveryMode::SkipCorrupted => {
                let wal = open(&disk, mode).unwrap();
                assert_eq!(wal.last_lsn(), Lsn(20));
                assert!(matches!(wal.read(bad), Err(Error::Skipped { .. })));
                assert_exact(&wal);
            }
        }
    }
}

#[test]
fn row_bit_flip_in_last_acknowledged_frame_is_told_from_a_torn_write() {
    // FAULTS 7: every sector of the last frame was written, yet its checksum fails.
    for mode in MODES {
        let disk = build(20);
        let (off, _) = *frames(&disk, 2).last().unwrap();
        edit(&disk, 2, |b| b[off + 500] ^= 0x01);
        match mode {
            RecoveryMode::Strict | RecoveryMode::TolerateTornTail => {
                expect_corruption(open(&disk, mode), 2)
            }
            _ => {
                let wal = open(&disk, mode).unwrap();
                assert_eq!(wal.last_lsn(), Lsn(19), "{mode:?}");
                assert_exact(&wal);
            }
        }
    }
}

#[test]
fn row_bit_flip_in_a_sealed_segment() {
    // FAULTS 6.
    for mode in MODES {
        let disk = build(40);
        let (off, h) = frames(&disk, 1)[5];
        edit(&disk, 1, |b| b[off + 70] ^= 0x80);
        match mode {
            RecoveryMode::Strict | RecoveryMode::TolerateTornTail => {
                expect_corruption(open(&disk, mode), 1)
            }
            RecoveryMode::PointInTime => {
                let wal = open(&disk, mode).unwrap();
                assert_eq!(wal.last_lsn(), h.first_lsn.prev());
                assert_exact(&wal);
                assert_eq!(wal.append(b"x").unwrap(), h.first_lsn);
            }
            RecoveryMode::SkipCorrupted => {
                let wal = open(&disk, mode).unwrap();
                assert_eq!(wal.last_lsn(), Lsn(40));
                assert!(matches!(wal.read(h.first_lsn), Err(Error::Skipped { .. })));
                assert_exact(&wal);
            }
        }
    }
}

#[test]
fn row_sealed_segment_truncated() {
    // FAULTS 9.
    for mode in MODES {
        let disk = build(40);
        let fr = frames(&disk, 1);
        let cut = fr[8].0;
        let cut_lsn = fr[8].1.first_lsn;
        edit(&disk, 1, |b| b.truncate(cut));
        match mode {
            RecoveryMode::Strict | RecoveryMode::TolerateTornTail => {
                expect_corruption(open(&disk, mode), 1)
            }
            RecoveryMode::PointInTime => {
                let wal = open(&disk, mode).unwrap();
                assert_eq!(wal.last_lsn(), cut_lsn.prev());
                assert_exact(&wal);
            }
            RecoveryMode::SkipCorrupted => {
                let wal = open(&disk, mode).unwrap();
                assert_eq!(wal.last_lsn(), Lsn(40));
                assert!(matches!(wal.read(cut_lsn), Err(Error::Skipped { .. })));
                assert_exact(&wal);
            }
        }
    }
}

#[test]
fn row_segment_missing_in_the_middle() {
    // FAULTS 10.
    for mode in MODES {
        let disk = build(40);
        let seg2_first = frames(&disk, 2)[0].1.first_lsn;
        let seg3_first = frames(&disk, 3)[0].1.first_lsn;
        disk.delete_file(&seg(2));
        match mode {
            RecoveryMode::Strict | RecoveryMode::TolerateTornTail => {
                expect_corruption(open(&disk, mode), 3)
            }
            RecoveryMode::PointInTime => {
                let wal = open(&disk, mode).unwrap();
                assert_eq!(wal.last_lsn(), seg2_first.prev());
                assert_exact(&wal);
            }
            RecoveryMode::SkipCorrupted => {
                let wal = open(&disk, mode).unwrap();
                assert_eq!(wal.last_lsn(), Lsn(40));
                assert!(matches!(wal.read(seg2_first), Err(Error::Skipped { .. })));
                assert!(wal.read(seg3_first).is_ok());
                assert_exact(&wal);
            }
        }
    }
}

#[test]
fn row_successor_named_by_a_seal_missing() {
    // FAULTS 11: the newest segment vanished after rotation; the seal proves it existed.
    for mode in MODES {
        let disk = build(20);
        let seg2_first = frames(&disk, 2)[0].1.first_lsn;
        disk.delete_file(&seg(2));
        match mode {
            RecoveryMode::Strict | RecoveryMode::TolerateTornTail => {
                expect_corruption(open(&disk, mode), 2)
            }
            _ => {
                let wal = open(&disk, mode).unwrap();
                assert_eq!(wal.last_lsn(), seg2_first.prev());
                assert_exact(&wal);
                assert_eq!(wal.append(&payload(seg2_first.0)).unwrap(), seg2_first);
            }
        }
    }
}

#[test]
fn row_file_holding_another_segments_id() {
    // FAULTS 12: duplicate segments are resolved by the identity in the header.
    for mode in MODES {
        let disk = build(40);
        let one = disk.read_file(&seg(1)).unwrap();
        disk.write_file(&seg(2), one);
        match mode {
            RecoveryMode::Strict | RecoveryMode::TolerateTornTail => {
                expect_corruption(open(&disk, mode), 2)
            }
            _ => {
                let wal = open(&disk, mode).unwrap();
                assert!(wal.last_lsn() < Lsn(20));
                assert_exact(&wal);
            }
        }
    }
}

#[test]
fn row_unreadable_header_of_an_empty_tail_segment_is_deleted() {
    // FAULTS 13, 15: a new tail segment that came back empty or torn holds nothing.
    for mode in MODES {
        let disk = build(20);
        disk.write_file(&seg(3), vec![0u8; 4096]);
        disk.write_file(&seg(4), vec![]);
        let wal = open(&disk, mode).unwrap();
        assert_eq!(wal.last_lsn(), Lsn(20), "{mode:?}");
        assert!(disk.read_file(&seg(4)).is_none(), "empty tail segment kept");
        assert_exact(&wal);
    }
}

#[test]
fn row_junk_named_like_a_segment_is_never_deleted() {
    // A segment-named file with data whose header fails its checks is not provably paxwal's:
    // corruption where the mode refuses it, moved aside (never deleted) where the mode opens
    // past corruption.
    let junk: Vec<u8> = (0..5000u32).map(|i| (i * 31 % 251) as u8 | 1).collect();
    let aside = Path::new(DIR).join(format!("{}.seg.foreign", SegmentId(3)));
    for mode in MODES {
        let disk = build(20);
        disk.write_file(&seg(3), junk.clone());
        match mode {
            RecoveryMode::Strict | RecoveryMode::TolerateTornTail => {
                expect_corruption(open(&disk, mode), 3);
                assert_eq!(disk.read_file(&seg(3)), Some(junk.clone()), "{mode:?}");
            }
            _ => {
                let wal = open(&disk, mode).unwrap();
                assert_eq!(wal.last_lsn(), Lsn(20), "{mode:?}");
                assert_exact(&wal);
                assert_eq!(disk.read_file(&aside), Some(junk.clone()), "{mode:?}");
                // The log goes on past it (its id is reused by a real segment).
                for i in 21..=40 {
                    assert_eq!(wal.append(&payload(i)).unwrap(), Lsn(i));
                }
                assert_eq!(disk.read_file(&aside), Some(junk.clone()), "{mode:?}");
            }
        }
    }
}

#[test]
fn row_newer_format_version_is_refused() {
    for mode in MODES {
        let disk = build(5);
        edit(&disk, 1, |b| {
            let mut h = SegmentHeader::decode(b).unwrap();
            h.version = 99;
            h.encode(b);
        });
        match open(&disk, mode) {
            Err(Error::VersionTooNew { found: 99, .. }) => {}
            r => panic!("{mode:?}: {:?}", r.map(|w| w.last_lsn())),
        }
    }
}

#[test]
fn row_temporaries_and_orphans_are_deleted() {
    // FAULTS 28: a crash in the middle of compaction leaves orphans below META.
    let disk = build(40);
    let wal = open(&disk, RecoveryMode::TolerateTornTail).unwrap();
    let old = disk.read_file(&seg(1)).unwrap();
    assert!(wal.compact_before(Lsn(20)).unwrap() >= 1);
    let first = wal.first_lsn();
    wal.close().unwrap();
    disk.write_file(&seg(1), old);
    disk.write_file(
        &Path::new(DIR).join("00000000000000000009.seg.tmp"),
        vec![1; 10],
    );
    let wal = open(&disk, RecoveryMode::Strict).unwrap();
    assert_eq!(wal.first_lsn(), first);
    assert!(disk.read_file(&seg(1)).is_none());
    assert!(disk
        .file_names()
        .iter()
        .all(|p| !p.to_string_lossy().ends_with(".tmp")));
    assert_exact(&wal);
}

fn write_meta(disk: &SimDisk, first_segment: u64, first_lsn: u64) {
    let m = Meta {
        first_segment: SegmentId(first_segment),
        first_lsn: Lsn(first_lsn),
    };
    disk.write_file(&Path::new(DIR).join("META"), m.encode().to_vec());
}

#[test]
fn row_meta_naming_zero_is_refused() {
    // Found by `recovery_edits`: a META whose checksum holds but names LSN 0 (or segment 0),
    // which paxwal never writes, was trusted; the log opened with first LSN 0.
    for (segment, lsn) in [(1, 0), (0, 1)] {
        let disk = build(20);
        write_meta(&disk, segment, lsn);
        for mode in MODES {
            match open(&disk, mode) {
                Err(Error::CorruptFile { path, .. }) => assert!(path.ends_with("META")),
                Err(e) => panic!("{mode:?}: {e}"),
                Ok(w) => panic!("{mode:?}: opened {}..={}", w.first_lsn(), w.last_lsn()),
            }
        }
    }
}

#[test]
fn row_meta_naming_a_missing_first_segment() {
    // Found by `recovery_edits`: META names segment 6 at LSN 45, no segment from 6 on exists
    // (the ones below it are compaction's orphans, deleted). The modes that open past damage
    // opened an empty log at LSN 1 under that META, and the next open dropped what was
    // appended; the empty log now continues at META's first LSN.
    for mode in MODES {
        let disk = build(20);
        write_meta(&disk, 6, 45);
        match (mode, open(&disk, mode)) {
            (
                RecoveryMode::Strict | RecoveryMode::TolerateTornTail,
                Err(Error::Corruption { .. }),
            ) => {}
            (RecoveryMode::Strict | RecoveryMode::TolerateTornTail, r) => {
                panic!("{mode:?}: {:?}", r.map(|w| w.last_lsn()))
            }
            (_, Ok(wal)) => {
                assert_eq!(
                    (wal.first_lsn(), wal.last_lsn()),
                    (Lsn(45), Lsn(44)),
                    "{mode:?}"
                );
                assert_eq!(wal.append(b"after").unwrap(), Lsn(45));
                wal.close().unwrap();
                let again = open(&disk, mode).unwrap();
                assert_eq!((again.first_lsn(), again.last_lsn()), (Lsn(45), Lsn(45)));
                assert_eq!(&*again.read(Lsn(45)).unwrap(), b"after");
            }
            (_, Err(e)) => panic!("{mode:?}: {e}"),
        }
    }
}

#[test]
fn row_zeroed_hole_with_acknowledged_frames_after_it() {
    // FAULTS 8 with zeros: two acknowledged frames inside the active segment read as zeros,
    // later frames intact. Skip-corrupted keeps the frames after the hole (found by
    // `recovery_edits`: it stopped at the hole and left them behind the end, so they came
    // back after the next append); point-in-time truncates at the hole.
    for mode in MODES {
        let disk = build(20);
        let fr = frames(&disk, 2);
        let (a, _) = fr[2];
        let (b, hb) = fr[3];
        let lost = (fr[2].1.first_lsn, hb.first_lsn);
        edit(&disk, 2, |bytes| bytes[a..b + hb.frame_len()].fill(0));
        match (mode, open(&disk, mode)) {
            (
                RecoveryMode::Strict | RecoveryMode::TolerateTornTail,
                Err(Error::Corruption { .. }),
            ) => {}
            (RecoveryMode::Strict | RecoveryMode::TolerateTornTail, r) => {
                panic!("{mode:?}: {:?}", r.map(|w| w.last_lsn()))
            }
            (RecoveryMode::PointInTime, Ok(wal)) => {
                assert_eq!(wal.last_lsn(), lost.0.prev());
                assert_exact(&wal);
            }
            (RecoveryMode::SkipCorrupted, Ok(wal)) => {
                assert_eq!(wal.last_lsn(), Lsn(20));
                assert_eq!(wal.recovery_report().skipped, vec![lost]);
                assert_exact(&wal);
                assert_eq!(wal.append(&payload(21)).unwrap(), Lsn(21));
                wal.close().unwrap();
                let again = open(&disk, mode).unwrap();
                assert_eq!(again.last_lsn(), Lsn(21));
                assert_exact(&again);
            }
            (_, r) => panic!("{mode:?}: {:?}", r.map(|w| w.last_lsn())),
        }
    }
}

#[test]
fn stale_frame_in_reused_space_is_never_read_as_data() {
    // FAULTS 5: a frame of segment 1 sitting in segment 2's unused space.
    let disk = build(20);
    let (off, h) = frames(&disk, 1)[3];
    let stale = disk.read_file(&seg(1)).unwrap()[off..off + h.frame_len()].to_vec();
    let (last_off, last_h) = *frames(&disk, 2).last().unwrap();
    let at = (last_off + last_h.frame_len()).div_ceil(4096) * 4096 + 8192;
    edit(&disk, 2, |b| {
        b[at..at + stale.len()].copy_from_slice(&stale)
    });
    let wal = open(&disk, RecoveryMode::Strict).unwrap();
    assert_eq!(wal.last_lsn(), Lsn(20));
    assert_exact(&wal);
}

#[test]
fn misdirected_write_over_acknowledged_data_is_corruption() {
    // FAULTS 21: the right bytes (a valid frame) written over another acknowledged frame.
    let disk = build(20);
    let fr = frames(&disk, 2);
    let b = disk.read_file(&seg(2)).unwrap();
    let (src_off, src_h) = fr[4];
    let copy = b[src_off..src_off + src_h.frame_len()].to_vec();
    let dst_off = fr[1].0;
    edit(&disk, 2, |b| {
        b[dst_off..dst_off + copy.len()].copy_from_slice(&copy)
    });
    expect_corruption(open(&disk, RecoveryMode::TolerateTornTail), 2);
}

#[test]
fn read_error_on_a_sealed_segment_is_an_error_not_the_end_of_the_log() {
    // FAULTS 20.
    let disk = build(40);
    disk.set_faults(Faults {
        fail_reads_of: Some(format!("{}.seg", SegmentId(1))),
        ..Faults::default()
    });
    match open(&disk, RecoveryMode::TolerateTornTail) {
        Err(Error::Io { .. }) => {}
        r => panic!("{:?}", r.map(|w| w.last_lsn())),
    }
}

#[test]
fn failed_fsync_poisons_the_log_even_if_a_later_fsync_succeeds() {
    // FAULTS 16, 17: fail-stop; nothing is acknowledged after the failure.
    let disk = build(5);
    let wal = open(&disk, RecoveryMode::TolerateTornTail).unwrap();
    disk.set_faults(Faults {
        fail_sync_at: Some(0),
        ..Faults::default()
    });
    let err = wal.append(&payload(6)).unwrap_err();
    assert!(matches!(err, Error::Poisoned { .. }), "{err}");
    // The disk's next fsync would succeed; the log still refuses.
    let err = wal.append(&payload(6)).unwrap_err();
    assert!(err.is_fatal(), "{err}");
    assert!(matches!(wal.read(Lsn(6)), Err(Error::NotFound { .. })));
    assert_eq!(&*wal.read(Lsn(5)).unwrap(), &payload(5)[..]);
    drop(wal);
    let wal = open(
        &disk.crash(&Default::default()),
        RecoveryMode::TolerateTornTail,
    )
    .unwrap();
    assert_eq!(wal.last_lsn(), Lsn(5));
    assert_exact(&wal);
}

#[test]
fn no_space_fails_the_append_clearly_and_loses_nothing() {
    // FAULTS 18, 19: ENOSPC while preparing the next segment (rotation).
    let disk = build(10);
    let wal = open(&disk, RecoveryMode::TolerateTornTail).unwrap();
    let used: usize = disk
        .file_names()
        .iter()
        .map(|p| disk.read_file(p).map_or(0, |b| b.len()))
        .sum();
    disk.set_faults(Faults {
        space_limit_bytes: Some(used as u64 + 1000),
        ..Faults::default()
    });
    let mut acked = 10;
    let err = loop {
        match wal.append(&payload(acked + 1)) {
            Ok(l) => {
                acked += 1;
                assert_eq!(l, Lsn(acked));
            }
            Err(e) => break e,
        }
    };
    assert!(err.is_no_space(), "{err}");
    assert!(!err.is_fatal());
    assert_exact(&wal);
    // Space comes back: appends continue at the next LSN, with no gap.
    disk.set_faults(Faults::default());
    assert_eq!(wal.append(&payload(acked + 1)).unwrap(), Lsn(acked + 1));
    wal.close().unwrap();
    let wal = open(&disk.crash(&Default::default()), RecoveryMode::Strict).unwrap();
    assert_eq!(wal.last_lsn(), Lsn(acked + 1));
    assert_exact(&wal);
}

/// A log whose active segment is a recycled file: entries 1..=60, with segments 1 and 2
/// compacted (their files kept for reuse) after LSN 45, so a later segment reuses one of them and
/// holds stale frames of its old id behind its last frame. Returns the disk and that segment's
/// id.
fn build_recycled() -> (SimDisk, u64) {
    let disk = SimDisk::new();
    let wal = Wal::open_with(Arc::new(disk.clone()), DIR, opts(RecoveryMode::Strict)).unwrap();
    for i in 1..=45 {
        wal.append(&payload(i)).unwrap();
    }
    assert_eq!(wal.compact_before(Lsn(29)).unwrap(), 2);
    for i in 46..=60 {
        wal.append(&payload(i)).unwrap();
    }
    wal.close().unwrap();
    let last = disk
        .file_names()
        .iter()
        .filter_map(|p| {
            p.file_name()?
                .to_str()?
                .strip_suffix(".seg")?
                .parse::<u64>()
                .ok()
        })
        .max()
        .unwrap();
    let h = SegmentHeader::decode(&disk.read_file(&seg(last)).unwrap()).unwrap();
    assert_eq!(
        h.flags & SEGMENT_RECYCLED,
        SEGMENT_RECYCLED,
        "segment {last} is not recycled"
    );
    (disk, last)
}

/// The first stale frame (a valid header of another segment) behind the last frame of `id`.
fn stale_frame_after_tail(disk: &SimDisk, id: u64) -> (usize, FrameHeader) {
    let b = disk.read_file(&seg(id)).unwrap();
    let (off, h) = *frames(disk, id).last().unwrap();
    let mut pos = off + h.frame_len();
    while pos + FRAME_HEADER_LEN <= b.len() {
        if let Ok(s) = FrameHeader::decode_header(&b[pos..]) {
            if s.segment != SegmentId(id) {
                return (pos, s);
            }
        }
        pos += 8;
    }
    panic!("no stale frame behind the tail of segment {id}");
}

#[test]
fn row_recycled_segment_stale_frames_behind_the_tail_end_the_data() {
    let (disk, id) = build_recycled();
    let (_, stale) = stale_frame_after_tail(&disk, id);
    assert!(stale.segment < SegmentId(id));
    for mode in MODES {
        let wal = open(&disk, mode).unwrap();
        assert_eq!(wal.last_lsn(), Lsn(60), "{mode:?}");
        assert!(
            wal.recovery_report().torn.is_none(),
            "{mode:?}: read as torn"
        );
        assert!(wal.recovery_report().corruption.is_none(), "{mode:?}");
        assert_exact(&wal);
    }
    // Appending after reopening goes on from the tail, and the stale frames stay unread.
    let wal = open(&disk, RecoveryMode::Strict).unwrap();
    for i in 61..=70 {
        assert_eq!(wal.append(&payload(i)).unwrap(), Lsn(i));
    }
    wal.close().unwrap();
    let wal = open(&disk, RecoveryMode::Strict).unwrap();
    assert_eq!(wal.last_lsn(), Lsn(70));
    assert_exact(&wal);
}

#[test]
fn row_recycled_segment_old_bytes_in_the_last_frames_padding() {
    // The last batch's frame reached the disk but its padding sector did not, so the recycled
    // file's old bytes follow the frame. Found by `recovery_edits`: the open ended the data
    // there and appends resumed at the next block, so the open after that found those bytes
    // before a frame of this segment, read them as a torn tail and dropped what was appended.
    for mode in MODES {
        let (disk, id) = build_recycled();
        let (off, h) = *frames(&disk, id).last().unwrap();
        let end = off + h.frame_len();
        assert_ne!(end % 4096, 0);
        edit(&disk, id, |b| b[end..end.next_multiple_of(4096)].fill(0x5a));
        let wal = open(&disk, mode).unwrap();
        assert_eq!(wal.last_lsn(), Lsn(60), "{mode:?}");
        assert!(wal.recovery_report().torn.is_none(), "{mode:?}");
        assert_eq!(wal.append(&payload(61)).unwrap(), Lsn(61));
        wal.close().unwrap();
        let again = open(&disk, mode).unwrap();
        assert_eq!(
            again.last_lsn(),
            Lsn(61),
            "{mode:?}: the append after reopening"
        );
        assert_exact(&again);
    }
}

#[test]
fn row_recycled_segment_torn_header_over_a_stale_frame_is_a_torn_tail() {
    // A new frame's header torn over a stale frame of the same length: the stale frame's own
    // trailer still matches its own stored crc, so without the recycled segment's trailer key
    // the mixed header would look whole, and be taken for damage.
    for mode in MODES {
        let (disk, id) = build_recycled();
        let (at, _) = stale_frame_after_tail(&disk, id);
        edit(&disk, id, |b| {
            b[at + 8..at + 16].copy_from_slice(&id.to_le_bytes())
        });
        match (mode, open(&disk, mode)) {
            (RecoveryMode::Strict, Err(Error::TornTail { .. })) => {}
            (RecoveryMode::Strict, r) => panic!("strict: {:?}", r.map(|w| w.last_lsn())),
            (_, Ok(wal)) => {
                assert_eq!(wal.last_lsn(), Lsn(60), "{mode:?}");
                assert!(
                    wal.recovery_report().torn.is_some(),
                    "{mode:?}: {:?}",
                    wal.recovery_report()
                );
                assert_exact(&wal);
            }
            (_, Err(e)) => panic!("{mode:?}: {e}"),
        }
    }
}

#[test]
fn row_recycled_segment_bit_flip_in_last_acknowledged_frame_is_still_damage() {
    for mode in MODES {
        let (disk, id) = build_recycled();
        let (off, _) = *frames(&disk, id).last().unwrap();
        edit(&disk, id, |b| b[off + 500] ^= 0x01);
        match mode {
            RecoveryMode::Strict | RecoveryMode::TolerateTornTail => {
                expect_corruption(open(&disk, mode), id)
            }
            _ => {
                let wal = open(&disk, mode).unwrap();
                assert_eq!(wal.last_lsn(), Lsn(59), "{mode:?}");
                assert_exact(&wal);
            }
        }
    }
}
