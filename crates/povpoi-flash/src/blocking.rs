//! The blocking flash seen through `embedded-storage-async`, which sequential-storage takes.
//!
//! A dozen lines here instead of `embassy-embedded-hal`'s `BlockingAsync`, which would bring
//! 17 crates (two embedded-hal versions, embassy-sync, heapless...) for the same adapter.

use embedded_storage::nor_flash::{ErrorType, MultiwriteNorFlash, NorFlash, ReadNorFlash};
use embedded_storage_async::nor_flash as asynch;

/// A blocking NOR flash whose operations are futures that are ready at once.
pub(crate) struct Blocking<F>(pub(crate) F);

impl<F: ErrorType> ErrorType for Blocking<F> {
    type Error = F::Error;
}

impl<F: ReadNorFlash> asynch::ReadNorFlash for Blocking<F> {
    const READ_SIZE: usize = F::READ_SIZE;

    async fn read(&mut self, offset: u32, bytes: &mut [u8]) -> Result<(), Self::Error> {
        self.0.read(offset, bytes)
    }

    fn capacity(&self) -> usize {
        self.0.capacity()
    }
}

impl<F: NorFlash> asynch::NorFlash for Blocking<F> {
    const WRITE_SIZE: usize = F::WRITE_SIZE;
    const ERASE_SIZE: usize = F::ERASE_SIZE;

    async fn erase(&mut self, from: u32, to: u32) -> Result<(), Self::Error> {
        self.0.erase(from, to)
    }

    async fn write(&mut self, offset: u32, bytes: &[u8]) -> Result<(), Self::Error> {
        self.0.write(offset, bytes)
    }
}

impl<F: MultiwriteNorFlash> asynch::MultiwriteNorFlash for Blocking<F> {}
