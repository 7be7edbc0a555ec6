//! TEMPORARY STUB so the crate compiles while the real module is written (helper: overwrite this file entirely).
#![allow(missing_docs, dead_code)]
use povpoi_core::device::DeviceId;
pub const SERVICE_TYPE: &str = "_povpoi._tcp.local.";
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Advert { pub device_id: DeviceId, pub device_name: String, pub sync_group: String, pub protocol: u16, pub digest: String, pub port: u16, pub addrs: Vec<std::net::IpAddr> }
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sighting { pub device_id: DeviceId, pub device_name: String, pub sync_group: String, pub protocol: u16, pub digest: String, pub addr: std::net::SocketAddr }
pub struct Discovery;
#[derive(Debug)] pub struct DiscoveryError(pub String);
impl std::fmt::Display for DiscoveryError { fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result { f.write_str(&self.0) } }
impl Discovery {
    pub fn start(_a: &Advert, _s: tokio::sync::mpsc::UnboundedSender<Sighting>) -> Result<Discovery, DiscoveryError> { Err(DiscoveryError("stub".into())) }
    pub fn update(&self, _a: &Advert) -> Result<(), DiscoveryError> { Ok(()) }
    pub fn refresh(&self) -> Result<(), DiscoveryError> { Ok(()) }
    pub fn shutdown(self) {}
}
