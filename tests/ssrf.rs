//! Server-side request forgery: `HttpTransport` refuses endpoints on non-global addresses in
//! every spelling, checking resolved addresses when it connects, and an allowlist opens them.
//!
//! Every receiver listens on 127.0.0.1 and counts the TCP connections it accepts; names are
//! resolved by a test resolver (no real DNS), or by the system for `localhost`. No traffic
//! leaves the machine's loopback interface.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use magic_link::store::{MemoryStore, WebhookStore};
use magic_link::tokens::Keyring;
use magic_link::webhooks::{
    AllowList, AttemptOutcome, Dispatcher, Endpoint, HttpTransport, RetrySchedule, Transport,
    TransportError, WebhookRequest, WebhookResponse, WebhookSecret,
};
use magic_link::{AccountId, IdempotencyKey, MagicLinks};
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A receiver on 127.0.0.1 that answers `204` to every request and counts what it accepts.
struct Receiver {
    addr: SocketAddr,
    accepted: Arc<AtomicUsize>,
    /// Each request's head (request line and headers).
    heads: Arc<Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Receiver {
    async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let heads = Arc::new(Mutex::new(Vec::new()));
        let task = tokio::spawn({
            let (accepted, heads) = (accepted.clone(), heads.clone());
            async move {
                loop {
                    let Ok((stream, _)) = listener.accept().await else {
                        return;
                    };
                    accepted.fetch_add(1, Ordering::SeqCst);
                    tokio::spawn(answer(stream, heads.clone()));
                }
            }
        });
        Self {
            addr,
            accepted,
            heads,
            task,
        }
    }

    fn port(&self) -> u16 {
        self.addr.port()
    }

    fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }

    fn heads(&self) -> Vec<String> {
        self.heads.lock().unwrap().clone()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Reads one request (head and `content-length` body) and answers `204`.
async fn answer(mut stream: TcpStream, heads: Arc<Mutex<Vec<String>>>) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
        match stream.read(&mut chunk).await {
            Ok(n) if n > 0 && buf.len() < 64 * 1024 => buf.extend_from_slice(&chunk[..n]),
            _ => return,
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let length: usize = head
        .lines()
        .filter_map(|l| l.split_once(':'))
        .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.trim().parse().ok())
        .unwrap_or(0);
    let mut body = buf.len() - (head_end + 4);
    while body < length {
        match stream.read(&mut chunk).await {
            Ok(n) if n > 0 => body += n,
            _ => return,
        }
    }
    heads.lock().unwrap().push(head);
    let response = "HTTP/1.1 204 No Content\r\ncontent-length: 0\r\nconnection: close\r\n\r\n";
    let _ = stream.write_all(response.as_bytes()).await;
    let _ = stream.shutdown().await;
}

/// A resolver with fixed answers (one list per call for a name, the last repeated), counting
/// its lookups; unknown names fail.
#[derive(Debug, Default)]
struct Names {
    answers: HashMap<&'static str, Vec<Vec<IpAddr>>>,
    /// The port of every answer; 9 if unset. The transport must ignore it.
    port: Option<u16>,
    lookups: Mutex<HashMap<String, usize>>,
}

impl Names {
    fn port(mut self, port: u16) -> Self {
        self.port = Some(port);
        self
    }

    fn with(mut self, name: &'static str, ips: &[&str]) -> Self {
        let ips = ips.iter().map(|ip| ip.parse().unwrap()).collect();
        self.answers.entry(name).or_default().push(ips);
        self
    }

    fn lookups(&self, name: &str) -> usize {
        self.lookups.lock().unwrap().get(name).copied().unwrap_or(0)
    }
}

impl Resolve for Names {
    fn resolve(&self, name: Name) -> Resolving {
        let name = name.as_str().to_owned();
        let call = {
            let mut lookups = self.lookups.lock().unwrap();
            let n = lookups.entry(name.clone()).or_default();
            *n += 1;
            *n
        };
        let port = self.port.unwrap_or(9);
        let found = self.answers.get(name.as_str()).map(|answers| {
            let ips = &answers[(call - 1).min(answers.len() - 1)];
            ips.iter()
                .map(|ip| SocketAddr::new(*ip, port))
                .collect::<Vec<_>>()
        });
        Box::pin(async move {
            match found {
                Some(addrs) => Ok(Box::new(addrs.into_iter()) as Addrs),
                None => Err(format!("no such name: {name}").into()),
            }
        })
    }
}

fn request(url: &str) -> WebhookRequest {
    WebhookRequest::new(
        url.to_owned(),
        "msg_1".into(),
        "1700000000".into(),
        "v1,x".into(),
        b"{}".to_vec(),
        Duration::from_secs(5),
    )
}

async fn send(transport: &HttpTransport, url: &str) -> Result<WebhookResponse, TransportError> {
    tokio::time::timeout(Duration::from_secs(10), transport.send(request(url)))
        .await
        .unwrap_or_else(|_| panic!("{url}: no answer within 10 s"))
}

async fn assert_blocked(transport: &HttpTransport, url: &str) {
    match send(transport, url).await {
        Err(err @ TransportError::Blocked) => {
            let message = err.to_string();
            assert!(message.starts_with("blocked: "), "{message}");
            assert!(
                !message.contains("127.") && !message.contains("::"),
                "{message}"
            );
        }
        other => panic!("{url}: expected Blocked, got {other:?}"),
    }
}

async fn assert_reached(transport: &HttpTransport, url: &str) {
    match send(transport, url).await {
        Ok(response) => assert_eq!(response.status, 204, "{url}"),
        Err(err) => panic!("{url}: expected 204, got {err:?}"),
    }
}

/// Every name a test resolver knows: all of them stand for 127.0.0.1 somehow.
fn loopback_names() -> Names {
    Names::default()
        .with("rebind.test", &["127.0.0.1"])
        .with("mapped.test", &["::ffff:127.0.0.1"])
        .with("v6.test", &["::1"])
        .with("mixed.test", &["10.0.0.1", "127.0.0.1", "169.254.169.254"])
}

#[tokio::test]
async fn refuses_every_spelling_of_loopback_without_connecting() {
    let receiver = Receiver::start().await;
    let port = receiver.port();
    let names = Arc::new(loopback_names());
    let system = HttpTransport::new().unwrap();
    let resolving = HttpTransport::builder()
        .dns_resolver(names.clone())
        .build()
        .unwrap();

    for host in [
        "127.0.0.1",
        "127.1",
        "0x7f.0.0.1",
        "0x7f000001",
        "2130706433",
        "0177.0.0.1",
        "127.0.0.1.",
        "0",
        "[::1]",
        "[::]",
        "[::ffff:127.0.0.1]",
        "[::ffff:7f00:1]",
        "[64:ff9b::127.0.0.1]",
    ] {
        for transport in [&system, &resolving] {
            assert_blocked(transport, &format!("http://{host}:{port}/hook")).await;
        }
    }
    assert_blocked(&system, &format!("https://127.0.0.1:{port}/hook")).await;
    // The system resolver's answer for `localhost`.
    assert_blocked(&system, &format!("http://localhost:{port}/hook")).await;
    assert_blocked(&system, &format!("http://LocalHost:{port}/hook")).await;
    // Names mapped to 127.0.0.1 (as a DNS rebinding attacker would), to `::ffff:127.0.0.1`,
    // to `::1`, and to private addresses only.
    for name in ["rebind.test", "mapped.test", "v6.test", "mixed.test"] {
        assert_blocked(&resolving, &format!("http://{name}:{port}/hook")).await;
        assert_eq!(names.lookups(name), 1, "{name} was resolved when sending");
    }
    assert_blocked(&resolving, &format!("https://rebind.test:{port}/hook")).await;
    assert_eq!(receiver.accepted(), 0, "no TCP connection was opened");

    // The same receiver is reachable: the counter counts.
    let open = HttpTransport::builder()
        .allow_network("127.0.0.1/32".parse().unwrap())
        .build()
        .unwrap();
    assert_reached(&open, &format!("http://127.0.0.1:{port}/hook")).await;
    assert_eq!(
        receiver.accepted(),
        1,
        "one connection: the allowed request's, none before it"
    );
}

#[tokio::test]
async fn an_allowed_network_or_socket_address_is_reached() {
    let receiver = Receiver::start().await;
    let other = Receiver::start().await;
    let (port, other_port) = (receiver.port(), other.port());
    let names = Arc::new(loopback_names());

    // A network: every port of its addresses, by literal or by name.
    let network = HttpTransport::builder()
        .allow_network("127.0.0.0/8".parse().unwrap())
        .dns_resolver(names.clone())
        .build()
        .unwrap();
    for url in [
        format!("http://127.0.0.1:{port}/hook"),
        format!("http://127.1:{port}/hook"),
        format!("http://rebind.test:{port}/hook"),
        format!("http://mapped.test:{port}/hook"),
        format!("http://rebind.test:{other_port}/hook"),
    ] {
        assert_reached(&network, &url).await;
    }
    assert_eq!(receiver.accepted(), 4);
    assert_eq!(other.accepted(), 1);
    // Only the addresses the network holds: `mixed.test` also resolves to 10.0.0.1 and
    // 169.254.169.254, and is reached at 127.0.0.1.
    assert_reached(&network, &format!("http://mixed.test:{port}/hook")).await;
    assert_eq!(receiver.accepted(), 5);
    assert_blocked(&network, &format!("http://[::1]:{port}/hook")).await;

    // A socket address: that port only, by literal or by name.
    let socket = HttpTransport::builder()
        .allow_socket_addr(receiver.addr)
        .dns_resolver(names.clone())
        .build()
        .unwrap();
    assert_reached(&socket, &format!("http://127.0.0.1:{port}/hook")).await;
    assert_reached(&socket, &format!("http://rebind.test:{port}/hook")).await;
    assert_blocked(&socket, &format!("http://127.0.0.1:{other_port}/hook")).await;
    assert_blocked(&socket, &format!("http://rebind.test:{other_port}/hook")).await;
    assert_eq!(receiver.accepted(), 7);
    assert_eq!(other.accepted(), 1, "the other port stayed closed");

    // A list read from configuration, as the example server reads `WEBHOOK_ALLOW_NETWORKS`.
    let list: AllowList = format!("10.0.0.0/8, 127.0.0.1:{other_port}")
        .parse()
        .unwrap();
    let listed = HttpTransport::builder().allow(list).build().unwrap();
    assert_reached(&listed, &format!("http://127.0.0.1:{other_port}/hook")).await;
    assert_blocked(&listed, &format!("http://127.0.0.1:{port}/hook")).await;
    assert_eq!((receiver.accepted(), other.accepted()), (7, 2));
}

#[tokio::test]
async fn a_name_is_checked_each_time_it_is_resolved() {
    let receiver = Receiver::start().await;
    let port = receiver.port();
    // An allowed address at first, then another loopback address.
    let names = Arc::new(
        Names::default()
            .with("flip.test", &["127.0.0.1"])
            .with("flip.test", &["127.0.0.2"]),
    );
    let transport = HttpTransport::builder()
        .allow_socket_addr(receiver.addr)
        .dns_resolver(names.clone())
        .build()
        .unwrap();
    // Setting the endpoint decides nothing about addresses.
    let url = format!("http://flip.test:{port}/hook");
    let secret = WebhookSecret::generate().unwrap();
    let endpoint = Endpoint::new(AccountId::new(), &url, vec![secret], Utc::now()).unwrap();

    assert_reached(&transport, endpoint.url()).await;
    assert_blocked(&transport, endpoint.url()).await;
    assert_eq!(names.lookups("flip.test"), 2);
    assert_eq!(receiver.accepted(), 1);
}

/// A resolver's answer carries a port, which the client would use for a URL without one: the
/// transport clears it, so the port that was checked is the port connected to.
#[tokio::test]
async fn the_port_checked_is_the_port_connected_to() {
    let receiver = Receiver::start().await;
    let names = Arc::new(
        Names::default()
            .with("port.test", &["127.0.0.1"])
            .port(receiver.port()),
    );
    // Port 80 of 127.0.0.1 is allowed; the resolver answers with the receiver's port.
    let transport = HttpTransport::builder()
        .allow_socket_addr("127.0.0.1:80".parse().unwrap())
        .dns_resolver(names.clone())
        .build()
        .unwrap();
    let _ = send(&transport, "http://port.test/hook").await;
    assert_eq!(names.lookups("port.test"), 1);
    assert_eq!(receiver.accepted(), 0, "not sent to the resolver's port");
}

#[tokio::test]
async fn the_logged_host_is_the_host_connected_to() {
    let receiver = Receiver::start().await;
    let port = receiver.port();
    let names = Arc::new(Names::default().with("hooks.test", &["127.0.0.1"]));
    let transport = HttpTransport::builder()
        .allow_network("127.0.0.1/32".parse().unwrap())
        .dns_resolver(names)
        .build()
        .unwrap();
    // A backslash ends the host, as a slash does: the host is hooks.test, for the URL parser
    // that validates the endpoint, for its `Debug`, and for the client that connects.
    let secret = WebhookSecret::generate().unwrap();
    let endpoint = Endpoint::new(
        AccountId::new(),
        &format!("http://hooks.test:{port}\\@127.0.0.2/x"),
        vec![secret],
        Utc::now(),
    )
    .unwrap();
    assert_eq!(
        endpoint.url(),
        format!("http://hooks.test:{port}/@127.0.0.2/x")
    );
    let shown = format!("{endpoint:?}");
    assert!(
        shown.contains("\"http://hooks.test/[redacted]\""),
        "{shown}"
    );

    assert_reached(&transport, endpoint.url()).await;
    let heads = receiver.heads();
    assert_eq!(heads.len(), 1);
    let mut lines = heads[0].lines();
    assert_eq!(lines.next(), Some("POST /@127.0.0.2/x HTTP/1.1"));
    assert!(
        lines.any(|l| l.eq_ignore_ascii_case(&format!("host: hooks.test:{port}"))),
        "{}",
        heads[0]
    );
}

#[tokio::test]
async fn through_a_proxy_names_go_to_the_proxy_and_literals_are_still_checked() {
    // The receiver plays an HTTP proxy: it gets the absolute URL and answers 204.
    let proxy = Receiver::start().await;
    let transport = HttpTransport::builder()
        .proxy(format!("http://{}", proxy.addr).parse().unwrap())
        // Knows no name: the proxy resolves them.
        .dns_resolver(Arc::new(Names::default()))
        .build()
        .unwrap();
    assert!(transport.is_proxied());
    assert_reached(&transport, "http://hooks.example.com/x").await;
    assert_eq!(
        proxy.heads()[0].lines().next(),
        Some("POST http://hooks.example.com/x HTTP/1.1")
    );
    assert_blocked(&transport, "http://10.0.0.1/x").await;
    assert_blocked(&transport, &format!("http://{}/x", proxy.addr)).await;
    assert_eq!(proxy.accepted(), 1);
}

#[tokio::test]
async fn invalid_request_urls_fail_without_the_url() {
    let transport = HttpTransport::new().unwrap();
    for url in [
        "not a url s3cr3t",
        "ftp://example.com/s3cr3t",
        "mailto:s3cr3t@example.com",
    ] {
        match send(&transport, url).await {
            Err(TransportError::Failed(source)) => {
                assert!(!format!("{source} {source:?}").contains("s3cr3t"), "{url}");
            }
            other => panic!("{url}: expected a failure, got {other:?}"),
        }
    }
}

/// The dispatcher records a blocked attempt like a connection failure, with the category in
/// its message and no address, and retries it on its schedule.
#[tokio::test]
async fn the_dispatcher_records_a_blocked_attempt() {
    let receiver = Receiver::start().await;
    let store = Arc::new(MemoryStore::new());
    let links = MagicLinks::new(
        store.clone(),
        Keyring::generate().unwrap(),
        "https://verify.example.com/l/".parse().unwrap(),
    );
    let account = links.create_account(AccountId::new()).await.unwrap().id;
    let url = format!("http://127.0.0.1:{}/hook", receiver.port());
    links
        .set_webhook_endpoint(account, &url, vec![WebhookSecret::generate().unwrap()])
        .await
        .unwrap();
    links
        .top_up(account, 1, IdempotencyKey::new("inv-1").unwrap())
        .await
        .unwrap();
    let event = links.events_after(account, 0, 1).await.unwrap()[0].id;

    let dispatcher = Dispatcher::new(store.clone(), HttpTransport::new().unwrap())
        .schedule(RetrySchedule::new(vec![Duration::from_secs(60)]));
    let report = dispatcher.run_once().await.unwrap();
    assert_eq!((report.attempted, report.delivered), (1, 0));
    let delivery = store.delivery(account, event).await.unwrap();
    let outcome = delivery.last_attempt.unwrap().outcome;
    assert_eq!(
        outcome,
        AttemptOutcome::Transport {
            failure: magic_link::webhooks::TransportFailure::Blocked
        },
        "stored as the category, not as text"
    );
    assert_eq!(receiver.accepted(), 0);
}
