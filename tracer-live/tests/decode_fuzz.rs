//! No record makes the decoder panic: it is fed random bytes, byte-level damage to real
//! records (cut, flipped, spliced), and the corpus in `tests/corpus/records`, which every run
//! decodes at every length. What decodes is an event the rest of the tracer can write and
//! read back. A failing case proptest finds is saved beside this file and replayed first on
//! later runs: add it to the corpus once fixed.

use std::path::Path;

use proptest::prelude::*;
use tracer_core::event::Event;
use tracer_live::decode::decode;

fn corpus() -> Vec<Vec<u8>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus/records");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("corpus {}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .collect();
    files.sort();
    assert!(files.len() >= 10, "the record corpus is there");
    files
        .iter()
        .map(|path| std::fs::read(path).unwrap())
        .collect()
}

fn check_record(bytes: &[u8]) {
    if let Ok(event) = decode(bytes) {
        let line = serde_json::to_string(&event).unwrap();
        let back: Event = serde_json::from_str(&line).unwrap();
        assert_eq!(back, event);
    }
}

#[test]
fn the_record_corpus_decodes_without_panics_at_every_length() {
    for bytes in corpus() {
        for len in 0..=bytes.len() {
            check_record(&bytes[..len]);
        }
    }
}

/// Damage to one record: a bit flipped, bytes spliced in or cut out.
#[derive(Clone, Debug)]
enum Damage {
    Flip(usize, u8),
    Splice(usize, Vec<u8>),
    Cut(usize, usize),
}

fn damage() -> impl Strategy<Value = Damage> {
    prop_oneof![
        (any::<usize>(), any::<u8>()).prop_map(|(at, bits)| Damage::Flip(at, bits)),
        (
            any::<usize>(),
            proptest::collection::vec(any::<u8>(), 1..32)
        )
            .prop_map(|(at, bytes)| Damage::Splice(at, bytes)),
        (any::<usize>(), 1usize..64).prop_map(|(at, len)| Damage::Cut(at, len)),
    ]
}

fn damaged(mut bytes: Vec<u8>, damage: &Damage) -> Vec<u8> {
    match damage {
        Damage::Flip(at, bits) if !bytes.is_empty() => {
            let at = at % bytes.len();
            bytes[at] ^= bits;
        }
        Damage::Flip(..) => {}
        Damage::Splice(at, new) => {
            let at = at % (bytes.len() + 1);
            bytes.splice(at..at, new.iter().copied());
        }
        Damage::Cut(at, len) => {
            let at = at % (bytes.len() + 1);
            let end = (at + len).min(bytes.len());
            bytes.drain(at..end);
        }
    }
    bytes
}

/// 512 cases a property; what fails is kept beside this file and tried first next time.
fn config() -> ProptestConfig {
    let mut config = ProptestConfig::with_cases(512);
    config.failure_persistence = Some(Box::new(
        proptest::test_runner::FileFailurePersistence::WithSource("regressions"),
    ));
    config
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn random_and_damaged_records_never_panic_the_decoder(
        noise in proptest::collection::vec(any::<u8>(), 0..2048),
        seed in prop::sample::select(corpus()),
        damages in proptest::collection::vec(damage(), 1..6),
    ) {
        check_record(&noise);
        check_record(&damages.iter().fold(seed, damaged));
    }
}
