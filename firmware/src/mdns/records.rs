//! What a poi's mDNS packets hold, apart from the socket and its task (so that host tests
//! compile this file: `crates/povpoi-app/tests/firmware_mdns.rs`): the records of its own
//! advert, the question that finds the others, and the others' services read out of their
//! answers.

use alloc::vec::Vec;
use core::net::{Ipv4Addr, Ipv6Addr, SocketAddr};

use edge_mdns::domain::base::iana::{Class, Rtype};
use edge_mdns::domain::base::name::ToLabelIter;
use edge_mdns::domain::base::{Message, ParsedName, Ttl};
use edge_mdns::domain::rdata::{A, Srv, Txt};
use edge_mdns::host::{Host, Service, ServiceAnswers};
use edge_mdns::{HostAnswer, HostAnswers, HostQuestion, HostQuestions, MdnsError, NameSlice};
use povpoi_app::peers::Sighting;
use povpoi_peer::advert::{self, Advert, SERVICE, TRANSPORT};

/// How long other hosts may cache the records: the usual DNS-SD 2 minutes.
pub const TTL_SECS: u32 = 120;

/// The records of `advert`, the `seq`-th announcement, of a poi at `ip`: PTR, SRV, TXT and
/// the host's A record, with the names and TXT of [`povpoi_peer::advert`].
pub struct AdvertAnswers<'a> {
    /// What is advertised.
    pub advert: &'a Advert,
    /// The announcement's number (TXT `seq`).
    pub seq: u32,
    /// The poi's address.
    pub ip: Ipv4Addr,
    /// How long others may cache the records, s: [`TTL_SECS`], or 0 to say goodbye.
    pub ttl_secs: u32,
}

impl HostAnswers for AdvertAnswers<'_> {
    fn visit<F, E>(&self, f: F) -> Result<(), E>
    where
        F: FnMut(HostAnswer) -> Result<(), E>,
        E: From<MdnsError>,
    {
        let advert = self.advert;
        let instance = advert::instance_name(advert.device_id);
        let hostname = advert::host_label(advert.device_id);
        let records = advert::txt_records(&advert.announcement(), self.seq);
        let txt = records.each_ref().map(|(key, value)| (*key, value.as_str()));
        let host = Host {
            hostname: &hostname,
            ipv4: self.ip,
            ipv6: Ipv6Addr::UNSPECIFIED,
            ttl: Ttl::from_secs(self.ttl_secs),
        };
        let service = Service {
            name: &instance,
            priority: 0,
            weight: 0,
            service: SERVICE,
            protocol: TRANSPORT,
            port: advert.port,
            service_subtypes: &[],
            txt_kvs: &txt,
        };
        ServiceAnswers::new(&host, &service).visit(f)
    }
}

/// The question a poi asks to find the others: every `_povpoi._tcp.local` service.
pub struct Browse;

impl HostQuestions for Browse {
    fn visit<F, E>(&self, mut f: F) -> Result<(), E>
    where
        F: FnMut(HostQuestion) -> Result<(), E>,
        E: From<MdnsError>,
    {
        f(HostQuestion::new(NameSlice::new(&[SERVICE, TRANSPORT, "local"]), Rtype::PTR, Class::IN))
    }
}

/// The povpoi services an mDNS answer describes whole (TXT, SRV and the target's A record
/// in the same packet, as both the node's mDNS library and this responder send them). A
/// goodbye (TTL 0, sent by a node that stops) describes no peer.
pub fn read_services(data: &[u8]) -> Result<Vec<Sighting>, MdnsError> {
    let message = Message::from_octets(data)?;
    if !message.header().qr() {
        return Ok(Vec::new());
    }
    let suffix = [SERVICE, TRANSPORT, "local"];
    let ours = |name: &ParsedName<&[u8]>| {
        let labels: Vec<_> = name.iter_labels().collect();
        labels.len() == 5
            && labels[1..4].iter().zip(suffix).all(|(l, s)| l.as_slice().eq_ignore_ascii_case(s.as_bytes()))
    };
    let (mut txts, mut srvs, mut hosts) = (Vec::new(), Vec::new(), Vec::new());
    for record in message.answer()?.chain(message.additional()?) {
        let record = record?;
        match record.rtype() {
            Rtype::TXT => {
                if let Some(txt) = record.into_record::<Txt<&[u8]>>()?
                    && ours(txt.owner())
                    && txt.ttl().as_secs() > 0
                {
                    txts.push((*txt.owner(), txt.data().clone()));
                }
            }
            Rtype::SRV => {
                if let Some(srv) = record.into_record::<Srv<ParsedName<&[u8]>>>()?
                    && ours(srv.owner())
                    && srv.ttl().as_secs() > 0
                {
                    srvs.push((*srv.owner(), srv.data().port(), *srv.data().target()));
                }
            }
            Rtype::A => {
                if let Some(a) = record.into_record::<A>()? {
                    hosts.push((*a.owner(), a.data().addr()));
                }
            }
            _ => {}
        }
    }
    let mut found = Vec::new();
    for (owner, txt) in txts {
        let Some((_, port, target)) = srvs.iter().find(|(name, _, _)| *name == owner) else {
            continue;
        };
        let Some((_, ip)) = hosts.iter().find(|(name, _)| name == target) else { continue };
        let pairs: Vec<(&str, &str)> =
            txt.iter().filter_map(|entry| core::str::from_utf8(entry).ok()?.split_once('=')).collect();
        // DNS-SD keys are case-insensitive.
        let text = |key: &str| pairs.iter().find(|(k, _)| k.eq_ignore_ascii_case(key)).map(|(_, v)| *v);
        if let Ok(heard) = advert::read_txt(text) {
            found.push(Sighting::heard(heard, SocketAddr::new((*ip).into(), *port)));
        }
    }
    Ok(found)
}
