//! Real HTTP: the dispatcher sends through `HttpTransport` to a receiver on 127.0.0.1 that
//! verifies every signature. 127.0.0.1 is not a global address: each transport here allows
//! its receiver explicitly (`tests/ssrf.rs` shows that the default refuses it).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use magic_link::store::{MemoryStore, WebhookStore};
use magic_link::tokens::Keyring;
use magic_link::webhooks::{
    DeliveryStatus, Dispatcher, HttpTransport, WebhookHeaders, WebhookPayload, WebhookSecret,
    WebhookVerifier,
};
use magic_link::{AccountId, Flow, IdempotencyKey, MagicLinks, NewLink, Outcome};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// What the receiver saw: the webhook id, the event type, and whether it verified.
type Seen = Arc<Mutex<Vec<(String, String, bool)>>>;

/// Reads one HTTP/1.1 request: its lower-case headers and its body.
async fn read_request(stream: &mut TcpStream) -> Option<(Vec<(String, Vec<u8>)>, Vec<u8>)> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 || buf.len() > 64 * 1024 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8(buf[..head_end].to_vec()).ok()?;
    let mut lines = head.split("\r\n");
    let request_line = lines.next()?;
    assert!(
        request_line.starts_with("POST /hook/t0k3n "),
        "{request_line}"
    );
    let headers: Vec<(String, Vec<u8>)> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().as_bytes().to_vec()))
        .collect();
    let length: usize = headers
        .iter()
        .find(|(n, _)| n == "content-length")
        .and_then(|(_, v)| std::str::from_utf8(v).ok()?.parse().ok())?;
    let mut body = buf[head_end + 4..].to_vec();
    while body.len() < length {
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    Some((headers, body))
}

/// Serves `expected` requests, verifying each; answers 503 to the first, then 204 (or 401
/// when the signature does not verify).
async fn receive(listener: TcpListener, verifier: WebhookVerifier, seen: Seen, expected: usize) {
    let mut served = 0;
    while served < expected {
        let (mut stream, _) = listener.accept().await.unwrap();
        let Some((headers, body)) = read_request(&mut stream).await else {
            continue;
        };
        let get = |name: &str| {
            headers
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.as_slice())
        };
        assert_eq!(get("content-type"), Some(&b"application/json"[..]));
        let verified = verifier.verify(WebhookHeaders::from_fn(get), &body).is_ok();
        let kind = serde_json::from_slice::<WebhookPayload>(&body)
            .map(|p| p.kind)
            .unwrap_or_default();
        let id = String::from_utf8_lossy(get("webhook-id").unwrap_or_default()).into_owned();
        seen.lock().unwrap().push((id, kind, verified));
        let status = match (verified, served) {
            (false, _) => "401 Unauthorized",
            (true, 0) => "503 Service Unavailable\r\nretry-after: 0",
            (true, _) => "204 No Content",
        };
        let response =
            format!("HTTP/1.1 {status}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
        stream.write_all(response.as_bytes()).await.unwrap();
        let _ = stream.shutdown().await;
        served += 1;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delivers_over_http_to_a_verifying_receiver() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();

    // The system clock: the receiver checks timestamps against its own clock.
    let store = Arc::new(MemoryStore::new());
    let links = MagicLinks::new(
        store.clone(),
        Keyring::generate().unwrap(),
        "https://verify.example.com/l/".parse().unwrap(),
    );
    let account = links.create_account(AccountId::new()).await.unwrap().id;
    let old = WebhookSecret::generate().unwrap();
    let new = WebhookSecret::generate().unwrap();
    let url = format!("http://{address}/hook/t0k3n");
    links
        .set_webhook_endpoint(account, &url, vec![new.clone(), old])
        .await
        .unwrap();

    links
        .top_up(account, 1, IdempotencyKey::new("inv").unwrap())
        .await
        .unwrap();
    let link = links
        .create_link(
            account,
            // Two uses, so the one redemption does not also write link.exhausted.
            NewLink::new("Invite", Flow::Document).limit(magic_link::UsageLimit::multi(2).unwrap()),
        )
        .await
        .unwrap();
    let session = links
        .redeem(&link.token, magic_link::start::Start::new())
        .await
        .unwrap()
        .session;
    links
        .complete_session(account, session.id, Outcome::Denied)
        .await
        .unwrap();
    let events = links.events_after(account, 0, 10).await.unwrap();
    assert_eq!(events.len(), 4);

    // The receiver has already rotated to the new secret. The first request gets a 503 with
    // `Retry-After: 0`, so 5 requests in all.
    let seen = Seen::default();
    let receiver = tokio::spawn(receive(
        listener,
        WebhookVerifier::new(new),
        seen.clone(),
        5,
    ));

    let transport = HttpTransport::builder()
        .allow_socket_addr(address)
        .build()
        .unwrap();
    let dispatcher = Dispatcher::new(store.clone(), transport)
        .timeout(Duration::from_secs(5))
        .schedule(magic_link::webhooks::RetrySchedule::new(vec![
            Duration::ZERO,
        ]));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let mut delivered = 0;
    while delivered < 4 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "delivery took too long"
        );
        let report = dispatcher.run_once().await.unwrap();
        delivered += report.delivered;
        if report.attempted == 0 {
            tokio::task::yield_now().await;
        }
    }
    tokio::time::timeout(Duration::from_secs(10), receiver)
        .await
        .expect("the receiver finishes")
        .unwrap();

    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 5);
    assert!(seen.iter().all(|(_, _, verified)| *verified), "{seen:?}");
    let first = &seen[0].0;
    assert_eq!(
        seen.iter().filter(|(id, _, _)| id == first).count(),
        2,
        "the 503 was retried with the same webhook-id"
    );
    let mut kinds: Vec<&str> = seen[1..].iter().map(|(_, k, _)| k.as_str()).collect();
    kinds.sort_unstable();
    assert_eq!(
        kinds,
        [
            "credits.added",
            "link.created",
            "link.redeemed",
            "session.completed"
        ]
    );
    for event in &events {
        assert!(matches!(
            store
                .delivery(event.account, event.id)
                .await
                .unwrap()
                .status,
            DeliveryStatus::Delivered { .. }
        ));
    }
}

#[tokio::test]
async fn connection_failures_and_timeouts_are_transport_errors() {
    use magic_link::webhooks::{Transport, TransportError, WebhookRequest};

    // A port with no listener: bind, note the address, close.
    let address = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap();
    let transport = HttpTransport::builder()
        .allow_network("127.0.0.1/32".parse().unwrap())
        .build()
        .unwrap();
    let request = |url: String, timeout| {
        WebhookRequest::new(
            url,
            "id".into(),
            "1".into(),
            "v1,x".into(),
            b"{}".to_vec(),
            timeout,
        )
    };
    let refused = transport
        .send(request(
            format!("http://{address}/s3cr3t"),
            Duration::from_secs(5),
        ))
        .await
        .unwrap_err();
    let TransportError::Failed(source) = refused else {
        panic!("expected a failure, got {refused:?}");
    };
    assert!(
        !format!("{source} {source:?}").contains("s3cr3t"),
        "no URL in the error"
    );

    // A listener that accepts and never answers.
    let silent = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = silent.local_addr().unwrap();
    let hold = tokio::spawn(async move {
        let (stream, _) = silent.accept().await.unwrap();
        tokio::time::sleep(Duration::from_secs(5)).await;
        drop(stream);
    });
    let timed_out = transport
        .send(request(
            format!("http://{address}/"),
            Duration::from_millis(200),
        ))
        .await
        .unwrap_err();
    assert!(
        matches!(timed_out, TransportError::Timeout),
        "{timed_out:?}"
    );
    hold.abort();
}
