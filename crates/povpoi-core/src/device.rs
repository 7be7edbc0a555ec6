//! Who is who: the user-facing device id and the replica id that orders edits.

use core::fmt;
use core::str::FromStr;
use serde::{Deserialize, Serialize};

/// A poi's user-facing identity, printed like a MAC address (`A1:B2:C3:D4:E5:F6`).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct DeviceId(pub [u8; 6]);

impl DeviceId {
    /// The default device name of the existing system: `"POV Poi "` + the last 5 characters of the id.
    pub fn default_name(&self) -> alloc::string::String {
        let text = alloc::format!("{self}");
        alloc::format!("POV Poi {}", &text[text.len() - 5..])
    }
}

impl fmt::Display for DeviceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0;
        write!(f, "{:02X}:{:02X}:{:02X}:{:02X}:{:02X}:{:02X}", b[0], b[1], b[2], b[3], b[4], b[5])
    }
}

impl fmt::Debug for DeviceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DeviceId({self})")
    }
}

/// Why a text is not a device id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParseDeviceIdError;

impl fmt::Display for ParseDeviceIdError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a device id is six hex bytes separated by colons, like A1:B2:C3:D4:E5:F6")
    }
}

impl FromStr for DeviceId {
    type Err = ParseDeviceIdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut out = [0u8; 6];
        let mut parts = s.split(':');
        for byte in out.iter_mut() {
            let part = parts.next().ok_or(ParseDeviceIdError)?;
            if part.len() != 2 {
                return Err(ParseDeviceIdError);
            }
            *byte = u8::from_str_radix(part, 16).map_err(|_| ParseDeviceIdError)?;
        }
        if parts.next().is_some() {
            return Err(ParseDeviceIdError);
        }
        Ok(DeviceId(out))
    }
}

/// The identity under which one copy of the library records its edits.
///
/// It is chosen at random when a store is created, separate from [`DeviceId`], so that a
/// poi whose storage was wiped starts as a new replica and can never reuse the sequence
/// numbers of its former self (which peers would take as already seen).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ReplicaId(pub u64);

impl fmt::Display for ReplicaId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

impl fmt::Debug for ReplicaId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "r{:x}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_id_round_trips_through_text() {
        let id: DeviceId = "A1:B2:C3:D4:E5:F6".parse().unwrap();
        assert_eq!(id.0, [0xA1, 0xB2, 0xC3, 0xD4, 0xE5, 0xF6]);
        assert_eq!(alloc::format!("{id}"), "A1:B2:C3:D4:E5:F6");
        assert_eq!(id.default_name(), "POV Poi E5:F6");
    }

    #[test]
    fn malformed_device_ids_are_rejected() {
        for bad in ["", "A1:B2:C3:D4:E5", "A1:B2:C3:D4:E5:F6:07", "A1:B2:C3:D4:E5:G6", "A1B2:C3:D4:E5:F6:"] {
            assert_eq!(bad.parse::<DeviceId>(), Err(ParseDeviceIdError), "{bad}");
        }
    }
}
