use super::image::{Built, Image, Spec};
use super::*;
use crate::event::CurrentProcess;

fn layouts() -> impl Iterator<Item = Layout> {
    (OLDEST_MINOR..=NEWEST_MINOR).map(|minor| Layout::for_minor(minor).expect("known"))
}

fn read(built: &mut Built) -> Result<Found, Unknown> {
    let layout = built.image.layout;
    read_current_process(&mut built.image, built.runtime, &layout, Budget::default())
}

#[test]
fn every_version_reads_the_current_process_and_never_the_authkey() {
    for layout in layouts() {
        for materialized in [false, true] {
            let spec = Spec {
                materialized,
                ..Spec::default()
            };
            let mut built = Image::build(layout, &spec);
            let found = read(&mut built);
            assert_eq!(
                found,
                Ok(Found::Process(CurrentProcess::new(
                    true,
                    "Process-1".into(),
                    "billiard.context.ForkProcess".into(),
                    Some(4242),
                ))),
                "3.{} materialized={materialized}",
                layout.minor
            );
            let (authkey, size) = built.authkey;
            assert!(
                built
                    .image
                    .reads
                    .iter()
                    .all(|&(at, len)| at + len as u64 <= authkey || at >= authkey + size as u64),
                "3.{}: the authkey was read",
                layout.minor
            );
            assert!(
                built.image.calls <= 56,
                "3.{}: {} reads",
                layout.minor,
                built.image.calls
            );
        }
    }
}

#[test]
fn the_main_process_and_a_missing_daemon_entry_are_not_daemonic() {
    for layout in layouts() {
        let spec = Spec {
            daemon: None,
            name: "MainProcess",
            class: "_MainProcess",
            module: "multiprocessing.process",
            parent_pid: None,
            ..Spec::default()
        };
        let found = read(&mut Image::build(layout, &spec));
        assert_eq!(
            found,
            Ok(Found::Process(CurrentProcess::new(
                false,
                "MainProcess".into(),
                "multiprocessing.process._MainProcess".into(),
                None,
            ))),
            "3.{}",
            layout.minor
        );
        let explicit = Spec {
            daemon: Some(false),
            ..Spec::default()
        };
        let Ok(Found::Process(process)) = read(&mut Image::build(layout, &explicit)) else {
            panic!("3.{}", layout.minor);
        };
        assert!(!process.daemon);
    }
}

#[test]
fn without_multiprocessing_imported_the_answer_says_so() {
    for layout in layouts() {
        let spec = Spec {
            no_multiprocessing: true,
            ..Spec::default()
        };
        assert_eq!(
            read(&mut Image::build(layout, &spec)),
            Ok(Found::NoMultiprocessing),
            "3.{}",
            layout.minor
        );
    }
}

#[test]
fn a_module_key_that_cannot_be_read_makes_the_answer_unknown_not_absent() {
    // 3.12: a key's fixed part (40 bytes) is not as long as any other read.
    let layout = Layout::for_minor(12).unwrap();
    let spec = Spec {
        no_multiprocessing: true,
        ..Spec::default()
    };
    let built = Image::build(layout, &spec);
    let mut memory = Holey {
        image: built.image.clone(),
        hole: None,
    };
    assert_eq!(
        read_current_process(&mut memory, built.runtime, &layout, Budget::default()),
        Ok(Found::NoMultiprocessing)
    );
    let key = memory
        .image
        .reads
        .iter()
        .find(|&&(_, len)| len == layout.ascii_data as usize)
        .map(|&(at, _)| at)
        .expect("keys are read");
    memory.hole = Some(key);
    let found = read_current_process(&mut memory, built.runtime, &layout, Budget::default());
    assert_eq!(found, Err(Unknown::new("memory that could not be read")));
}

/// An image with one unreadable address.
struct Holey {
    image: Image,
    hole: Option<u64>,
}

impl Memory for Holey {
    fn read_many(&mut self, reads: &mut [Read<'_>]) {
        self.image.read_many(reads);
        for read in reads {
            if Some(read.address) == self.hole {
                read.done = false;
            }
        }
    }
}

#[test]
fn a_tiny_budget_ends_the_walk_unknown() {
    let layout = Layout::for_minor(12).unwrap();
    let mut built = Image::build(layout, &Spec::default());
    let budget = Budget {
        reads: 5,
        bytes: 1 << 20,
    };
    let found = read_current_process(&mut built.image, built.runtime, &layout, budget);
    assert_eq!(found, Err(Unknown::new("the read budget ran out")));
    assert!(built.image.calls <= 5);
}

#[test]
fn debug_offsets_are_checked_before_they_are_trusted() {
    assert!(Layout::from_debug_offsets(b"notacookie-------").is_err());
    let layout = Layout::for_minor(13).unwrap();
    let built = Image::build(layout, &Spec::default());
    let start = (built.runtime - image::BASE) as usize;
    let head = &built.image.bytes[start..start + 4096];
    assert_eq!(Layout::from_debug_offsets(head), Ok(layout));
    // A version the reader does not know.
    let mut newer = head.to_vec();
    newer[8..16].copy_from_slice(&0x030f_00f0u64.to_le_bytes());
    assert!(Layout::from_debug_offsets(&newer).is_err());
    // An offset no structure has.
    let mut wild = head.to_vec();
    wild[40..48].copy_from_slice(&u64::MAX.to_le_bytes());
    assert!(Layout::from_debug_offsets(&wild).is_err());
}

/// xorshift64*: deterministic, so a failure names its case.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Corrupted memory images: bytes flipped, pointers redirected into the image and out of
/// it, sizes and counts blown up. The walk never panics, never reads past its budget, and
/// never reads the authkey; what it answers is either the truth or `Unknown` unless the
/// corruption hit the very objects the answer is made of.
#[test]
fn corrupted_images_never_crash_the_walk_or_break_its_budget() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let budget = Budget::default();
    for layout in layouts() {
        let pristine = Image::build(layout, &Spec::default());
        let truth = read(&mut pristine.clone()).expect("the pristine image reads");
        let (mut answered, mut unknown) = (0, 0);
        for case in 0..3000 {
            let mut image = pristine.image.clone();
            image.reads.clear();
            let len = image.bytes.len();
            for _ in 0..1 + rng.below(6) {
                let at = rng.below(len - 8) & !7;
                let value = match rng.below(5) {
                    0 => rng.next(),
                    1 => image::BASE + (rng.below(len) as u64 & !7),
                    2 => u64::from(image.bytes[at]) ^ (1 << rng.below(8)),
                    3 => 0,
                    _ => (rng.next() & 0xff) << (8 * rng.below(8)),
                };
                image.bytes[at..at + 8].copy_from_slice(&value.to_le_bytes());
            }
            let found = read_current_process(&mut image, pristine.runtime, &layout, budget);
            assert!(
                image.calls <= budget.reads,
                "3.{} case {case}",
                layout.minor
            );
            let bytes: usize = image.reads.iter().map(|&(_, len)| len).sum();
            assert!(bytes <= budget.bytes, "3.{} case {case}", layout.minor);
            match found {
                Ok(found) if found == truth => answered += 1,
                Ok(_) => {}
                Err(_) => unknown += 1,
            }
        }
        // Most corruptions miss what the walk reads; many of those that hit it end unknown.
        assert!(
            answered > 1000,
            "3.{}: {answered} right answers",
            layout.minor
        );
        assert!(unknown > 10, "3.{}: {unknown} unknown", layout.minor);
    }
}

/// A corruption of the answer's own objects: a daemon flag whose bool is neither, a type
/// that is not one, a dict with more entries than room.
#[test]
fn a_corrupted_answer_is_unknown_rather_than_wrong() {
    for layout in layouts() {
        // Every 8-byte word the pristine walk read, set to all ones in turn (no pointer, size,
        // count, digit or string state can be that): the answer is the truth or unknown.
        let mut probe = Image::build(layout, &Spec::default());
        let truth = read(&mut probe).unwrap();
        let read_words: Vec<u64> = probe
            .image
            .reads
            .iter()
            .flat_map(|&(at, len)| (at..at + len as u64).step_by(8))
            .collect();
        let mut wrong = Vec::new();
        let texts = probe.image.texts.clone();
        for &word in &read_words {
            if texts.iter().any(|&(from, to)| (from..to).contains(&word)) {
                continue;
            }
            {
                let value = u64::MAX;
                let mut image = probe.image.clone();
                image.word(word, value);
                let found =
                    read_current_process(&mut image, probe.runtime, &layout, Budget::default());
                if let Ok(found) = found
                    && found != truth
                {
                    wrong.push((word, value, found));
                }
            }
        }
        assert!(wrong.is_empty(), "3.{}: {wrong:?}", layout.minor);
    }
}

/// A spawned child read while it imports its main module: its main process object already
/// has the child's name, and the answer is "still starting", never "not daemonic".
#[test]
fn a_spawned_child_read_before_its_bootstrap_is_still_starting() {
    for layout in layouts() {
        let spec = Spec {
            daemon: None,
            name: "SpawnProcess-1",
            class: "_MainProcess",
            module: "multiprocessing.process",
            parent_pid: None,
            ..Spec::default()
        };
        assert_eq!(
            read(&mut Image::build(layout, &spec)),
            Err(Unknown::new(crate::event::STILL_STARTING)),
            "3.{}",
            layout.minor
        );
    }
}
