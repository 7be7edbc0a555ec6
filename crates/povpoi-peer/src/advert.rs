//! How a poi announces itself on mDNS / DNS-SD and how another reads the announcement: the
//! service type, the instance and host names, and the TXT records (docs/PROTOCOL.md). The
//! node's mdns-sd and the firmware's edge-mdns both take them from here.

use alloc::format;
use alloc::string::{String, ToString};

use povpoi_core::device::DeviceId;

/// The DNS-SD service type every poi advertises and browses, fully qualified.
pub const SERVICE_TYPE: &str = "_povpoi._tcp.local.";
/// The service label of [`SERVICE_TYPE`].
pub const SERVICE: &str = "_povpoi";
/// The transport label of [`SERVICE_TYPE`].
pub const TRANSPORT: &str = "_tcp";

/// The sync group of a poi that was never given one, board or node alike: so that two new
/// poi meet.
pub const DEFAULT_SYNC_GROUP: &str = "default";

/// The short digest a poi advertises of what its library has seen (`digest` in TXT, and
/// `libraryDigest` in `/api/sync/status`): the first 4 bytes, in hex, of SHA-256 over the
/// group name and the postcard encoding of its knowledge. Equal digests mean nothing to sync.
pub fn library_digest(group: &str, knowledge: &povpoi_core::sync::Knowledge) -> String {
    use sha2::{Digest, Sha256};
    let mut hash = Sha256::new();
    hash.update(group.as_bytes());
    hash.update(povpoi_core::wire::to_bytes(knowledge));
    hex::encode(&hash.finalize()[..4])
}

/// The TXT keys; the first two are the existing system's.
pub mod key {
    /// The poi's device id.
    pub const DEVICE_ID: &str = "deviceId";
    /// Its user-facing name.
    pub const DEVICE_NAME: &str = "deviceName";
    /// Its sync group.
    pub const SYNC_GROUP: &str = "syncGroup";
    /// The sync protocol version it speaks.
    pub const PROTOCOL: &str = "protocol";
    /// A short hex digest of its library: a peer whose digest changed has news.
    pub const DIGEST: &str = "digest";
    /// Counts announcements, so every one differs from the last and is reported again.
    pub const SEQ: &str = "seq";
}

/// What a poi advertises about itself, and where its API is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Advert {
    /// Its device id (also in the instance and host names).
    pub device_id: DeviceId,
    /// Its user-facing name.
    pub device_name: String,
    /// Its sync group.
    pub sync_group: String,
    /// The sync protocol version it speaks.
    pub protocol: u16,
    /// A short hex digest of its library.
    pub digest: String,
    /// The port of its HTTP API.
    pub port: u16,
}

impl Advert {
    /// What its TXT records say.
    pub fn announcement(&self) -> Announcement<'_> {
        Announcement {
            device_id: self.device_id,
            device_name: &self.device_name,
            sync_group: &self.sync_group,
            protocol: self.protocol,
            digest: &self.digest,
        }
    }
}

/// What a poi says about itself.
#[derive(Clone, Copy, Debug)]
pub struct Announcement<'a> {
    /// Its device id (also in the instance and host names).
    pub device_id: DeviceId,
    /// Its user-facing name.
    pub device_name: &'a str,
    /// Its sync group.
    pub sync_group: &'a str,
    /// The sync protocol version it speaks.
    pub protocol: u16,
    /// A short hex digest of its library.
    pub digest: &'a str,
}

/// `povpoi-E5F6-A1B2C3D4E5F6`: the existing system's short form, made unique by the whole id.
pub fn instance_name(id: DeviceId) -> String {
    let hex = hex::encode_upper(id.0);
    format!("povpoi-{}-{hex}", &hex[8..])
}

/// `povpoi-E5F6`: the host name without `.local`, as the existing system names its host.
pub fn host_label(id: DeviceId) -> String {
    format!("povpoi-{}", hex::encode_upper(&id.0[4..]))
}

/// The TXT records of an announcement, the `seq`-th one.
pub fn txt_records(about: &Announcement<'_>, seq: u32) -> [(&'static str, String); 6] {
    [
        (key::DEVICE_ID, about.device_id.to_string()),
        (key::DEVICE_NAME, about.device_name.into()),
        (key::SYNC_GROUP, about.sync_group.into()),
        (key::PROTOCOL, about.protocol.to_string()),
        (key::DIGEST, about.digest.into()),
        (key::SEQ, seq.to_string()),
    ]
}

/// What another poi's TXT records say of it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Heard {
    /// Its device id.
    pub device_id: DeviceId,
    /// Its name (its default name if it gave none).
    pub device_name: String,
    /// Its sync group (empty if it gave none).
    pub sync_group: String,
    /// The sync protocol version it speaks.
    pub protocol: u16,
    /// Its library digest (empty if it gave none).
    pub digest: String,
}

/// Reads another poi's TXT records through `text` (a record's value by key); says why a
/// service is not a poi.
pub fn read_txt<'t>(text: impl Fn(&str) -> Option<&'t str>) -> Result<Heard, &'static str> {
    let device_id: DeviceId =
        text(key::DEVICE_ID).ok_or("no deviceId")?.parse().map_err(|_| "deviceId is not a device id")?;
    let protocol: u16 =
        text(key::PROTOCOL).ok_or("no protocol")?.parse().map_err(|_| "protocol is not a version number")?;
    Ok(Heard {
        device_id,
        device_name: text(key::DEVICE_NAME).map_or_else(|| device_id.default_name(), str::to_string),
        sync_group: text(key::SYNC_GROUP).unwrap_or_default().into(),
        protocol,
        digest: text(key::DIGEST).unwrap_or_default().into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: DeviceId = DeviceId([0xA1, 0xB2, 0xC3, 0xD4, 0xE5, 0xF6]);

    #[test]
    fn names_follow_the_existing_system() {
        assert_eq!(instance_name(ID), "povpoi-E5F6-A1B2C3D4E5F6");
        assert_eq!(host_label(ID), "povpoi-E5F6");
    }

    #[test]
    fn what_one_poi_announces_another_reads_back() {
        let about =
            Announcement { device_id: ID, device_name: "Left", sync_group: "troupe", protocol: 3, digest: "00ff" };
        let records = txt_records(&about, 7);
        let heard = read_txt(|k| records.iter().find(|(key, _)| *key == k).map(|(_, v)| v.as_str())).unwrap();
        assert_eq!(
            heard,
            Heard {
                device_id: ID,
                device_name: "Left".into(),
                sync_group: "troupe".into(),
                protocol: 3,
                digest: "00ff".into()
            }
        );
        assert_eq!(records[5], (key::SEQ, "7".into()));
    }

    #[test]
    fn a_service_without_an_id_or_version_is_not_a_poi_and_missing_names_get_defaults() {
        assert_eq!(read_txt(|_| None), Err("no deviceId"));
        let id = ID.to_string();
        let only = |k: &str| match k {
            key::DEVICE_ID => Some(id.as_str()),
            key::PROTOCOL => Some("x"),
            _ => None,
        };
        assert_eq!(read_txt(only), Err("protocol is not a version number"));
        let minimal = |k: &str| match k {
            key::DEVICE_ID => Some(id.as_str()),
            key::PROTOCOL => Some("3"),
            _ => None,
        };
        let heard = read_txt(minimal).unwrap();
        assert_eq!((heard.device_name, heard.sync_group), (ID.default_name(), String::new()));
    }
}
