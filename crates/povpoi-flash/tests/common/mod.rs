//! A NOR flash in RAM that can lose power at any write or erase.

#![allow(dead_code)]

use embedded_storage::nor_flash::{
    ErrorType, MultiwriteNorFlash, NorFlash, NorFlashError, NorFlashErrorKind, ReadNorFlash,
};
use std::cell::RefCell;
use std::rc::Rc;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// ESP32 flash geometry: 4-byte words, 4 KiB erase sectors.
pub const WORD: usize = 4;
/// Erase sector size.
pub const SECTOR: usize = 4096;

/// What an interrupted operation leaves behind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tear {
    /// In address order, as sequential-storage's own mock flash does: the words before a
    /// random one written, that one partly (some of its 0 bits programmed), the rest not;
    /// an erase has set a random prefix of the sector to 0xFF.
    Prefix,
    /// As `embedded-storage` documents: every word of the write is undefined (each one
    /// unwritten, written or partly written); an erased sector is undefined (each byte
    /// old, 0xFF or in between).
    Undefined,
}

/// The power went off: this and every later operation fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PowerCut;

impl NorFlashError for PowerCut {
    fn kind(&self) -> NorFlashErrorKind {
        NorFlashErrorKind::Other
    }
}

/// Counts of what was done to the flash.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Write calls.
    pub writes: u64,
    /// Bytes passed to write calls.
    pub bytes_written: u64,
    /// Sectors erased.
    pub erases: u64,
    /// Words written over a word with a 0 bit where the new one has a 1: flash stores the
    /// AND of both, not what was written (a bug, unless a power cut left the old word).
    pub overwrites: u64,
    /// Read calls.
    pub reads: u64,
}

/// NOR flash in RAM: erase sets bytes to 0xFF, a write can only clear bits.
pub struct RamFlash {
    pub bytes: Vec<u8>,
    pub stats: Stats,
    /// Writes and erased sectors so far: the cut points.
    pub ops: u64,
    /// Erases of each sector.
    pub erase_counts: Vec<u32>,
    cut: Option<(u64, Tear, ChaCha8Rng)>,
    dead: bool,
    /// Offsets whose lowest bit reads flipped from now on: a cell gone bad under an open
    /// store (shared, so a test sets it while the store owns the flash).
    pub rot: Rc<RefCell<Vec<usize>>>,
}

impl RamFlash {
    /// An erased flash of `len` bytes.
    pub fn new(len: usize) -> RamFlash {
        RamFlash::from_bytes(vec![0xFF; len])
    }

    /// A flash holding `bytes`, as after a restart.
    pub fn from_bytes(bytes: Vec<u8>) -> RamFlash {
        let erase_counts = vec![0; bytes.len() / SECTOR];
        RamFlash { bytes, stats: Stats::default(), ops: 0, erase_counts, cut: None, dead: false, rot: Rc::default() }
    }

    /// Loses power at the `op`-th write or sector erase (counting from 0), leaving it torn.
    pub fn cut_at(mut self, op: u64, tear: Tear, seed: u64) -> RamFlash {
        self.cut = Some((op, tear, ChaCha8Rng::seed_from_u64(seed)));
        self
    }

    /// Whether the power went off.
    pub fn is_dead(&self) -> bool {
        self.dead
    }

    /// Counts one operation; `Some(rng)` when it is the one the power is cut at.
    fn next_op(&mut self) -> Result<Option<(Tear, ChaCha8Rng)>, PowerCut> {
        if self.dead {
            return Err(PowerCut);
        }
        let op = self.ops;
        self.ops += 1;
        match &self.cut {
            Some((at, tear, rng)) if *at == op => {
                self.dead = true;
                Ok(Some((*tear, rng.clone())))
            }
            _ => Ok(None),
        }
    }

    fn program(&mut self, at: usize, word: &[u8]) {
        let old = &mut self.bytes[at..at + WORD];
        if old.iter().zip(word).any(|(o, n)| o & n != *n) {
            self.stats.overwrites += 1;
        }
        for (o, n) in old.iter_mut().zip(word) {
            *o &= n;
        }
    }
}

fn partly(rng: &mut ChaCha8Rng, word: &[u8]) -> [u8; WORD] {
    // A bit that should become 0 may stay 1; a 1 never becomes 0.
    let mut out = [0xFF; WORD];
    for (o, n) in out.iter_mut().zip(word) {
        *o = n | rng.random::<u8>();
    }
    out
}

impl ErrorType for RamFlash {
    type Error = PowerCut;
}

impl ReadNorFlash for RamFlash {
    const READ_SIZE: usize = WORD;

    fn read(&mut self, offset: u32, bytes: &mut [u8]) -> Result<(), PowerCut> {
        if self.dead {
            return Err(PowerCut);
        }
        assert!((offset as usize).is_multiple_of(WORD) && bytes.len().is_multiple_of(WORD), "unaligned read");
        self.stats.reads += 1;
        bytes.copy_from_slice(&self.bytes[offset as usize..offset as usize + bytes.len()]);
        for &at in self.rot.borrow().iter() {
            if let Some(byte) = at.checked_sub(offset as usize).and_then(|i| bytes.get_mut(i)) {
                *byte ^= 1;
            }
        }
        Ok(())
    }

    fn capacity(&self) -> usize {
        self.bytes.len()
    }
}

impl NorFlash for RamFlash {
    const WRITE_SIZE: usize = WORD;
    const ERASE_SIZE: usize = SECTOR;

    fn erase(&mut self, from: u32, to: u32) -> Result<(), PowerCut> {
        assert!(
            (from as usize).is_multiple_of(SECTOR) && (to as usize).is_multiple_of(SECTOR) && from <= to,
            "unaligned erase"
        );
        for sector in (from as usize..to as usize).step_by(SECTOR) {
            let range = sector..sector + SECTOR;
            match self.next_op()? {
                None => {
                    self.bytes[range].fill(0xFF);
                    self.stats.erases += 1;
                    self.erase_counts[sector / SECTOR] += 1;
                }
                Some((Tear::Prefix, mut rng)) => {
                    let done = rng.random_range(0..SECTOR);
                    self.bytes[sector..sector + done].fill(0xFF);
                    return Err(PowerCut);
                }
                Some((Tear::Undefined, mut rng)) => {
                    for b in &mut self.bytes[range] {
                        *b = match rng.random_range(0..3) {
                            0 => *b,
                            1 => 0xFF,
                            _ => *b | rng.random::<u8>(),
                        };
                    }
                    return Err(PowerCut);
                }
            }
        }
        Ok(())
    }

    fn write(&mut self, offset: u32, bytes: &[u8]) -> Result<(), PowerCut> {
        assert!((offset as usize).is_multiple_of(WORD) && bytes.len().is_multiple_of(WORD), "unaligned write");
        let at = offset as usize;
        let words = bytes.chunks_exact(WORD).enumerate().map(|(i, w)| (at + i * WORD, w));
        match self.next_op()? {
            None => {
                self.stats.writes += 1;
                self.stats.bytes_written += bytes.len() as u64;
                for (a, w) in words {
                    self.program(a, w);
                }
            }
            Some((Tear::Prefix, mut rng)) => {
                let torn = rng.random_range(0..bytes.len() / WORD);
                for (i, (a, w)) in words.enumerate() {
                    if i < torn {
                        self.program(a, w);
                    } else if i == torn {
                        let part = partly(&mut rng, w);
                        self.program(a, &part);
                    }
                }
                return Err(PowerCut);
            }
            Some((Tear::Undefined, mut rng)) => {
                for (a, w) in words {
                    match rng.random_range(0..3) {
                        0 => {}
                        1 => self.program(a, w),
                        _ => {
                            let part = partly(&mut rng, w);
                            self.program(a, &part);
                        }
                    }
                }
                return Err(PowerCut);
            }
        }
        Ok(())
    }
}

impl MultiwriteNorFlash for RamFlash {}

/// `len` bytes that differ for every `seed`.
pub fn pattern(seed: u64, len: usize) -> Vec<u8> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..len).map(|_| rng.random()).collect()
}

/// Bytes of a 400x32 RGB image.
pub const IMAGE_LEN: usize = 400 * 32 * 3;
