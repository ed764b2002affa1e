//! A real authoritative DNS server inside the test process (hickory-server on loopback, UDP
//! and TCP on one port), which the app's resolver is pointed at through
//! `SWITCHBOARD_DNS_SERVERS`. It answers for every name: records the test published, NXDOMAIN
//! for the rest, and the faults a test sets for a name (SERVFAIL, or no answer at all).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hickory_server::Server;
use hickory_server::net::runtime::Time;
use hickory_server::proto::op::{Header, HeaderCounts, ResponseCode};
use hickory_server::proto::rr::rdata::{CNAME, MX, SOA, TXT};
use hickory_server::proto::rr::{LowerName, Name, RData, Record, RecordType};
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::store::in_memory::InMemoryZoneHandler;
use hickory_server::zone_handler::{
    AxfrPolicy, Catalog, MessageResponseBuilder, ZoneHandler, ZoneType,
};

/// What the server does for a name instead of answering from its records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DnsFault {
    /// Answers SERVFAIL.
    ServFail,
    /// Never answers: the resolver times out.
    Silence,
}

type Faults = Arc<Mutex<HashMap<LowerName, DnsFault>>>;

struct Faulty {
    catalog: Catalog,
    faults: Faults,
}

#[async_trait::async_trait]
impl RequestHandler for Faulty {
    async fn handle_request<R: ResponseHandler, T: Time>(
        &self,
        request: &Request,
        mut response_handle: R,
    ) -> ResponseInfo {
        let fault = request
            .request_info()
            .ok()
            .and_then(|info| self.faults.lock().unwrap().get(info.query.name()).copied());
        match fault {
            Some(DnsFault::ServFail) => {
                let response = MessageResponseBuilder::new(&request.queries, None)
                    .error_msg(&request.metadata, ResponseCode::ServFail);
                match response_handle.send_response(response).await {
                    Ok(info) => info,
                    Err(_) => silent(request),
                }
            }
            Some(DnsFault::Silence) => silent(request),
            None => {
                self.catalog
                    .handle_request::<R, T>(request, response_handle)
                    .await
            }
        }
    }
}

/// The server's record of a request it did not answer.
fn silent(request: &Request) -> ResponseInfo {
    ResponseInfo::from(Header {
        metadata: request.metadata,
        counts: HeaderCounts::default(),
    })
}

pub struct TestDns {
    pub address: SocketAddr,
    zone: Arc<InMemoryZoneHandler>,
    faults: Faults,
    serial: std::sync::atomic::AtomicU32,
    _server: Server<Faulty>,
}

fn name(raw: &str) -> Name {
    Name::from_ascii(format!("{}.", raw.trim_end_matches('.'))).expect("a DNS name")
}

impl TestDns {
    pub async fn start() -> Self {
        let origin = Name::root();
        let zone = InMemoryZoneHandler::empty(origin.clone(), ZoneType::Primary, AxfrPolicy::Deny);
        let soa = SOA::new(
            name("ns.test"),
            name("hostmaster.test"),
            1,
            3600,
            600,
            86400,
            0,
        );
        zone.upsert(Record::from_rdata(origin.clone(), 0, RData::SOA(soa)), 1)
            .await;
        let zone = Arc::new(zone);
        let mut catalog = Catalog::new();
        catalog.upsert(
            LowerName::new(&origin),
            vec![zone.clone() as Arc<dyn ZoneHandler>],
        );
        let faults: Faults = Arc::default();
        // UDP and TCP on one port: a free UDP port may be a busy TCP one, so try again.
        let mut attempts = 0;
        let (udp, tcp, address) = loop {
            let udp = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
            let address = udp.local_addr().unwrap();
            match tokio::net::TcpListener::bind(address).await {
                Ok(tcp) => break (udp, tcp, address),
                Err(_) if attempts < 50 => attempts += 1,
                Err(e) => panic!("no port free for both UDP and TCP: {e}"),
            }
        };
        let mut server = Server::new(Faulty {
            catalog,
            faults: faults.clone(),
        });
        server.register_socket(udp);
        server.register_listener(tcp, Duration::from_secs(5), 65_535);
        Self {
            address,
            zone,
            faults,
            serial: std::sync::atomic::AtomicU32::new(2),
            _server: server,
        }
    }

    /// `SWITCHBOARD_DNS_SERVERS` for an app that asks this server.
    pub fn servers(&self) -> String {
        self.address.to_string()
    }

    fn serial(&self) -> u32 {
        self.serial
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    }

    async fn add(&self, at: &str, data: RData) {
        let record = Record::from_rdata(name(at), 0, data);
        self.zone.upsert(record, self.serial()).await;
    }

    /// Adds a TXT record (another at the same name is kept: several values may live there).
    pub async fn txt(&self, at: &str, value: &str) {
        self.add(at, RData::TXT(TXT::new(vec![value.to_owned()])))
            .await;
    }

    /// Adds a TXT record whose value is split into character-strings of at most 255 bytes,
    /// as a long DKIM key is published.
    pub async fn long_txt(&self, at: &str, value: &str) {
        let parts = value
            .as_bytes()
            .chunks(255)
            .map(|c| String::from_utf8(c.to_vec()).expect("ASCII"))
            .collect();
        self.add(at, RData::TXT(TXT::new(parts))).await;
    }

    /// Adds a CNAME from `at` to `target`.
    pub async fn cname(&self, at: &str, target: &str) {
        self.add(at, RData::CNAME(CNAME(name(target)))).await;
    }

    /// Adds an MX record.
    pub async fn mx(&self, at: &str, preference: u16, exchange: &str) {
        self.add(at, RData::MX(MX::new(preference, name(exchange))))
            .await;
    }

    /// Removes every record of this type at the name (the name may then not exist at all).
    pub async fn remove(&self, at: &str, kind: RecordType) {
        let at = LowerName::new(&name(at));
        self.zone
            .records_mut()
            .await
            .retain(|key, _| !(key.name == at && key.record_type == kind));
    }

    /// Answers for `at` with `fault` until `clear` is called.
    pub fn fault(&self, at: &str, fault: DnsFault) {
        self.faults
            .lock()
            .unwrap()
            .insert(LowerName::new(&name(at)), fault);
    }

    pub fn clear(&self, at: &str) {
        self.faults
            .lock()
            .unwrap()
            .remove(&LowerName::new(&name(at)));
    }
}
