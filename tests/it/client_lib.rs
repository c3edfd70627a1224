//! The Rust client against a real daemon: typed calls and the AWS error
//! name as an enum, retries that ride out an unreachable daemon, envelope
//! helpers for slices, and the data-key cache's limits, counted in the
//! daemon's own audit trail.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use kmsd::client::{
    BearerAuth, CacheLimits, Client, DataKeyCache, EnvelopeError, ErrorCode, RetryPolicy,
};
use kmsd::pb;

use crate::common::TestDaemon;

fn ctx(v: &str) -> HashMap<String, String> {
    HashMap::from([("purpose".to_owned(), v.to_owned())])
}

async fn admin_client(d: &TestDaemon) -> Client {
    let auth = BearerAuth::new(&d.admin.access_key_id, &d.admin.secret, None).unwrap();
    Client::connect(&d.endpoint, auth).await.unwrap()
}

/// How many events of `operation` on `key_arn` the audit trail holds.
async fn audited(client: &Client, operation: &str, key_arn: &str) -> usize {
    let mut audit = client.audit();
    let r = audit
        .lookup_events(pb::LookupEventsRequest {
            key_id: Some(key_arn.to_owned()),
            operation: Some(operation.to_owned()),
            limit: Some(1000),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    r.events.len()
}

#[tokio::test]
async fn typed_calls_and_error_codes() {
    let d = TestDaemon::start().await;
    let c = admin_client(&d).await;
    let key = c.create_key("client lib").await.unwrap();
    assert_eq!(c.describe_key(&key.key_id).await.unwrap().arn, key.arn);

    let blob = c.encrypt(&key.key_id, b"hello", &ctx("a")).await.unwrap();
    let got = c.decrypt(&blob, &ctx("a")).await.unwrap();
    assert_eq!(got.plaintext.expose_secret(), b"hello");
    assert_eq!(got.key_id, key.arn);
    // The secret types never print their contents.
    assert!(!format!("{got:?}").contains("hello"));

    let e = c.decrypt(&blob, &ctx("b")).await.unwrap_err();
    assert_eq!(e.code, ErrorCode::InvalidCiphertext);
    assert_eq!(e.code.name(), "InvalidCiphertextException");
    let e = c
        .describe_key("00000000-0000-4000-8000-000000000000")
        .await
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::NotFound);
    assert!(!e.code.is_retryable());

    let dk = c.generate_data_key(&key.key_id, &ctx("a")).await.unwrap();
    assert_eq!(dk.plaintext.len(), 32);
    let unwrapped = c.decrypt(&dk.ciphertext_blob, &ctx("a")).await.unwrap();
    assert_eq!(
        unwrapped.plaintext.expose_secret(),
        dk.plaintext.expose_secret()
    );

    let key2 = c.create_key("destination").await.unwrap();
    let moved = c
        .re_encrypt(&blob, &ctx("a"), &key2.key_id, &ctx("c"))
        .await
        .unwrap();
    let got = c.decrypt(&moved, &ctx("c")).await.unwrap();
    assert_eq!(
        (got.key_id.as_str(), got.plaintext.expose_secret()),
        (key2.arn.as_str(), &b"hello"[..])
    );
    assert_eq!(c.generate_random(24).await.unwrap().len(), 24);
    assert_eq!(
        c.caller_identity().await.unwrap().account,
        d.admin.account_id
    );

    // Any other RPC through `call`, with the same retries.
    let aliases = c
        .call(|mut kms| async move { kms.list_aliases(pb::ListAliasesRequest::default()).await })
        .await
        .unwrap();
    assert!(aliases.aliases.is_empty());

    // Wrong credentials: the enum says so.
    let bad = BearerAuth::new(&d.admin.access_key_id, "not-the-secret", None).unwrap();
    let bad = Client::connect(&d.endpoint, bad).await.unwrap();
    let e = bad.describe_key(&key.key_id).await.unwrap_err();
    assert_eq!(e.code, ErrorCode::UnrecognizedClient);
}

/// A TCP front for the daemon that, while `down`, drops every connection
/// at once (the client sees UNAVAILABLE) and afterwards forwards them.
async fn flaky_front(target: std::net::SocketAddr, down: Arc<AtomicBool>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut inbound, _)) = listener.accept().await else {
                return;
            };
            if down.load(Ordering::SeqCst) {
                drop(inbound);
                continue;
            }
            tokio::spawn(async move {
                if let Ok(mut outbound) = tokio::net::TcpStream::connect(target).await {
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                }
            });
        }
    });
    format!("http://{addr}")
}

#[tokio::test]
async fn retries_ride_out_an_unreachable_daemon() {
    let d = TestDaemon::start().await;
    let key = admin_client(&d).await.create_key("retry").await.unwrap();
    let down = Arc::new(AtomicBool::new(true));
    let endpoint = flaky_front(d.addr, down.clone()).await;
    let auth = BearerAuth::new(&d.admin.access_key_id, &d.admin.secret, None).unwrap();

    // Without retries, the first refusal is the answer.
    let once = Client::connect_lazy(&endpoint, auth.clone())
        .unwrap()
        .with_retry(RetryPolicy::none());
    let e = once.describe_key(&key.key_id).await.unwrap_err();
    assert!(e.code.is_retryable(), "{e}");
    assert!(
        matches!(
            e.code,
            ErrorCode::Transport(tonic::Code::Unavailable | tonic::Code::Cancelled)
        ),
        "{e}"
    );

    // With retries, a call made while the daemon is unreachable succeeds
    // once it is back. The front comes back after the first refusal.
    let patient = Client::connect_lazy(&endpoint, auth)
        .unwrap()
        .with_retry(RetryPolicy {
            max_attempts: 50,
            base_delay: Duration::from_millis(20),
            max_delay: Duration::from_millis(100),
        });
    let flip = tokio::spawn({
        let down = down.clone();
        async move {
            tokio::time::sleep(Duration::from_millis(300)).await;
            down.store(false, Ordering::SeqCst);
        }
    });
    let m = patient.describe_key(&key.key_id).await.unwrap();
    assert_eq!(m.arn, key.arn);
    flip.await.unwrap();
}

#[tokio::test]
async fn envelopes_of_slices_round_trip_and_check_the_context() {
    let d = TestDaemon::start().await;
    let c = admin_client(&d).await;
    let key = c.create_key("envelopes").await.unwrap();
    let env = c.envelope().with_segment_size(1024);
    for len in [0usize, 1, 1023, 1024, 1025, 5000] {
        let pt: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
        let sealed = env.encrypt(&key.key_id, ctx("x"), &pt).await.unwrap();
        let opened = env.decrypt(&ctx("x"), &sealed).await.unwrap();
        assert_eq!(&opened[..], &pt[..], "length {len}");
        // Asking for a context the envelope does not carry is refused
        // before KMS is asked.
        let r = env.decrypt(&ctx("y"), &sealed).await;
        assert!(matches!(r, Err(EnvelopeError::ContextMismatch(_))));
    }
}

#[tokio::test]
async fn the_cache_shares_data_keys_within_its_limits() {
    let d = TestDaemon::start().await;
    let c = admin_client(&d).await;
    let key = c.create_key("cached").await.unwrap();
    let cache = Arc::new(
        DataKeyCache::new(CacheLimits {
            max_age: Duration::from_secs(600),
            max_messages: 10,
            max_bytes: 1 << 20,
            capacity: 10,
        })
        .unwrap(),
    );
    let env = c.envelope().with_cache(cache.clone());

    // 25 messages, at most 10 per data key: 3 GenerateDataKey calls.
    let mut sealed = Vec::new();
    for i in 0..25u8 {
        sealed.push(
            env.encrypt(&key.key_id, ctx("batch"), &[i; 100])
                .await
                .unwrap(),
        );
    }
    assert_eq!(audited(&c, "GenerateDataKey", &key.arn).await, 3);
    // Messages under one data key still differ (fresh nonce prefix each).
    assert_ne!(sealed[0], sealed[1]);
    // The same plaintext twice under one shared data key still gives two
    // different messages, whose headers carry the same wrapped key.
    let x1 = env
        .encrypt(&key.key_id, ctx("batch"), b"same")
        .await
        .unwrap();
    let x2 = env
        .encrypt(&key.key_id, ctx("batch"), b"same")
        .await
        .unwrap();
    assert_ne!(x1, x2);
    let h1 = kmsd::envelope::Header::read(&mut &x1[..]).await.unwrap().0;
    let h2 = kmsd::envelope::Header::read(&mut &x2[..]).await.unwrap().0;
    assert_eq!(h1.wrapped_key, h2.wrapped_key);

    // A reader with its own cache: one Decrypt per distinct data key.
    let reader_cache = Arc::new(DataKeyCache::new(CacheLimits::default()).unwrap());
    let reader = c.envelope().with_cache(reader_cache.clone());
    for (i, s) in sealed.iter().enumerate() {
        let pt = reader.decrypt(&ctx("batch"), s).await.unwrap();
        assert_eq!(&pt[..], &[i as u8; 100][..]);
    }
    assert_eq!(audited(&c, "Decrypt", &key.arn).await, 3);
    assert_eq!(reader_cache.stats(), (22, 3));

    // Another context never shares a data key.
    env.encrypt(&key.key_id, ctx("other"), b"x").await.unwrap();
    assert_eq!(audited(&c, "GenerateDataKey", &key.arn).await, 4);

    // The byte limit: a message bigger than max_bytes is never cached.
    let big = vec![0u8; (1 << 20) + 1];
    let held = cache.len();
    env.encrypt(&key.key_id, ctx("big"), &big).await.unwrap();
    env.encrypt(&key.key_id, ctx("big"), &big).await.unwrap();
    assert_eq!(cache.len(), held, "an oversized message takes no entry");
    assert_eq!(audited(&c, "GenerateDataKey", &key.arn).await, 6);

    // Without a cache, each message costs a call.
    let plain = c.envelope();
    plain
        .encrypt(&key.key_id, ctx("batch"), b"1")
        .await
        .unwrap();
    plain
        .encrypt(&key.key_id, ctx("batch"), b"2")
        .await
        .unwrap();
    assert_eq!(audited(&c, "GenerateDataKey", &key.arn).await, 8);
}
