//! The ESP32-C3/C6 firmware's mDNS records (`firmware/src/mdns/records.rs`, compiled here on
//! the host: it uses nothing of esp-hal): what one board announces, another reads back as the
//! peer it is, and packets that do not describe a whole povpoi service give no peer.

extern crate alloc;

#[path = "../../../firmware/src/mdns/records.rs"]
mod records;

use core::net::{Ipv4Addr, SocketAddr};

use edge_mdns::host::{Host, Service, ServiceAnswers};
use edge_mdns::{HostAnswers, HostAnswersMdnsHandler, HostQuestions, MdnsHandler, MdnsRequest, MdnsResponse};
use povpoi_app::peers::Sighting;
use povpoi_core::device::DeviceId;
use povpoi_peer::advert::Advert;
use records::{AdvertAnswers, Browse, read_services};

const ID: DeviceId = DeviceId([0x02, 0x11, 0x22, 0x33, 0x44, 0x55]);
const IP: Ipv4Addr = Ipv4Addr::new(10, 7, 0, 2);

fn advert() -> Advert {
    Advert {
        device_id: ID,
        device_name: "Left poi".into(),
        sync_group: "troupe".into(),
        protocol: 3,
        digest: "0a1b2c".into(),
        port: 80,
    }
}

/// The unsolicited announcement the board's responder sends (edge-mdns composes it from the
/// records, as on the board).
fn announcement(answers: impl HostAnswers) -> Vec<u8> {
    let mut buf = [0u8; 1500];
    let mut handler = HostAnswersMdnsHandler::new(answers);
    match handler.handle(MdnsRequest::None, &mut buf).unwrap() {
        MdnsResponse::Reply { data, .. } => data.to_vec(),
        MdnsResponse::None => panic!("no announcement composed"),
    }
}

#[test]
fn what_a_board_announces_another_reads_back_as_that_peer() {
    let advert = advert();
    let packet = announcement(AdvertAnswers { advert: &advert, seq: 41, ip: IP, ttl_secs: records::TTL_SECS });
    println!("announcement: {} bytes", packet.len());
    let heard = read_services(&packet).unwrap();
    assert_eq!(
        heard,
        [Sighting {
            device_id: ID,
            device_name: "Left poi".into(),
            sync_group: "troupe".into(),
            protocol: 3,
            digest: "0a1b2c".into(),
            addr: SocketAddr::new(IP.into(), 80),
        }]
    );
}

#[test]
fn a_boards_answer_to_the_query_reads_back_as_that_peer() {
    // The board's query, answered by the board's responder: PTR in the answers, SRV, TXT and
    // A in the additional section.
    let mut query = [0u8; 512];
    let len = Browse.query(0, &mut query).unwrap();
    let advert = advert();
    let mut handler = HostAnswersMdnsHandler::new(AdvertAnswers { advert: &advert, seq: 3, ip: IP, ttl_secs: 120 });
    let mut buf = [0u8; 1500];
    let request = MdnsRequest::Request { legacy: false, multicast: true, data: &query[..len] };
    let MdnsResponse::Reply { data, .. } = handler.handle(request, &mut buf).unwrap() else {
        panic!("the query got no answer")
    };
    let heard = read_services(data).unwrap();
    assert_eq!(heard.len(), 1, "{heard:?}");
    assert_eq!((heard[0].device_id, heard[0].addr), (ID, SocketAddr::new(IP.into(), 80)));
}

#[test]
fn queries_damaged_packets_and_other_services_give_no_peer() {
    let advert = advert();
    let packet = announcement(AdvertAnswers { advert: &advert, seq: 1, ip: IP, ttl_secs: records::TTL_SECS });

    // The board's own query for the others is a question, not an answer.
    let mut buf = [0u8; 512];
    let len = Browse.query(7, &mut buf).unwrap();
    assert!(len > 12, "a query was composed");
    assert_eq!(read_services(&buf[..len]).unwrap(), []);

    // A goodbye (TTL 0) describes no peer.
    let goodbye = announcement(AdvertAnswers { advert: &advert, seq: 2, ip: IP, ttl_secs: 0 });
    assert_eq!(read_services(&goodbye).unwrap(), []);

    // Cut short anywhere: an error or no peer, never a wrong one.
    for end in 0..packet.len() {
        if let Ok(heard) = read_services(&packet[..end]) {
            assert_eq!(heard, [], "a peer read from the first {end} bytes");
        }
    }

    // Another service type with a poi's TXT, and a povpoi service without a deviceId.
    let id = ID.to_string();
    let txt = [("deviceId", id.as_str()), ("protocol", "3")];
    assert_eq!(read_services(&announcement(Other { service: "_http", txt: &txt })).unwrap(), []);
    assert_eq!(read_services(&announcement(Other { service: "_povpoi", txt: &txt[1..] })).unwrap(), []);
    // The same records as a povpoi service do describe a poi (the two above fail for their
    // reason, not for the way this test builds them).
    let minimal = read_services(&announcement(Other { service: "_povpoi", txt: &txt })).unwrap();
    assert_eq!(minimal.len(), 1);
    assert_eq!((minimal[0].device_id, minimal[0].device_name.clone()), (ID, ID.default_name()));
}

/// A service `service`._tcp with TXT `txt`, on the host of [`ID`] at [`IP`].
struct Other<'a> {
    service: &'a str,
    txt: &'a [(&'a str, &'a str)],
}

impl HostAnswers for Other<'_> {
    fn visit<F, E>(&self, f: F) -> Result<(), E>
    where
        F: FnMut(edge_mdns::HostAnswer) -> Result<(), E>,
        E: From<edge_mdns::MdnsError>,
    {
        let host = Host {
            hostname: "povpoi-4455",
            ipv4: IP,
            ipv6: core::net::Ipv6Addr::UNSPECIFIED,
            ttl: edge_mdns::domain::base::Ttl::from_secs(120),
        };
        let service = Service {
            name: "povpoi-4455-021122334455",
            priority: 0,
            weight: 0,
            service: self.service,
            protocol: "_tcp",
            port: 80,
            service_subtypes: &[],
            txt_kvs: self.txt,
        };
        ServiceAnswers::new(&host, &service).visit(f)
    }
}
