//! NOR flash in RAM with a board's geometry: what a board's application runs on when it runs
//! on a laptop (`povpoi board`), and a store to try things on. Erasing sets bytes to 0xFF and
//! a write can only clear bits, as on the chip.

use alloc::vec;
use alloc::vec::Vec;

use embedded_storage::nor_flash::{
    ErrorType, MultiwriteNorFlash, NorFlash, NorFlashError, NorFlashErrorKind, ReadNorFlash,
};

/// The ESP32 flash's write unit, bytes.
pub const WORD: usize = 4;
/// The ESP32 flash's erase sector, bytes.
pub const SECTOR: usize = 4096;

/// An access outside the flash or not aligned to its units.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RamFlashError(NorFlashErrorKind);

impl NorFlashError for RamFlashError {
    fn kind(&self) -> NorFlashErrorKind {
        self.0
    }
}

/// NOR flash in RAM.
#[derive(Clone, Debug)]
pub struct RamFlash {
    bytes: Vec<u8>,
}

impl RamFlash {
    /// An erased flash of `sectors` 4 KiB sectors.
    pub fn new(sectors: usize) -> RamFlash {
        RamFlash { bytes: vec![0xFF; sectors * SECTOR] }
    }

    /// Its bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    fn check(&self, offset: u32, len: usize, unit: usize) -> Result<core::ops::Range<usize>, RamFlashError> {
        let start = offset as usize;
        let end = start.checked_add(len).filter(|end| *end <= self.bytes.len());
        let end = end.ok_or(RamFlashError(NorFlashErrorKind::OutOfBounds))?;
        if !start.is_multiple_of(unit) || !len.is_multiple_of(unit) {
            return Err(RamFlashError(NorFlashErrorKind::NotAligned));
        }
        Ok(start..end)
    }
}

impl ErrorType for RamFlash {
    type Error = RamFlashError;
}

impl ReadNorFlash for RamFlash {
    const READ_SIZE: usize = WORD;

    fn read(&mut self, offset: u32, bytes: &mut [u8]) -> Result<(), RamFlashError> {
        let range = self.check(offset, bytes.len(), WORD)?;
        bytes.copy_from_slice(&self.bytes[range]);
        Ok(())
    }

    fn capacity(&self) -> usize {
        self.bytes.len()
    }
}

impl NorFlash for RamFlash {
    const WRITE_SIZE: usize = WORD;
    const ERASE_SIZE: usize = SECTOR;

    fn erase(&mut self, from: u32, to: u32) -> Result<(), RamFlashError> {
        let len = (to as usize).checked_sub(from as usize).ok_or(RamFlashError(NorFlashErrorKind::OutOfBounds))?;
        let range = self.check(from, len, SECTOR)?;
        self.bytes[range].fill(0xFF);
        Ok(())
    }

    fn write(&mut self, offset: u32, bytes: &[u8]) -> Result<(), RamFlashError> {
        let range = self.check(offset, bytes.len(), WORD)?;
        for (old, new) in self.bytes[range].iter_mut().zip(bytes) {
            *old &= new;
        }
        Ok(())
    }
}

// Writing a word again only clears more bits, as NOR flash does: what the store relies on.
impl MultiwriteNorFlash for RamFlash {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_clear_bits_erases_set_them_and_bad_accesses_are_refused() {
        let mut flash = RamFlash::new(2);
        flash.write(4, &[0x0F, 0xF0, 0xFF, 0x00]).unwrap();
        flash.write(4, &[0xF0, 0xFF, 0xFF, 0xFF]).unwrap();
        let mut word = [0; 4];
        flash.read(4, &mut word).unwrap();
        assert_eq!(word, [0x00, 0xF0, 0xFF, 0x00]);
        flash.erase(0, SECTOR as u32).unwrap();
        flash.read(4, &mut word).unwrap();
        assert_eq!(word, [0xFF; 4]);
        assert_eq!(flash.write(2, &[0; 4]).unwrap_err().kind(), NorFlashErrorKind::NotAligned);
        assert_eq!(flash.read(2 * SECTOR as u32, &mut word).unwrap_err().kind(), NorFlashErrorKind::OutOfBounds);
        assert_eq!(flash.erase(0, 100).unwrap_err().kind(), NorFlashErrorKind::NotAligned);
    }
}
