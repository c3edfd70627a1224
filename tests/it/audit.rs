//! The audit trail and key configuration history (issue 5): the hash chain
//! and its tamper cases, LookupEvents' filters, paging and account
//! isolation, what an event records, the no-secrets search of the database
//! and the daemon's log, denied and unauthenticated calls, `kill -9` under
//! load, an unwritable trail, key configuration versions, attempts to use a
//! key pending deletion, and retention.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::time::Duration;

use base64::Engine as _;
use kmsd::client::{self, BearerAuth, IdentityClient, KmsClient};
use kmsd::pb;
use rusqlite::params;
use serde_json::{Value, json};
use tonic::{Code, Status};

use crate::audit_util::*;
use crate::authz_util::*;
use crate::common::{Creds, TestDaemon, assert_err, contains, error_name, read_all_files};
use crate::util::*;

const MINUTE: Duration = Duration::from_secs(60);

/// An answer and the request id the daemon put on it.
type Answer<T> = (Result<T, Status>, String);

fn answered<T>(r: Result<tonic::Response<T>, Status>) -> Answer<T> {
    let id = request_id(&r);
    (r.map(tonic::Response::into_inner), id)
}

fn enc_req(
    key_id: &str,
    plaintext: &[u8],
    context: &HashMap<String, String>,
) -> pb::EncryptRequest {
    pb::EncryptRequest {
        key_id: key_id.to_owned(),
        plaintext: plaintext.to_vec(),
        encryption_context: context.clone(),
        ..Default::default()
    }
}

fn dec_req(blob: &[u8], context: &HashMap<String, String>) -> pb::DecryptRequest {
    pb::DecryptRequest {
        ciphertext_blob: blob.to_vec(),
        encryption_context: context.clone(),
        ..Default::default()
    }
}

fn describe_req(key_id: &str) -> pb::DescribeKeyRequest {
    pb::DescribeKeyRequest {
        key_id: key_id.to_owned(),
        ..Default::default()
    }
}

fn ids(events: &[pb::AuditEvent]) -> Vec<String> {
    events.iter().map(|e| e.request_id.clone()).collect()
}

fn seqs(events: &[pb::AuditEvent]) -> Vec<u64> {
    events.iter().map(|e| e.sequence).collect()
}

fn reversed(v: &[String]) -> Vec<String> {
    v.iter().rev().cloned().collect()
}

#[track_caller]
fn assert_newest_first(events: &[pb::AuditEvent]) {
    let s = seqs(events);
    assert!(
        s.windows(2).all(|w| w[0] > w[1]),
        "events are newest first, without repeats: {s:?}"
    );
}

/// Credentials nobody issued.
fn stranger(id: &str, secret: &str) -> Creds {
    Creds {
        account_id: String::new(),
        access_key_id: id.to_owned(),
        secret: secret.to_owned(),
    }
}

async fn kms_at(endpoint: &str, c: &Creds) -> KmsClient {
    let auth = BearerAuth::new(&c.access_key_id, &c.secret, None).unwrap();
    client::clients(client::connect(endpoint).await.unwrap(), auth).0
}

async fn iam_at(endpoint: &str, c: &Creds) -> IdentityClient {
    let auth = BearerAuth::new(&c.access_key_id, &c.secret, None).unwrap();
    client::clients(client::connect(endpoint).await.unwrap(), auth).1
}

async fn history(
    a: &mut AuditClient,
    key_id: &str,
    as_of: Option<i64>,
) -> Result<pb::GetKeyConfigurationHistoryResponse, Status> {
    a.get_key_configuration_history(pb::GetKeyConfigurationHistoryRequest {
        key_id: key_id.to_owned(),
        as_of: as_of.map(at_ms),
        ..Default::default()
    })
    .await
    .map(tonic::Response::into_inner)
}

/// Every version of a key's history, walking the pages.
async fn all_history(a: &mut AuditClient, key_id: &str) -> Vec<pb::KeyConfiguration> {
    let mut all = Vec::new();
    let mut marker = None;
    loop {
        let page = history_page(a, key_id, None, marker.take()).await.unwrap();
        all.extend(page.versions);
        match page.next_marker {
            Some(m) => marker = Some(m),
            None => return all,
        }
    }
}

/// One page of a key's history.
async fn history_page(
    a: &mut AuditClient,
    key_id: &str,
    limit: Option<i32>,
    marker: Option<String>,
) -> Result<pb::GetKeyConfigurationHistoryResponse, Status> {
    a.get_key_configuration_history(pb::GetKeyConfigurationHistoryRequest {
        key_id: key_id.to_owned(),
        limit,
        marker,
        ..Default::default()
    })
    .await
    .map(tonic::Response::into_inner)
}

/// A key's history pages by count and by size. Every change stores the
/// whole configuration (its policy and every grant included), so the
/// history of a key with a few hundred grants passed gRPC's 4 MiB message
/// limit in one answer and could not be read at all; pages hold at most
/// `limit` versions and stop before 1 MiB, and walking them gives every
/// version once, in order.
#[tokio::test]
async fn key_history_pages_by_count_and_size() {
    let d = TestDaemon::start().await;
    let mut kms = d.admin_kms().await;
    let mut a = audit(&d, &d.admin).await;
    let key = create_key(&mut kms).await;
    // A 30 KB description would be refused; a 30 KB policy is not.
    let big = format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Sid":"{}","Effect":"Allow","Principal":{{"AWS":"arn:aws:iam::{}:root"}},"Action":"kms:*","Resource":"*"}}]}}"#,
        "s".repeat(30_000),
        d.admin.account_id
    );
    kms.put_key_policy(pb::PutKeyPolicyRequest {
        key_id: key.key_id.clone(),
        policy_name: Some("default".into()),
        policy: big,
        bypass_policy_lockout_safety_check: false,
    })
    .await
    .unwrap();
    for i in 0..60 {
        kms.update_key_description(pb::UpdateKeyDescriptionRequest {
            key_id: key.key_id.clone(),
            description: format!("change {i}"),
        })
        .await
        .unwrap();
    }
    // 62 versions of about 30 KB each: about 1.9 MB in all.
    let mut seen = Vec::new();
    let mut sizes = Vec::new();
    let mut marker = None;
    loop {
        let page = history_page(&mut a, &key.key_id, Some(1000), marker.take())
            .await
            .unwrap();
        let bytes: usize = page.versions.iter().map(|v| v.configuration.len()).sum();
        assert!(bytes <= 1024 * 1024 + 40_000, "a page of {bytes} bytes");
        sizes.push(page.versions.len());
        seen.extend(page.versions.iter().map(|v| v.version));
        assert_eq!(page.truncated, page.next_marker.is_some());
        match page.next_marker {
            Some(m) => marker = Some(m),
            None => break,
        }
    }
    assert!(sizes.len() >= 2, "split by size: {sizes:?}");
    assert_eq!(seen, (1..=62).collect::<Vec<u64>>());

    // By count.
    let first = history_page(&mut a, &key.key_id, Some(25), None)
        .await
        .unwrap();
    assert_eq!(first.versions.len(), 25);
    assert!(first.truncated);
    let second = history_page(&mut a, &key.key_id, Some(25), first.next_marker)
        .await
        .unwrap();
    assert_eq!(second.versions.first().map(|v| v.version), Some(26));

    // Bad limits and markers.
    for limit in [0, 1001] {
        assert_err(
            history_page(&mut a, &key.key_id, Some(limit), None).await,
            Code::InvalidArgument,
            "ValidationException",
        );
    }
    assert_err(
        history_page(&mut a, &key.key_id, None, Some("not a marker!".into())).await,
        Code::InvalidArgument,
        "InvalidMarkerException",
    );
}

fn config(v: &pb::KeyConfiguration) -> Value {
    serde_json::from_str(&v.configuration).expect("a configuration is JSON")
}

// ------------------------------------------------------------ the chain

/// Calls of every kind and outcome, by several principals.
async fn mixed_workload(d: &TestDaemon) {
    let mut kms = d.admin_kms().await;
    let key = create_key(&mut kms).await;
    let c = ctx(&[("dept", "audit")]);
    let blob = encrypt(&mut kms, &key.key_id, b"chain", &c)
        .await
        .unwrap()
        .ciphertext_blob;
    decrypt(&mut kms, &blob, &c).await.unwrap();
    generate_data_key(&mut kms, &key.arn, Some(pb::DataKeySpec::Aes256), None)
        .await
        .unwrap();
    describe(&mut kms, "alias/none").await.unwrap_err();
    disable(&mut kms, &key.key_id).await;
    encrypt(&mut kms, &key.key_id, b"off", &c)
        .await
        .unwrap_err();
    enable(&mut kms, &key.key_id).await;
    let bob = new_user(d, &d.root, "bob").await;
    encrypt(&mut d.kms_client(&bob).await, &key.arn, b"x", &c)
        .await
        .unwrap_err();
    caller_arn(
        &mut d
            .identity_client(&stranger("AKIAUNKNOWN000000001", "nope"))
            .await,
    )
    .await
    .unwrap_err();
    caller_arn(&mut d.identity_client(&d.admin).await)
        .await
        .unwrap();
    lookup_all(&mut audit(d, &d.admin).await, Default::default()).await;
}

#[derive(Debug, Clone, Copy)]
enum Tamper {
    /// Change one event's body.
    EditBody(i64),
    /// Change one event's body and recompute its own hash.
    EditBodyAndRehash(i64),
    /// Change one event's body and recompute every hash from it on.
    RewriteTail(i64),
    /// Change a searchable column only.
    EditPrincipalColumn(i64),
    /// Turn a denial into an allowed call in the searchable column.
    HideDenial(i64),
    /// Remove an event.
    Delete(i64),
    /// Remove the newest event.
    DeleteLast,
    /// Exchange two whole events (everything but their positions).
    SwapRows(i64, i64),
    /// Exchange two events' bodies and hashes (and searchable columns).
    SwapBodies(i64, i64),
}

fn put_row(db: &rusqlite::Connection, seq: i64, e: &StoredEvent, keep_prev: bool) {
    let prev = if keep_prev {
        None
    } else {
        Some(e.prev_hash.clone())
    };
    let n = db
        .execute(
            "UPDATE audit_events SET time_ms = ?2, account_id = ?3, principal_arn = ?4, operation = ?5, \
             outcome = ?6, key_arns = ?7, body = ?8, prev_hash = coalesce(?9, prev_hash), hash = ?10 WHERE seq = ?1",
            params![
                seq,
                e.time_ms,
                e.account_id,
                e.principal_arn,
                e.operation,
                e.outcome,
                e.key_arns,
                e.body,
                prev,
                e.hash
            ],
        )
        .unwrap();
    assert_eq!(n, 1);
}

fn edited(body: &str) -> String {
    let b = body.replace(
        "\"sourceIPAddress\":\"127.0.0.1\"",
        "\"sourceIPAddress\":\"10.9.8.7\"",
    );
    assert_ne!(b, body, "the body names the source address");
    b
}

fn tamper(db: &rusqlite::Connection, how: Tamper) {
    let rows = stored_events(db);
    let row = |seq: i64| rows.iter().find(|r| r.seq == seq).unwrap().clone();
    match how {
        Tamper::EditBody(s) => {
            let n = db
                .execute(
                    "UPDATE audit_events SET body = ?2 WHERE seq = ?1",
                    params![s, edited(&row(s).body)],
                )
                .unwrap();
            assert_eq!(n, 1);
        }
        Tamper::EditBodyAndRehash(s) => {
            let r = row(s);
            let body = edited(&r.body);
            db.execute(
                "UPDATE audit_events SET body = ?2, hash = ?3 WHERE seq = ?1",
                params![s, body, chain_hash(&r.prev_hash, &body)],
            )
            .unwrap();
        }
        Tamper::RewriteTail(s) => {
            let mut prev = row(s).prev_hash;
            for r in rows.iter().filter(|r| r.seq >= s) {
                let body = if r.seq == s {
                    edited(&r.body)
                } else {
                    r.body.clone()
                };
                let hash = chain_hash(&prev, &body);
                db.execute(
                    "UPDATE audit_events SET body = ?2, prev_hash = ?3, hash = ?4 WHERE seq = ?1",
                    params![r.seq, body, prev, hash],
                )
                .unwrap();
                prev = hash;
            }
        }
        Tamper::EditPrincipalColumn(s) => {
            let n = db
                .execute(
                    "UPDATE audit_events SET principal_arn = 'arn:aws:iam::123456789012:user/someone-else' WHERE seq = ?1",
                    [s],
                )
                .unwrap();
            assert_eq!(n, 1);
        }
        Tamper::HideDenial(s) => {
            assert_eq!(row(s).outcome, "denied");
            db.execute(
                "UPDATE audit_events SET outcome = 'allowed' WHERE seq = ?1",
                [s],
            )
            .unwrap();
        }
        Tamper::Delete(s) => {
            let n = db
                .execute("DELETE FROM audit_events WHERE seq = ?1", [s])
                .unwrap();
            assert_eq!(n, 1);
        }
        Tamper::DeleteLast => {
            let last = rows.last().unwrap().seq;
            db.execute("DELETE FROM audit_events WHERE seq = ?1", [last])
                .unwrap();
        }
        Tamper::SwapRows(a, b) => {
            let (ra, rb) = (row(a), row(b));
            put_row(db, a, &rb, false);
            put_row(db, b, &ra, false);
        }
        Tamper::SwapBodies(a, b) => {
            let (ra, rb) = (row(a), row(b));
            put_row(db, a, &rb, true);
            put_row(db, b, &ra, true);
        }
    }
}

/// Issue 5: after a mixed workload the chain verifies, every link checked;
/// the chain is what the issue says it is (SHA-256 over the previous hash
/// and the canonical JSON, from 32 zero bytes); and each way of editing,
/// removing or reordering rows in SQLite, with the daemon stopped, is
/// found at the right event.
#[tokio::test]
async fn the_chain_verifies_and_each_tampering_is_found_at_its_event() {
    let d = TestDaemon::start().await;
    mixed_workload(&d).await;

    let db = open_db(&d.file("kmsd.db"));
    let rows = stored_events(&db);
    assert!(rows.len() >= 12, "{} events", rows.len());
    let mut prev = vec![0u8; 32];
    for (i, r) in rows.iter().enumerate() {
        assert_eq!(r.seq, i as i64 + 1, "sequences run from 1 without gaps");
        assert_eq!(r.prev_hash, prev, "event {} links to the one before", r.seq);
        assert_eq!(r.hash, chain_hash(&r.prev_hash, &r.body), "event {}", r.seq);
        let v: Value = serde_json::from_str(&r.body).unwrap();
        assert_eq!(v.to_string(), r.body, "the body is canonical JSON");
        assert_eq!(v["eventName"], r.operation.as_str());
        assert_eq!(v["outcome"], r.outcome.as_str());
        assert_eq!(v["userIdentity"]["arn"], r.principal_arn.as_str());
        assert_eq!(v["userIdentity"]["accountId"], r.account_id.as_str());
        prev.clone_from(&r.hash);
    }
    let outcomes: BTreeSet<&str> = rows.iter().map(|r| r.outcome.as_str()).collect();
    assert_eq!(
        outcomes,
        BTreeSet::from(["allowed", "denied", "failed"]),
        "the workload has every outcome"
    );

    let mut a = audit(&d, &d.admin).await;
    let report = verify(&mut a).await;
    let last = rows.last().unwrap();
    assert!(report.valid, "{report:?}");
    assert_eq!(
        report.events_checked,
        rows.len() as u64,
        "every event is checked"
    );
    assert_eq!(report.first_broken_sequence, None);
    assert_eq!(report.head_sequence, last.seq as u64);
    assert_eq!(report.head_hash, hex(&last.hash));
    assert_eq!(report.pruned_before, 0);
    assert_eq!(
        stored_events(&db).last().unwrap().operation,
        "VerifyTrail",
        "VerifyTrail is itself recorded, after it walked the chain"
    );

    // Edited while the daemon runs: found; put back: valid again.
    let m = rows.len() as i64 / 2;
    let original = rows[m as usize - 1].body.clone();
    tamper(&db, Tamper::EditBody(m));
    let broken = verify(&mut a).await;
    assert!(!broken.valid);
    assert_eq!(broken.first_broken_sequence, Some(m as u64), "{broken:?}");
    db.execute(
        "UPDATE audit_events SET body = ?2 WHERE seq = ?1",
        params![m, original],
    )
    .unwrap();
    assert!(verify(&mut a).await.valid, "restored");

    // No call after this: the stored head is the head.
    let stored = stored_events(&db);
    let (n, head) = (stored.len() as u64, stored.last().unwrap().clone());
    let denied = rows
        .iter()
        .find(|r| r.outcome == "denied" && r.principal_arn.ends_with(":user/bob"))
        .expect("bob's denial")
        .seq;
    drop(db);
    let (dir, _clock) = d.stop().await;
    let data = dir.path().join("data");

    // Each case on a fresh copy of the stopped daemon's files.
    let cases: Vec<(Tamper, Option<i64>)> = vec![
        (Tamper::EditBody(m), Some(m)),
        (Tamper::EditBodyAndRehash(m), Some(m + 1)),
        (Tamper::EditPrincipalColumn(m), Some(m)),
        (Tamper::HideDenial(denied), Some(denied)),
        (Tamper::Delete(m), Some(m + 1)),
        (Tamper::Delete(1), Some(2)),
        (Tamper::SwapRows(m, m + 1), Some(m)),
        (Tamper::SwapBodies(m, m + 1), Some(m)),
        (Tamper::RewriteTail(m), None),
        (Tamper::DeleteLast, None),
    ];
    let scratch = tempfile::tempdir().unwrap();
    // The copy itself verifies.
    let control = scratch.path().join("control");
    copy_data_dir(&data, &control);
    let r = Reopened::start(&control).await;
    let report = r.verify().await;
    r.stop().await;
    assert!(report.valid, "an untouched copy verifies: {report:?}");
    assert_eq!(report.events_checked, n);
    assert_eq!(report.head_hash, hex(&head.hash));

    for (i, (how, expected)) in cases.into_iter().enumerate() {
        let copy = scratch.path().join(format!("case{i}"));
        copy_data_dir(&data, &copy);
        {
            let db = open_db(&copy.join("kmsd.db"));
            tamper(&db, how);
        }
        let r = Reopened::start(&copy).await;
        let report = r.verify().await;
        r.stop().await;
        match expected {
            Some(seq) => {
                assert!(!report.valid, "{how:?} is found: {report:?}");
                assert_eq!(
                    report.first_broken_sequence,
                    Some(seq as u64),
                    "{how:?} is found at event {seq}: {report:?}"
                );
                assert!(!report.problem.is_empty(), "{how:?}: {report:?}");
            }
            None => {
                // A rewritten or cut tail links up again; only the head,
                // recorded elsewhere, shows it.
                assert!(report.valid, "{how:?}: {report:?}");
                assert!(
                    report.head_sequence < head.seq as u64 || report.head_hash != hex(&head.hash),
                    "{how:?} changes the head: {report:?} vs {head:?}"
                );
            }
        }
    }
}

// ---------------------------------------------------------- LookupEvents

/// Issue 5: LookupEvents filters by time range, key (id or ARN),
/// principal, operation and outcome, newest first, in pages.
#[tokio::test]
async fn lookup_events_filters_and_pages_newest_first() {
    let d = TestDaemon::start().await;
    let acct = d.admin.account_id.clone();
    let admin_arn = user_arn(&acct, "admin");
    let mut kms = d.admin_kms().await;
    let k1 = create_key(&mut kms).await;
    let k2 = create_key(&mut kms).await;
    let bob = new_user(&d, &d.root, "bob").await;
    let mut bob_kms = d.kms_client(&bob).await;
    let c = ctx(&[("app", "filters")]);

    d.advance(MINUTE);
    let t1 = now_ms(&d);
    let mut p1 = Vec::new();
    let mut blob = Vec::new();
    for i in 0..3 {
        let (r, id) = answered(kms.encrypt(enc_req(&k1.key_id, &[i], &c)).await);
        blob = r.unwrap().ciphertext_blob;
        p1.push(id);
    }
    d.advance(MINUTE);
    let t2 = now_ms(&d);
    let mut p23 = Vec::new();
    let mut enc_k2 = Vec::new();
    for i in 0..2 {
        let (r, id) = answered(kms.encrypt(enc_req(&k2.arn, &[i], &c)).await);
        r.unwrap();
        enc_k2.push(id.clone());
        p23.push(id);
    }
    let (r, dec_id) = answered(kms.decrypt(dec_req(&blob, &c)).await);
    r.unwrap();
    p23.push(dec_id.clone());
    d.advance(MINUTE);
    let t3 = now_ms(&d);
    let (r, denied_id) = answered(bob_kms.encrypt(enc_req(&k1.key_id, b"b", &c)).await);
    assert_err(r, Code::PermissionDenied, "AccessDeniedException");
    p23.push(denied_id.clone());
    let (r, disable_id) = answered(
        kms.disable_key(pb::DisableKeyRequest {
            key_id: k2.key_id.clone(),
        })
        .await,
    );
    r.unwrap();
    p23.push(disable_id.clone());
    let (r, failed_id) = answered(kms.encrypt(enc_req(&k2.key_id, b"f", &c)).await);
    assert_err(r, Code::FailedPrecondition, "DisabledException");
    p23.push(failed_id.clone());
    d.advance(MINUTE);

    let mut a = audit(&d, &d.admin).await;
    // Time range: one instant, then two.
    let at_t1 = lookup_all(
        &mut a,
        pb::LookupEventsRequest {
            start_time: Some(at_ms(t1)),
            end_time: Some(at_ms(t1)),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(
        ids(&at_t1),
        reversed(&p1),
        "exactly the calls at t1, newest first"
    );
    for e in &at_t1 {
        assert_eq!(ts_ms(e.event_time.as_ref().unwrap()), t1);
        assert_eq!(e.operation, "Encrypt");
        assert_eq!(e.principal_arn, admin_arn);
        assert_eq!(e.key_arns, vec![k1.arn.clone()]);
    }
    let t2_to_t3 = lookup_all(
        &mut a,
        pb::LookupEventsRequest {
            start_time: Some(at_ms(t2)),
            end_time: Some(at_ms(t3)),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(ids(&t2_to_t3), reversed(&p23));
    let before_t1 = lookup_all(
        &mut a,
        pb::LookupEventsRequest {
            end_time: Some(at_ms(t1 - 1)),
            ..Default::default()
        },
    )
    .await;
    assert!(!before_t1.is_empty());
    for e in &before_t1 {
        assert!(ts_ms(e.event_time.as_ref().unwrap()) < t1);
        assert!(!p1.contains(&e.request_id) && !p23.contains(&e.request_id));
    }
    let from_t3 = lookup_all(
        &mut a,
        pb::LookupEventsRequest {
            start_time: Some(at_ms(t3)),
            operation: Some("Encrypt".into()),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(ids(&from_t3), vec![failed_id.clone(), denied_id.clone()]);

    // Key, by id and by ARN; with an operation; with an outcome.
    for k in [&k1.key_id, &k1.arn] {
        let by_key = lookup_all(
            &mut a,
            pb::LookupEventsRequest {
                key_id: Some(k.clone()),
                ..Default::default()
            },
        )
        .await;
        assert_newest_first(&by_key);
        for id in p1.iter().chain([&dec_id, &denied_id]) {
            assert!(ids(&by_key).contains(id), "{id} is found by key {k}");
        }
        for e in &by_key {
            assert!(e.key_arns.contains(&k1.arn), "{e:?}");
        }
        let encrypts = lookup_all(
            &mut a,
            pb::LookupEventsRequest {
                key_id: Some(k.clone()),
                operation: Some("Encrypt".into()),
                ..Default::default()
            },
        )
        .await;
        let mut want = p1.clone();
        want.push(denied_id.clone());
        assert_eq!(ids(&encrypts), reversed(&want));
    }
    let k2_failed = lookup_all(
        &mut a,
        pb::LookupEventsRequest {
            key_id: Some(k2.arn.clone()),
            outcome: Some(pb::Outcome::Failed as i32),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(ids(&k2_failed), vec![failed_id.clone()]);
    assert_eq!(k2_failed[0].error_code, "DisabledException");
    let k2_all = ids(&lookup_all(
        &mut a,
        pb::LookupEventsRequest {
            key_id: Some(k2.key_id.clone()),
            ..Default::default()
        },
    )
    .await);
    for id in enc_k2.iter().chain([&disable_id, &failed_id]) {
        assert!(k2_all.contains(id));
    }
    assert!(!k2_all.contains(&dec_id) && !k2_all.iter().any(|i| p1.contains(i)));

    // Principal.
    let by_bob = lookup_all(
        &mut a,
        pb::LookupEventsRequest {
            principal_arn: Some(user_arn(&acct, "bob")),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(ids(&by_bob), vec![denied_id.clone()]);
    let admin_encrypts = lookup_all(
        &mut a,
        pb::LookupEventsRequest {
            principal_arn: Some(admin_arn.clone()),
            operation: Some("Encrypt".into()),
            ..Default::default()
        },
    )
    .await;
    let mut want = p1.clone();
    want.extend(enc_k2.iter().cloned());
    want.push(failed_id.clone());
    assert_eq!(ids(&admin_encrypts), reversed(&want));

    // Outcome.
    let denied = lookup_all(
        &mut a,
        pb::LookupEventsRequest {
            outcome: Some(pb::Outcome::Denied as i32),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(ids(&denied), vec![denied_id.clone()]);
    assert_eq!(denied[0].error_code, "AccessDeniedException");
    let failed = lookup_all(
        &mut a,
        pb::LookupEventsRequest {
            outcome: Some(pb::Outcome::Failed as i32),
            ..Default::default()
        },
    )
    .await;
    assert!(ids(&failed).contains(&failed_id));
    for e in &failed {
        assert_eq!(e.outcome, pb::Outcome::Failed as i32);
        assert!(!e.error_code.is_empty());
    }
    let allowed = lookup_all(
        &mut a,
        pb::LookupEventsRequest {
            outcome: Some(pb::Outcome::Allowed as i32),
            ..Default::default()
        },
    )
    .await;
    for id in p1.iter().chain(&enc_k2).chain([&dec_id, &disable_id]) {
        assert!(ids(&allowed).contains(id));
    }
    for e in &allowed {
        assert_eq!(e.outcome, pb::Outcome::Allowed as i32);
        assert!(e.error_code.is_empty(), "{e:?}");
    }

    // Paging: two at a time gives the same events as one big page.
    let all_encrypts = lookup_all(
        &mut a,
        pb::LookupEventsRequest {
            operation: Some("Encrypt".into()),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(all_encrypts.len(), 7);
    let mut paged = Vec::new();
    let mut marker = None;
    loop {
        let page = a
            .lookup_events(pb::LookupEventsRequest {
                operation: Some("Encrypt".into()),
                limit: Some(2),
                marker: marker.take(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        assert!(page.events.len() <= 2);
        paged.extend(page.events);
        if paged.len() < 7 {
            assert!(page.truncated, "more to come after {}", paged.len());
            marker = Some(page.next_marker.expect("a marker while truncated"));
        } else {
            assert!(
                !page.truncated && page.next_marker.is_none(),
                "the last page"
            );
            break;
        }
    }
    assert_eq!(seqs(&paged), seqs(&all_encrypts));
    assert_newest_first(&paged);

    // The default page is 50.
    for _ in 0..55 {
        kms.describe_key(describe_req(&k1.key_id)).await.unwrap();
    }
    let first = a
        .lookup_events(pb::LookupEventsRequest {
            operation: Some("DescribeKey".into()),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(first.events.len(), 50);
    assert!(first.truncated);
    let rest = a
        .lookup_events(pb::LookupEventsRequest {
            operation: Some("DescribeKey".into()),
            marker: first.next_marker.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(rest.events.len(), 5);
    assert!(!rest.truncated);
    assert!(first.events.last().unwrap().sequence > rest.events[0].sequence);

    // Bad requests.
    for limit in [0, 1001, -1] {
        assert_err(
            a.lookup_events(pb::LookupEventsRequest {
                limit: Some(limit),
                ..Default::default()
            })
            .await,
            Code::InvalidArgument,
            "ValidationException",
        );
    }
    assert!(
        a.lookup_events(pb::LookupEventsRequest {
            limit: Some(1000),
            ..Default::default()
        })
        .await
        .is_ok()
    );
    let bad_marker = a
        .lookup_events(pb::LookupEventsRequest {
            marker: Some("not a marker!".into()),
            ..Default::default()
        })
        .await;
    assert_eq!(
        error_name(&bad_marker.unwrap_err()),
        "InvalidMarkerException"
    );
    // A range that ends before it starts is refused, not answered empty;
    // one instant (start = end) is a range.
    let t = now_ms(&d);
    assert_err(
        a.lookup_events(pb::LookupEventsRequest {
            start_time: Some(at_ms(t)),
            end_time: Some(at_ms(t - 1)),
            ..Default::default()
        })
        .await,
        Code::InvalidArgument,
        "ValidationException",
    );
    a.lookup_events(pb::LookupEventsRequest {
        start_time: Some(at_ms(t)),
        end_time: Some(at_ms(t)),
        ..Default::default()
    })
    .await
    .expect("start = end");
    assert_err(
        a.lookup_events(pb::LookupEventsRequest {
            outcome: Some(99),
            ..Default::default()
        })
        .await,
        Code::InvalidArgument,
        "ValidationException",
    );
}

/// Issue 5: a caller sees its own account's events; the operator all.
#[tokio::test]
async fn accounts_see_only_their_own_events_and_the_operator_sees_all() {
    let d = TestDaemon::start().await;
    let a_acct = d.admin.account_id.clone();
    let mut a_kms = d.admin_kms().await;
    let ka = create_key(&mut a_kms).await;
    let (r, id_a) = answered(
        a_kms
            .encrypt(enc_req(&ka.key_id, b"a", &HashMap::new()))
            .await,
    );
    r.unwrap();

    let b = new_account(&d, "tenant-b").await;
    let mut b_kms = d.kms_client(&b).await;
    let kb = create_key(&mut b_kms).await;
    let (r, id_b) = answered(
        b_kms
            .encrypt(enc_req(&kb.key_id, b"b", &HashMap::new()))
            .await,
    );
    r.unwrap();
    let (r, id_u) = answered(
        d.kms_client(&stranger("AKIANOBODY0000000001", "x"))
            .await
            .encrypt(enc_req(&ka.arn, b"u", &HashMap::new()))
            .await,
    );
    assert_err(r, Code::Unauthenticated, "UnrecognizedClientException");

    for who in [&d.admin, &d.root] {
        let seen = lookup_all(&mut audit(&d, who).await, Default::default()).await;
        assert!(ids(&seen).contains(&id_a));
        for e in &seen {
            assert_eq!(e.account_id, a_acct, "A sees only A's events: {e:?}");
        }
        assert!(!ids(&seen).contains(&id_b) && !ids(&seen).contains(&id_u));
    }

    let mut b_audit = audit(&d, &b).await;
    let seen = lookup_all(&mut b_audit, Default::default()).await;
    assert!(ids(&seen).contains(&id_b));
    for e in &seen {
        assert_eq!(e.account_id, b.account_id, "B sees only B's events: {e:?}");
        assert!(!e.canonical_json.contains(&a_acct), "{e:?}");
    }
    for filter in [
        pb::LookupEventsRequest {
            key_id: Some(ka.arn.clone()),
            ..Default::default()
        },
        pb::LookupEventsRequest {
            principal_arn: Some(user_arn(&a_acct, "admin")),
            ..Default::default()
        },
        pb::LookupEventsRequest {
            operation: Some("Encrypt".into()),
            ..Default::default()
        },
    ] {
        let got = lookup_all(&mut b_audit, filter.clone()).await;
        assert!(
            got.iter().all(|e| e.account_id == b.account_id),
            "{filter:?}: {got:?}"
        );
        assert!(!ids(&got).contains(&id_a));
    }

    let all = lookup_all(&mut audit(&d, &d.operator).await, Default::default()).await;
    for id in [&id_a, &id_b, &id_u] {
        assert!(ids(&all).contains(id), "the operator sees {id}");
    }
    let accounts: BTreeSet<&str> = all.iter().map(|e| e.account_id.as_str()).collect();
    for acct in [a_acct.as_str(), b.account_id.as_str(), "000000000000", ""] {
        assert!(accounts.contains(acct), "{acct:?} in {accounts:?}");
    }
    let a_only = lookup_all(
        &mut audit(&d, &d.operator).await,
        pb::LookupEventsRequest {
            key_id: Some(ka.arn.clone()),
            operation: Some("Encrypt".into()),
            outcome: Some(pb::Outcome::Allowed as i32),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(ids(&a_only), vec![id_a]);
}

/// Reading the trail needs the account's root or an identity policy
/// allowing `audit:<Operation>`; the refusals are themselves recorded.
#[tokio::test]
async fn reading_the_trail_needs_the_root_or_an_audit_policy() {
    let d = TestDaemon::start().await;
    let acct = d.admin.account_id.clone();
    let key = create_key(&mut d.admin_kms().await).await;
    let bob = new_user(&d, &d.root, "bob").await;
    let mut bob_audit = audit(&d, &bob).await;
    let bob_arn = user_arn(&acct, "bob");

    let (r, id) = answered(
        bob_audit
            .lookup_events(pb::LookupEventsRequest::default())
            .await,
    );
    assert_denied(r, &bob_arn, "audit:LookupEvents", "*");
    assert_denied(
        bob_audit.verify_trail(pb::VerifyTrailRequest {}).await,
        &bob_arn,
        "audit:VerifyTrail",
        "*",
    );
    assert_denied(
        history(&mut bob_audit, &key.arn, None).await,
        &bob_arn,
        "audit:GetKeyConfigurationHistory",
        &key.arn,
    );

    put_user_policy(
        &d,
        &d.root,
        "bob",
        "read",
        &allow_identity("audit:LookupEvents"),
    )
    .await
    .unwrap();
    let seen = lookup_all(&mut bob_audit, Default::default()).await;
    let refusal = the_event(&seen, &id);
    assert_eq!(refusal.outcome, pb::Outcome::Denied as i32);
    assert_eq!(refusal.error_code, "AccessDeniedException");
    assert_eq!(refusal.operation, "LookupEvents");
    assert!(seen.iter().all(|e| e.account_id == acct));
    assert_denied(
        bob_audit.verify_trail(pb::VerifyTrailRequest {}).await,
        &bob_arn,
        "audit:VerifyTrail",
        "*",
    );

    // The root needs no policy; an explicit deny stops even the admin.
    let mut root_audit = audit(&d, &d.root).await;
    assert!(verify(&mut root_audit).await.valid);
    assert_eq!(
        history(&mut root_audit, &key.arn, None)
            .await
            .unwrap()
            .versions
            .len(),
        1
    );
    put_user_policy(
        &d,
        &d.root,
        "admin",
        "no-verify",
        &deny_identity("audit:VerifyTrail"),
    )
    .await
    .unwrap();
    let mut admin_audit = audit(&d, &d.admin).await;
    assert_denied(
        admin_audit.verify_trail(pb::VerifyTrailRequest {}).await,
        &user_arn(&acct, "admin"),
        "audit:VerifyTrail",
        "*",
    );
    lookup_all(&mut admin_audit, Default::default()).await;
}

// --------------------------------------------------------- event content

/// A ReEncrypt event keeps its two encryption contexts apart, as
/// CloudTrail does: merged, a key present in both lost one of its values.
#[tokio::test]
async fn a_reencrypt_event_records_source_and_destination_contexts_apart() {
    let d = TestDaemon::start().await;
    let mut kms = d.admin_kms().await;
    let (from, to) = (create_key(&mut kms).await, create_key(&mut kms).await);
    let source = ctx(&[("tenant", "t-1"), ("stage", "old")]);
    let destination = ctx(&[("tenant", "t-2")]);
    let blob = kms
        .encrypt(enc_req(&from.arn, b"moving", &source))
        .await
        .unwrap()
        .into_inner()
        .ciphertext_blob;
    let (r, id) = answered(
        kms.re_encrypt(pb::ReEncryptRequest {
            ciphertext_blob: blob,
            source_encryption_context: source.clone(),
            destination_key_id: to.arn.clone(),
            destination_encryption_context: destination.clone(),
            ..Default::default()
        })
        .await,
    );
    r.unwrap();
    let mut a = audit(&d, &d.admin).await;
    let e = event_of(&mut a, "ReEncrypt", &id).await;
    assert_eq!(e.encryption_context, source);
    assert_eq!(e.destination_encryption_context, destination);
    assert_eq!(e.key_arns, vec![from.arn.clone(), to.arn.clone()]);
    let v = body(&e);
    assert_eq!(
        v["requestParameters"]["sourceEncryptionContext"],
        json!({"tenant": "t-1", "stage": "old"})
    );
    assert_eq!(
        v["requestParameters"]["destinationEncryptionContext"],
        json!({"tenant": "t-2"})
    );
    assert!(
        v["requestParameters"].get("encryptionContext").is_none(),
        "{v}"
    );
    assert!(verify(&mut a).await.valid);

    // Refused before its contexts were read, it keeps the ReEncrypt shape.
    let (r, id) = answered(
        d.kms_client(&stranger("AKIAREENCRYPTPROBE01", "x"))
            .await
            .re_encrypt(pb::ReEncryptRequest::default())
            .await,
    );
    r.unwrap_err();
    // It belongs to no account: the operator sees it.
    let e = event_of(&mut audit(&d, &d.operator).await, "ReEncrypt", &id).await;
    assert_eq!(
        body(&e)["requestParameters"],
        json!({"sourceEncryptionContext": {}, "destinationEncryptionContext": {}})
    );

    // Any other call has one context and no destination.
    let (r, id) = answered(kms.encrypt(enc_req(&from.arn, b"x", &source)).await);
    r.unwrap();
    let e = event_of(&mut a, "Encrypt", &id).await;
    assert!(e.destination_encryption_context.is_empty());
    assert_eq!(
        body(&e)["requestParameters"],
        json!({"encryptionContext": {"tenant": "t-1", "stage": "old"}})
    );
}

/// Issue 5: an event records time, request id, account, principal (and the
/// role session and MFA), source IP, operation, keys, encryption context,
/// the grant that allowed the call and the outcome, in a CloudTrail-like
/// canonical JSON.
#[tokio::test]
async fn an_event_records_who_what_where_and_under_which_grant() {
    let d = TestDaemon::start().await;
    let acct = d.admin.account_id.clone();
    let mut kms = d.admin_kms().await;
    let key = create_key(&mut kms).await;
    let c = ctx(&[("tenant", "t-17"), ("purpose", "invoices")]);
    d.advance(MINUTE);
    let t = now_ms(&d);
    let (r, id) = answered(kms.encrypt(enc_req(&key.arn, b"who what where", &c)).await);
    r.unwrap();

    let mut a = audit(&d, &d.admin).await;
    let e = event_of(&mut a, "Encrypt", &id).await;
    assert_eq!(e.request_id, id);
    assert_eq!(ts_ms(e.event_time.as_ref().unwrap()), t);
    assert_eq!(e.account_id, acct);
    assert_eq!(e.principal_arn, user_arn(&acct, "admin"));
    assert_eq!(e.session_name, "");
    assert!(!e.mfa_authenticated);
    assert_eq!(e.source_ip, "127.0.0.1");
    assert_eq!(e.operation, "Encrypt");
    assert_eq!(e.key_arns, vec![key.arn.clone()]);
    assert_eq!(e.encryption_context, c);
    assert_eq!(e.grant_id, "");
    assert_eq!(e.outcome, pb::Outcome::Allowed as i32);
    assert_eq!(e.error_code, "");
    assert_eq!(e.pending_deletion_attempt, 0);
    assert!(uuid::Uuid::parse_str(&e.event_id).is_ok(), "{}", e.event_id);

    let v = body(&e);
    assert_eq!(
        v.to_string(),
        e.canonical_json,
        "canonical: sorted keys, compact"
    );
    assert_eq!(v["eventID"], e.event_id.as_str());
    assert_eq!(v["eventName"], "Encrypt");
    assert_eq!(v["requestID"], id.as_str());
    assert_eq!(v["sourceIPAddress"], "127.0.0.1");
    let when = time::OffsetDateTime::parse(
        v["eventTime"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    assert_eq!(when.unix_timestamp_nanos() / 1_000_000, i128::from(t));
    assert_eq!(
        v["userIdentity"],
        json!({
            "type": "IAMUser",
            "arn": user_arn(&acct, "admin"),
            "accountId": acct,
            "accessKeyId": d.admin.access_key_id,
        })
    );
    assert_eq!(
        v["requestParameters"]["encryptionContext"],
        json!({"tenant": "t-17", "purpose": "invoices"})
    );
    assert_eq!(v["resources"][0]["ARN"], key.arn.as_str());
    assert_eq!(v["resources"].as_array().unwrap().len(), 1);
    assert_eq!(v["outcome"], "allowed");
    for absent in ["errorCode", "grantId", "pendingDeletionUse"] {
        assert!(v.get(absent).is_none(), "{absent} in {v}");
    }

    // A role session that proved MFA.
    let alice = new_user(&d, &d.root, "alice").await;
    create_role(
        &d,
        &d.root,
        "auditor",
        &trust_policy(&[&user_arn(&acct, "alice")]),
        None,
    )
    .await
    .unwrap();
    put_role_policy(&d, &d.root, "auditor", "kms", &allow_identity("kms:*"))
        .await
        .unwrap();
    let b32 = enable_mfa(&d, &alice).await.unwrap();
    let code = totp_code(&d, &b32);
    let (r, assume_id) = answered(
        d.identity_client(&alice)
            .await
            .assume_role(pb::AssumeRoleRequest {
                role_arn: role_arn(&acct, "auditor"),
                role_session_name: "night-shift".into(),
                duration_seconds: None,
                token_code: Some(code.clone()),
            })
            .await,
    );
    let session = SessionCreds::of(&r.unwrap());
    let (mut s_kms, _) = session_clients(&d, &session).await;
    let (r, sid) = answered(s_kms.encrypt(enc_req(&key.arn, b"s", &c)).await);
    r.unwrap();
    let e = event_of(&mut a, "Encrypt", &sid).await;
    assert_eq!(
        e.principal_arn,
        assumed_role_arn(&acct, "auditor", "night-shift")
    );
    assert_eq!(e.session_name, "night-shift");
    assert!(e.mfa_authenticated);
    let v = body(&e);
    assert_eq!(v["userIdentity"]["type"], "AssumedRole");
    assert_eq!(
        v["userIdentity"]["accessKeyId"],
        session.access_key_id.as_str()
    );
    assert_eq!(
        v["userIdentity"]["sessionContext"],
        json!({"sessionName": "night-shift", "mfaAuthenticated": "true"})
    );
    let assume = event_of(&mut a, "AssumeRole", &assume_id).await;
    assert_eq!(assume.principal_arn, user_arn(&acct, "alice"));
    assert_eq!(assume.outcome, pb::Outcome::Allowed as i32);
    assert!(!assume.canonical_json.contains(&code));

    // A call that only a grant allowed names the grant.
    let carol = new_user(&d, &d.root, "carol").await;
    let mut carol_kms = d.kms_client(&carol).await;
    assert_err(
        encrypt(&mut carol_kms, &key.arn, b"c", &c).await,
        Code::PermissionDenied,
        "AccessDeniedException",
    );
    let grant = kms
        .create_grant(pb::CreateGrantRequest {
            key_id: key.key_id.clone(),
            grantee_principal: user_arn(&acct, "carol"),
            operations: vec![pb::GrantOperation::Encrypt as i32],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let (r, gid) = answered(carol_kms.encrypt(enc_req(&key.arn, b"g", &c)).await);
    r.unwrap();
    let e = event_of(&mut a, "Encrypt", &gid).await;
    assert_eq!(e.grant_id, grant.grant_id);
    assert_eq!(body(&e)["grantId"], grant.grant_id.as_str());
    assert_eq!(e.principal_arn, user_arn(&acct, "carol"));
}

// ------------------------------------------------------------ no secrets

/// Every encoding in which a secret value might be written out.
#[derive(Default)]
struct Needles(Vec<(String, Vec<u8>)>);

impl Needles {
    fn text(&mut self, what: &str, s: &str) {
        assert!(s.len() >= 8, "{what} is long enough to search for");
        self.0.push((what.to_owned(), s.as_bytes().to_vec()));
    }

    fn bytes(&mut self, what: &str, b: &[u8]) {
        let b64 = base64::engine::general_purpose::STANDARD.encode(b);
        let forms = [
            ("raw", b.to_vec()),
            ("base64", b64.trim_end_matches('=').as_bytes().to_vec()),
            (
                "base64url",
                base64::engine::general_purpose::URL_SAFE_NO_PAD
                    .encode(b)
                    .into_bytes(),
            ),
            ("hex", hex(b).into_bytes()),
            ("HEX", hex(b).to_uppercase().into_bytes()),
            (
                "debug",
                format!("{:?}", &b[..b.len().min(12)])
                    .trim_end_matches(']')
                    .as_bytes()
                    .to_vec(),
            ),
        ];
        for (form, needle) in forms {
            self.0.push((format!("{what} ({form})"), needle));
        }
    }

    /// The needles found in `hay`.
    fn found_in(&self, hay: &[u8]) -> Vec<String> {
        self.0
            .iter()
            .filter(|(_, n)| contains(hay, n))
            .map(|(w, _)| w.clone())
            .collect()
    }
}

/// Whether `token` occurs in `hay` on its own, not inside a longer run of
/// letters and digits (a six-digit code occurs inside ids by chance).
fn contains_token(hay: &[u8], token: &[u8]) -> bool {
    hay.windows(token.len()).enumerate().any(|(i, w)| {
        w == token
            && (i == 0 || !hay[i - 1].is_ascii_alphanumeric())
            && hay
                .get(i + token.len())
                .is_none_or(|b| !b.is_ascii_alphanumeric())
    })
}

/// Issue 5: after a mixed workload against the real `kmsd dev` with
/// RUST_LOG=debug, no plaintext, data key, ciphertext body, access key
/// secret, session secret or token, TOTP secret or code is anywhere in the
/// data directory (database, WAL, shared memory) or in what the daemon
/// printed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_reaches_the_database_or_the_log() {
    let t = tempfile::tempdir().unwrap();
    let data = t.path().join("data");
    let logs = t.path().join("logs");
    let mut dev = DevProcess::start(&data, &logs, "dev", "debug").await;
    let admin = dev_creds(&data, "default");
    let root = dev_creds(&data, "root");
    let mut kms = kms_at(&dev.endpoint, &admin).await;
    let mut needles = Needles::default();
    let marker = hex(&random_bytes(6));
    let context_value = format!("visible-context-{marker}");
    let c = ctx(&[("audit-case", &context_value)]);

    let key = create_key(&mut kms).await;
    let mut request_ids = Vec::new();
    for i in 0..3 {
        let plaintext = format!("PLAINTEXT-{i}-{marker}-do-not-log").into_bytes();
        let (r, id) = answered(kms.encrypt(enc_req(&key.key_id, &plaintext, &c)).await);
        request_ids.push(id);
        let blob = r.unwrap().ciphertext_blob;
        assert_eq!(
            decrypt(&mut kms, &blob, &c).await.unwrap().plaintext,
            plaintext
        );
        needles.bytes(&format!("plaintext {i}"), &plaintext);
        needles.bytes(&format!("ciphertext {i} body"), &blob[21..]);
        needles.bytes(&format!("ciphertext {i}"), &blob);
    }
    let dk = kms
        .generate_data_key(pb::GenerateDataKeyRequest {
            key_id: key.arn.clone(),
            key_spec: Some(pb::DataKeySpec::Aes256 as i32),
            encryption_context: c.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let again = decrypt(&mut kms, &dk.ciphertext_blob, &c).await.unwrap();
    assert_eq!(again.plaintext, dk.plaintext);
    needles.bytes("data key", &dk.plaintext);
    needles.bytes("data key blob body", &dk.ciphertext_blob[21..]);
    let random = kms
        .generate_random(pb::GenerateRandomRequest {
            number_of_bytes: 32,
        })
        .await
        .unwrap()
        .into_inner()
        .plaintext;
    needles.bytes("random bytes", &random);

    // A user, its access key, an MFA device and an MFA role session.
    let mut iam = iam_at(&dev.endpoint, &root).await;
    let acct = caller_arn(&mut iam).await.unwrap();
    let acct = acct.split(':').nth(4).unwrap().to_owned();
    iam.create_user(pb::CreateUserRequest {
        user_name: "alice".into(),
        path: None,
    })
    .await
    .unwrap();
    let ak = iam
        .create_access_key(pb::CreateAccessKeyRequest {
            user_name: Some("alice".into()),
        })
        .await
        .unwrap()
        .into_inner()
        .access_key
        .unwrap();
    needles.text("alice's secret access key", &ak.secret_access_key);
    let alice = Creds {
        account_id: acct.clone(),
        access_key_id: ak.access_key_id.clone(),
        secret: ak.secret_access_key.clone(),
    };
    iam.create_role(pb::CreateRoleRequest {
        role_name: "app".into(),
        path: None,
        assume_role_policy_document: trust_policy(&[&user_arn(&acct, "alice")]),
        max_session_duration: None,
        description: None,
    })
    .await
    .unwrap();
    iam.put_role_policy(pb::PutPrincipalPolicyRequest {
        principal_name: "app".into(),
        policy_name: "kms".into(),
        policy_document: allow_identity("kms:*"),
    })
    .await
    .unwrap();
    let mut alice_iam = iam_at(&dev.endpoint, &alice).await;
    let enrolment = alice_iam
        .enable_mfa_device(pb::EnableMfaDeviceRequest {})
        .await
        .unwrap()
        .into_inner();
    needles.text("TOTP secret", &enrolment.base32_secret);
    needles.text("otpauth URI", &enrolment.otpauth_uri);
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let code = totp_code_at(&enrolment.base32_secret, secs);
    let assumed = alice_iam
        .assume_role(pb::AssumeRoleRequest {
            role_arn: "app".into(),
            role_session_name: "nosecrets".into(),
            duration_seconds: None,
            token_code: Some(code.clone()),
        })
        .await
        .expect("AssumeRole with a fresh TOTP code")
        .into_inner();
    let session = SessionCreds::of(&assumed);
    needles.text("session secret", &session.secret);
    needles.text("session token", session.session_token.as_deref().unwrap());
    let auth = BearerAuth::new(
        &session.access_key_id,
        &session.secret,
        session.session_token.as_deref(),
    )
    .unwrap();
    let (mut s_kms, _) = client::clients(client::connect(&dev.endpoint).await.unwrap(), auth);
    let session_plaintext = format!("SESSION-PLAINTEXT-{marker}").into_bytes();
    let blob = encrypt(&mut s_kms, &key.arn, &session_plaintext, &c)
        .await
        .unwrap()
        .ciphertext_blob;
    needles.bytes("session plaintext", &session_plaintext);
    needles.bytes("session ciphertext body", &blob[21..]);

    // The files while the daemon runs (WAL and shared memory present), and
    // again after it stopped.
    let check_files = |when: &str| {
        let files = read_all_files(&data);
        let all: Vec<u8> = files.iter().flat_map(|(_, b)| b.clone()).collect();
        assert!(
            contains(&all, context_value.as_bytes()),
            "{when}: the search sees the recorded (non-secret) context, so it reads the trail"
        );
        for (path, bytes) in &files {
            let found = needles.found_in(bytes);
            assert!(
                found.is_empty(),
                "{when}: {} holds {found:?}",
                path.display()
            );
            assert!(
                !contains_token(bytes, code.as_bytes()),
                "{when}: {} holds the TOTP code",
                path.display()
            );
        }
    };
    check_files("running");
    dev.terminate().await;
    check_files("stopped");

    let printed = dev.output();
    // `kmsd dev` prints the bootstrap admin's secret once, on first run, by
    // design; it proves the capture works and is the one secret excluded
    // from the search. Every secret made later must be absent.
    assert!(contains(&printed, admin.secret.as_bytes()));
    assert!(
        request_ids
            .iter()
            .all(|id| contains(&printed, id.as_bytes())),
        "debug logging was on and captured (a line per call)"
    );
    let found = needles.found_in(&printed);
    assert!(found.is_empty(), "the daemon printed {found:?}");
    assert!(
        !contains_token(&printed, code.as_bytes()),
        "the daemon printed the TOTP code"
    );
}

// ------------------------------------------------- denied, unauthenticated

/// Issue 5: a denied call is an event with outcome denied and
/// AccessDeniedException; an unauthenticated one with
/// UnrecognizedClientException and the presented access key id, never the
/// secret (seen only by the operator: it belongs to no account).
#[tokio::test]
async fn denied_and_unauthenticated_calls_are_recorded() {
    let d = TestDaemon::start().await;
    let acct = d.admin.account_id.clone();
    let key = create_key(&mut d.admin_kms().await).await;
    let bob = new_user(&d, &d.root, "bob").await;
    let mut bob_kms = d.kms_client(&bob).await;

    let (r, id) = answered(
        bob_kms
            .encrypt(enc_req(&key.arn, b"no", &ctx(&[("k", "v")])))
            .await,
    );
    assert_err(r, Code::PermissionDenied, "AccessDeniedException");
    let (r, create_id) = answered(bob_kms.create_key(pb::CreateKeyRequest::default()).await);
    assert_err(r, Code::PermissionDenied, "AccessDeniedException");

    let mut a = audit(&d, &d.admin).await;
    let e = event_of(&mut a, "Encrypt", &id).await;
    assert_eq!(e.outcome, pb::Outcome::Denied as i32);
    assert_eq!(e.error_code, "AccessDeniedException");
    assert_eq!(e.principal_arn, user_arn(&acct, "bob"));
    assert_eq!(e.account_id, acct);
    assert_eq!(e.key_arns, vec![key.arn.clone()]);
    let v = body(&e);
    assert_eq!(v["outcome"], "denied");
    assert_eq!(v["errorCode"], "AccessDeniedException");
    assert_eq!(v["userIdentity"]["accessKeyId"], bob.access_key_id.as_str());
    let e = event_of(&mut a, "CreateKey", &create_id).await;
    assert_eq!(e.outcome, pb::Outcome::Denied as i32);
    assert_eq!(e.error_code, "AccessDeniedException");

    // Unknown key id; a known key id with a wrong secret; no credentials.
    let secret = format!("never-recorded-{}", hex(&random_bytes(8)));
    let (r, unknown_id) = answered(
        d.kms_client(&stranger("AKIAAUDITPROBE000001", &secret))
            .await
            .encrypt(enc_req(&key.arn, b"u", &HashMap::new()))
            .await,
    );
    assert_err(r, Code::Unauthenticated, "UnrecognizedClientException");
    let wrong = format!("wrong-secret-{}", hex(&random_bytes(8)));
    let (r, wrong_id) = answered(
        d.kms_client(&stranger(&d.admin.access_key_id, &wrong))
            .await
            .describe_key(describe_req(&key.arn))
            .await,
    );
    assert_err(r, Code::Unauthenticated, "UnrecognizedClientException");
    let mut bare = pb::key_management_service_client::KeyManagementServiceClient::new(
        client::connect(&d.endpoint).await.unwrap(),
    );
    let (r, bare_id) = answered(bare.list_keys(pb::ListKeysRequest::default()).await);
    assert_err(r, Code::Unauthenticated, "UnrecognizedClientException");

    let mut op = audit(&d, &d.operator).await;
    let denied = lookup_all(
        &mut op,
        pb::LookupEventsRequest {
            outcome: Some(pb::Outcome::Denied as i32),
            ..Default::default()
        },
    )
    .await;
    for (rid, presented, operation) in [
        (&unknown_id, "AKIAAUDITPROBE000001", "Encrypt"),
        (&wrong_id, d.admin.access_key_id.as_str(), "DescribeKey"),
        (&bare_id, "", "ListKeys"),
    ] {
        let e = the_event(&denied, rid);
        assert_eq!(e.operation, operation);
        assert_eq!(e.error_code, "UnrecognizedClientException");
        assert_eq!(e.principal_arn, "", "not authenticated: no principal");
        assert_eq!(e.account_id, "");
        assert_eq!(e.source_ip, "127.0.0.1");
        let v = body(&e);
        assert_eq!(v["userIdentity"]["accessKeyId"], presented);
        assert_eq!(v["userIdentity"]["type"], "Unknown");
        assert_eq!(v["errorCode"], "UnrecognizedClientException");
        assert!(!e.canonical_json.contains(&secret) && !e.canonical_json.contains(&wrong));
    }
    let mine = lookup_all(&mut a, Default::default()).await;
    for rid in [&unknown_id, &wrong_id, &bare_id] {
        assert!(
            !ids(&mine).contains(rid),
            "an account does not see unauthenticated calls"
        );
    }
    for (path, bytes) in read_all_files(&d.data_dir()) {
        for s in [&secret, &wrong] {
            assert!(
                !contains(&bytes, s.as_bytes()),
                "{} holds a presented secret",
                path.display()
            );
        }
    }
}

/// A denied Decrypt names the key its ciphertext was made under, so the
/// key's owner finds the attempt by key.
#[tokio::test]
async fn a_denied_decrypt_names_the_key_of_the_blob() {
    let d = TestDaemon::start().await;
    let mut kms = d.admin_kms().await;
    let key = create_key(&mut kms).await;
    let blob = encrypt_ok(&mut kms, &key.key_id, b"stolen ciphertext").await;
    let bob = new_user(&d, &d.root, "bob").await;
    let (r, id) = answered(
        d.kms_client(&bob)
            .await
            .decrypt(dec_req(&blob, &HashMap::new()))
            .await,
    );
    assert_err(r, Code::PermissionDenied, "AccessDeniedException");
    let mut a = audit(&d, &d.admin).await;
    let e = event_of(&mut a, "Decrypt", &id).await;
    assert_eq!(e.outcome, pb::Outcome::Denied as i32);
    assert_eq!(
        e.key_arns,
        vec![key.arn.clone()],
        "the denied Decrypt names the key of the blob: {}",
        e.canonical_json
    );
    let by_key = lookup_all(
        &mut a,
        pb::LookupEventsRequest {
            key_id: Some(key.arn.clone()),
            outcome: Some(pb::Outcome::Denied as i32),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(ids(&by_key), vec![id]);
}

/// Searching by key finds everything done to it, its creation included.
#[tokio::test]
async fn the_key_filter_finds_a_keys_whole_story_from_its_creation() {
    let d = TestDaemon::start().await;
    let mut kms = d.admin_kms().await;
    let (r, create_id) = answered(kms.create_key(pb::CreateKeyRequest::default()).await);
    let key = r.unwrap().key_metadata.unwrap();
    let c = HashMap::new();
    let (r, enc_id) = answered(kms.encrypt(enc_req(&key.key_id, b"story", &c)).await);
    let blob = r.unwrap().ciphertext_blob;
    let (r, dec_id) = answered(kms.decrypt(dec_req(&blob, &c)).await);
    r.unwrap();
    let (r, alias_id) = answered(
        kms.create_alias(pb::CreateAliasRequest {
            alias_name: "alias/story".into(),
            target_key_id: key.key_id.clone(),
        })
        .await,
    );
    r.unwrap();
    let (r, desc_id) = answered(kms.describe_key(describe_req("alias/story")).await);
    r.unwrap();
    let (r, sched_id) = answered(
        kms.schedule_key_deletion(pb::ScheduleKeyDeletionRequest {
            key_id: key.arn.clone(),
            pending_window_in_days: Some(7),
        })
        .await,
    );
    r.unwrap();

    let mut a = audit(&d, &d.admin).await;
    let story = ids(&lookup_all(
        &mut a,
        pb::LookupEventsRequest {
            key_id: Some(key.key_id.clone()),
            ..Default::default()
        },
    )
    .await);
    for (what, id) in [
        ("Encrypt", &enc_id),
        ("Decrypt", &dec_id),
        ("CreateAlias", &alias_id),
        ("DescribeKey by alias", &desc_id),
        ("ScheduleKeyDeletion", &sched_id),
    ] {
        assert!(story.contains(id), "{what} is found by key");
    }
    let created = event_of(&mut a, "CreateKey", &create_id).await;
    assert_eq!(
        created.key_arns,
        vec![key.arn.clone()],
        "the CreateKey event names the key it created: {}",
        created.canonical_json
    );
    assert_eq!(
        story,
        vec![sched_id, desc_id, alias_id, dec_id, enc_id, create_id],
        "the key's whole story, newest first"
    );
}

/// Use of a key by another account (through a grant) is visible to the
/// key's owner, as AWS delivers such events to both accounts; the event
/// names the owner as recipient.
#[tokio::test]
async fn the_key_owner_sees_other_accounts_use_of_its_key() {
    let d = TestDaemon::start().await;
    let a_acct = d.admin.account_id.clone();
    let mut kms = d.admin_kms().await;
    let key = create_key(&mut kms).await;
    let b = new_account(&d, "tenant-b").await;
    let svc = new_user(&d, &b, "svc").await;
    put_user_policy(&d, &b, "svc", "kms", &allow_identity("kms:*"))
        .await
        .unwrap();
    let grant = kms
        .create_grant(pb::CreateGrantRequest {
            key_id: key.key_id.clone(),
            grantee_principal: user_arn(&b.account_id, "svc"),
            operations: vec![pb::GrantOperation::Encrypt as i32],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let (r, id) = answered(
        d.kms_client(&svc)
            .await
            .encrypt(pb::EncryptRequest {
                grant_tokens: vec![grant.grant_token.clone()],
                ..enc_req(&key.arn, b"cross", &HashMap::new())
            })
            .await,
    );
    r.unwrap();

    let theirs = event_of(&mut audit(&d, &b).await, "Encrypt", &id).await;
    assert_eq!(theirs.account_id, b.account_id);
    assert_eq!(theirs.grant_id, grant.grant_id);
    assert_eq!(body(&theirs)["recipientAccountId"], a_acct.as_str());
    let owners = lookup_all(
        &mut audit(&d, &d.admin).await,
        pb::LookupEventsRequest {
            key_id: Some(key.arn.clone()),
            ..Default::default()
        },
    )
    .await;
    assert!(
        ids(&owners).contains(&id),
        "the key's owner sees account {}'s use of its key",
        b.account_id
    );
}

// ------------------------------------------------------------- kill -9

/// Issue 5: concurrent calls (changes among them) against the real daemon,
/// SIGKILL mid-load, restart: every call that got an answer (its
/// `x-request-id` noted, success or error) has its event, and the chain
/// verifies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_answered_call_has_its_event_after_kill_9() {
    let t = tempfile::tempdir().unwrap();
    let data = t.path().join("data");
    let logs = t.path().join("logs");
    let mut dev = DevProcess::start(&data, &logs, "first", "warn").await;
    let admin = dev_creds(&data, "default");
    let created = create_key(&mut kms_at(&dev.endpoint, &admin).await).await;
    let (key, key_arn) = (created.key_id, created.arn);

    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    let mut workers = Vec::new();
    for w in 0..12u32 {
        let tx = tx.clone();
        let mut kms = kms_at(&dev.endpoint, &admin).await;
        let key = key.clone();
        workers.push(tokio::spawn(async move {
            fn noted<T>(r: &Result<tonic::Response<T>, Status>) -> Option<String> {
                let md = match r {
                    Ok(x) => x.metadata(),
                    Err(s) => s.metadata(),
                };
                md.get("x-request-id")
                    .map(|v| v.to_str().unwrap().to_owned())
            }
            for i in 0u32.. {
                let id = match (w + i) % 4 {
                    0 => noted(
                        &kms.encrypt(enc_req(
                            &key,
                            format!("{w}/{i}").as_bytes(),
                            &HashMap::new(),
                        ))
                        .await,
                    ),
                    // Fails (NotFoundException): errors are answers too.
                    1 => noted(
                        &kms.describe_key(describe_req(&uuid::Uuid::new_v4().to_string()))
                            .await,
                    ),
                    2 => noted(
                        &kms.generate_data_key(pb::GenerateDataKeyRequest {
                            key_id: key.clone(),
                            number_of_bytes: Some(32),
                            ..Default::default()
                        })
                        .await,
                    ),
                    // A change, served in a call transaction.
                    _ => noted(
                        &kms.tag_resource(pb::TagResourceRequest {
                            key_id: key.clone(),
                            tags: vec![pb::Tag {
                                tag_key: format!("w{w}"),
                                tag_value: i.to_string(),
                            }],
                        })
                        .await,
                    ),
                };
                // No answer: the daemon is gone.
                let Some(id) = id else { return };
                if tx.send(id).is_err() {
                    return;
                }
            }
        }));
    }
    drop(tx);
    let mut answered_ids = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while answered_ids.len() < 2000 {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some(id)) => answered_ids.push(id),
            _ => break,
        }
    }
    dev.kill9();
    let drained = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(id) = rx.recv().await {
            answered_ids.push(id);
        }
    })
    .await;
    assert!(drained.is_ok(), "the workers stop once the daemon is gone");
    for w in workers {
        w.await.unwrap();
    }
    assert!(
        answered_ids.len() >= 100,
        "the load ran ({} answers)",
        answered_ids.len()
    );

    let dev = DevProcess::start(&data, &logs, "second", "warn").await;
    let op = dev_creds(&data, "operator");
    let mut a = audit_at(&dev.endpoint, &op.access_key_id, &op.secret, None).await;
    let events = lookup_all(&mut a, Default::default()).await;
    let recorded: HashSet<String> = ids(&events).into_iter().collect();
    let missing: Vec<&String> = answered_ids
        .iter()
        .filter(|id| !recorded.contains(*id))
        .collect();
    assert!(
        missing.is_empty(),
        "{} of {} answered calls have no event, e.g. {:?}",
        missing.len(),
        answered_ids.len(),
        &missing[..missing.len().min(5)]
    );
    // The converse: no change took effect without its event, answered or
    // not. Every TagResource sets a value its worker never set before, so
    // each one that committed added one configuration version to the key's
    // history (after the version CreateKey made).
    let tag_events = events
        .iter()
        .filter(|e| {
            e.operation == "TagResource"
                && e.outcome == pb::Outcome::Allowed as i32
                && e.key_arns.contains(&key_arn)
        })
        .count();
    assert!(tag_events > 0, "the load tagged the key");
    let versions = all_history(&mut a, &key_arn).await;
    assert_eq!(
        versions.len(),
        1 + tag_events,
        "every committed tag change has its TagResource event"
    );
    let report = verify(&mut a).await;
    assert!(report.valid, "{report:?}");
    assert!(report.events_checked >= answered_ids.len() as u64);
}

// ------------------------------------------------------ unwritable trail

/// Issue 5: when the trail cannot be written, calls fail with an internal
/// error instead of going unrecorded; once it can, they work again.
#[tokio::test]
async fn calls_fail_while_the_trail_cannot_be_written() {
    let d = TestDaemon::start().await;
    let mut kms = d.admin_kms().await;
    let key = create_key(&mut kms).await;
    encrypt_ok(&mut kms, &key.key_id, b"before").await;
    let mut iam = d.identity_client(&d.admin).await;
    let mut a = audit(&d, &d.admin).await;

    let db = open_db(&d.file("kmsd.db"));
    db.execute_batch(BLOCK).unwrap();
    let before = event_count(&db);
    let (r, failed_id) = answered(
        kms.encrypt(enc_req(&key.key_id, b"blocked", &HashMap::new()))
            .await,
    );
    assert_err(r, Code::Internal, "KMSInternalException");
    assert_err(
        iam.get_caller_identity(pb::GetCallerIdentityRequest {})
            .await,
        Code::Internal,
        "KMSInternalException",
    );
    assert_err(
        a.verify_trail(pb::VerifyTrailRequest {}).await,
        Code::Internal,
        "KMSInternalException",
    );
    // Even a call that is refused anyway must not be answered unrecorded.
    assert_err(
        d.kms_client(&stranger("AKIAAUDITPROBE000002", "x"))
            .await
            .list_keys(pb::ListKeysRequest::default())
            .await,
        Code::Internal,
        "KMSInternalException",
    );
    assert_eq!(event_count(&db), before, "nothing was recorded");

    db.execute_batch("DROP TRIGGER block;").unwrap();
    let (r, ok_id) = answered(
        kms.encrypt(enc_req(&key.key_id, b"after", &HashMap::new()))
            .await,
    );
    r.unwrap();
    assert_eq!(event_count(&db), before + 1);
    let events = lookup_all(&mut a, Default::default()).await;
    the_event(&events, &ok_id);
    assert!(!ids(&events).contains(&failed_id));
    let report = verify(&mut a).await;
    assert!(report.valid, "{report:?}");
}

/// Issue 5: the sweep's own changes are recorded like a call's. A key due
/// for destruction, or for automatic rotation, while the trail cannot be
/// written is left as it is (not destroyed or rotated unrecorded); once
/// the trail works, the next sweep does it, with its event.
#[tokio::test]
async fn the_sweep_changes_nothing_it_cannot_record() {
    // Only this test's sweeps: none of the daemon's own in between.
    let d = TestDaemon::start_with(|o| o.sweep_interval = Duration::from_secs(3600)).await;
    let mut kms = d.admin_kms().await;
    let doomed = create_key(&mut kms).await;
    let rotating = create_key(&mut kms).await;
    schedule_deletion(&mut kms, &doomed.key_id, Some(7))
        .await
        .unwrap();
    kms.enable_key_rotation(pb::EnableKeyRotationRequest {
        key_id: rotating.key_id.clone(),
        rotation_period_in_days: Some(90),
    })
    .await
    .unwrap();
    let db = open_db(&d.file("kmsd.db"));
    let rows = |sql: &str, id: &str| -> i64 { db.query_row(sql, [id], |r| r.get(0)).unwrap() };
    let versions = "SELECT count(*) FROM key_versions WHERE key_id = ?1";
    let keys = "SELECT count(*) FROM keys WHERE id = ?1";

    db.execute_batch(BLOCK).unwrap();
    let before = event_count(&db);
    d.advance(91 * DAY);
    let report = d.kms.sweep().await.unwrap();
    assert_eq!((report.destroyed, report.rotated), (0, 0));
    assert_eq!(rows(keys, &doomed.key_id), 1, "not destroyed unrecorded");
    assert_eq!(rows(versions, &doomed.key_id), 1);
    assert_eq!(
        rows(versions, &rotating.key_id),
        1,
        "not rotated unrecorded"
    );
    assert_eq!(event_count(&db), before);

    db.execute_batch("DROP TRIGGER block;").unwrap();
    let report = d.kms.sweep().await.unwrap();
    assert_eq!((report.destroyed, report.rotated), (1, 1));
    assert_eq!(rows(keys, &doomed.key_id), 0, "destroyed once recordable");
    assert_eq!(rows(versions, &doomed.key_id), 0);
    assert_eq!(
        rows(versions, &rotating.key_id),
        2,
        "rotated once recordable"
    );
    let mut a = audit(&d, &d.admin).await;
    let events = lookup_all(&mut a, Default::default()).await;
    let by_service = |op: &str, arn: &str| {
        events
            .iter()
            .filter(|e| {
                e.operation == op
                    && e.principal_arn == "kms.amazonaws.com"
                    && e.key_arns.iter().any(|k| k == arn)
            })
            .count()
    };
    assert_eq!(by_service("DeleteKey", &doomed.arn), 1);
    assert_eq!(by_service("RotateKey", &rotating.arn), 1);
}

/// A change whose call failed because its event could not be written must
/// not take effect: otherwise the key was created (or scheduled for
/// deletion) with no event saying who did it.
#[tokio::test]
async fn a_change_refused_for_want_of_a_trail_does_not_take_effect() {
    let d = TestDaemon::start().await;
    let mut kms = d.admin_kms().await;
    let key = create_key(&mut kms).await;
    let keys_before = all_key_ids(&mut kms).await.len();
    let db = open_db(&d.file("kmsd.db"));
    let versions = |db: &rusqlite::Connection| -> i64 {
        db.query_row(
            "SELECT count(*) FROM key_config_history WHERE key_id = ?1",
            [&key.key_id],
            |r| r.get(0),
        )
        .unwrap()
    };
    let versions_before = versions(&db);
    db.execute_batch(BLOCK).unwrap();
    assert_err(
        kms.create_key(pb::CreateKeyRequest::default()).await,
        Code::Internal,
        "KMSInternalException",
    );
    assert_err(
        schedule_deletion(&mut kms, &key.key_id, Some(7)).await,
        Code::Internal,
        "KMSInternalException",
    );
    // Other changes, each by another path into the store.
    let blocked = "blocked by the trail";
    let others = [
        error_name(
            &kms.tag_resource(pb::TagResourceRequest {
                key_id: key.key_id.clone(),
                tags: vec![pb::Tag {
                    tag_key: "k".into(),
                    tag_value: blocked.into(),
                }],
            })
            .await
            .unwrap_err(),
        ),
        error_name(
            &kms.create_alias(pb::CreateAliasRequest {
                alias_name: "alias/blocked".into(),
                target_key_id: key.key_id.clone(),
            })
            .await
            .unwrap_err(),
        ),
        error_name(
            &kms.update_key_description(pb::UpdateKeyDescriptionRequest {
                key_id: key.key_id.clone(),
                description: blocked.into(),
            })
            .await
            .unwrap_err(),
        ),
        error_name(
            &kms.enable_key_rotation(pb::EnableKeyRotationRequest {
                key_id: key.key_id.clone(),
                rotation_period_in_days: None,
            })
            .await
            .unwrap_err(),
        ),
    ];
    assert!(
        others.iter().all(|n| n == "KMSInternalException"),
        "{others:?}"
    );
    db.execute_batch("DROP TRIGGER block;").unwrap();
    assert_eq!(
        versions(&db),
        versions_before,
        "no configuration change of the key took effect unrecorded"
    );
    let aliases: i64 = db
        .query_row(
            "SELECT count(*) FROM aliases WHERE name = 'alias/blocked'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(aliases, 0, "no alias was created unrecorded");
    let state = describe(&mut kms, &key.key_id).await.unwrap().key_state;
    let keys_after = all_key_ids(&mut kms).await.len();
    let mut wrong = Vec::new();
    if state != pb::KeyState::Enabled as i32 {
        wrong.push(format!(
            "a ScheduleKeyDeletion that failed unrecorded left the key in state {:?}",
            pb::KeyState::try_from(state)
        ));
    }
    if keys_after != keys_before {
        wrong.push(format!(
            "a CreateKey that failed unrecorded created a key anyway ({keys_before} keys before, {keys_after} after)"
        ));
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
}

// ---------------------------------------------------- configuration history

/// Issue 5: every change of policy, state, description, rotation,
/// aliases, tags and grants is a version, in order; `as_of` gives the
/// configuration in force; the history outlives the key; another account
/// cannot read it.
#[tokio::test]
async fn key_configuration_history_keeps_every_version() {
    let d = TestDaemon::start().await;
    let acct = d.admin.account_id.clone();
    let mut kms = d.admin_kms().await;
    let bob_arn = user_arn(&acct, "bob");
    new_user(&d, &d.root, "bob").await;
    let mut times = Vec::new();

    d.advance(MINUTE);
    times.push(now_ms(&d));
    let key = create_key_described(&mut kms, "history v1").await;
    // Use is not a change.
    encrypt_ok(&mut kms, &key.key_id, b"not a change").await;
    describe(&mut kms, &key.arn).await.unwrap();

    d.advance(MINUTE);
    times.push(now_ms(&d));
    let policy = policy_doc(json!([{
        "Sid": "AuditHistory",
        "Effect": "Allow",
        "Principal": {"AWS": root_arn(&acct)},
        "Action": "kms:*",
        "Resource": "*"
    }]));
    put_key_policy(&mut kms, &key.key_id, &policy, false)
        .await
        .unwrap();

    d.advance(MINUTE);
    times.push(now_ms(&d));
    kms.update_key_description(pb::UpdateKeyDescriptionRequest {
        key_id: key.key_id.clone(),
        description: "history v2".into(),
    })
    .await
    .unwrap();

    d.advance(MINUTE);
    times.push(now_ms(&d));
    kms.enable_key_rotation(pb::EnableKeyRotationRequest {
        key_id: key.key_id.clone(),
        rotation_period_in_days: Some(90),
    })
    .await
    .unwrap();

    d.advance(MINUTE);
    times.push(now_ms(&d));
    kms.tag_resource(pb::TagResourceRequest {
        key_id: key.key_id.clone(),
        tags: vec![pb::Tag {
            tag_key: "team".into(),
            tag_value: "payments".into(),
        }],
    })
    .await
    .unwrap();

    d.advance(MINUTE);
    times.push(now_ms(&d));
    create_alias(&mut kms, "alias/history", &key.key_id)
        .await
        .unwrap();

    d.advance(MINUTE);
    times.push(now_ms(&d));
    let grant = kms
        .create_grant(pb::CreateGrantRequest {
            key_id: key.key_id.clone(),
            grantee_principal: bob_arn.clone(),
            operations: vec![pb::GrantOperation::Encrypt as i32],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();

    d.advance(MINUTE);
    times.push(now_ms(&d));
    disable(&mut kms, &key.key_id).await;

    d.advance(MINUTE);
    times.push(now_ms(&d));
    schedule_deletion(&mut kms, &key.key_id, Some(7))
        .await
        .unwrap();

    d.advance(DAY * 8);
    times.push(now_ms(&d));
    d.kms.sweep().await.unwrap();
    assert_err(
        describe(&mut kms, &key.key_id).await,
        Code::NotFound,
        "NotFoundException",
    );

    let mut a = audit(&d, &d.admin).await;
    let h = history(&mut a, &key.arn, None).await.unwrap();
    assert_eq!(h.key_arn, key.arn);
    let v = &h.versions;
    assert_eq!(
        v.iter().map(|x| x.version).collect::<Vec<_>>(),
        (1..=10).collect::<Vec<u64>>(),
        "one version per change: {:#?}",
        v.iter().map(|x| &x.configuration).collect::<Vec<_>>()
    );
    for (x, t) in v.iter().zip(&times) {
        assert_eq!(
            ts_ms(x.changed_at.as_ref().unwrap()),
            *t,
            "version {}",
            x.version
        );
    }
    let c: Vec<Value> = v.iter().map(config).collect();
    // 1: as created.
    assert_eq!(c[0]["state"], "Enabled");
    assert_eq!(c[0]["description"], "history v1");
    assert!(c[0]["policy"].as_str().unwrap().contains(&root_arn(&acct)));
    assert!(!c[0]["policy"].as_str().unwrap().contains("AuditHistory"));
    assert_eq!(c[0]["keyRotationEnabled"], false);
    assert_eq!(c[0]["aliases"], json!([]));
    assert_eq!(c[0]["tags"], json!({}));
    assert_eq!(c[0]["grants"], json!([]));
    // 2: the policy.
    assert!(c[1]["policy"].as_str().unwrap().contains("AuditHistory"));
    assert_eq!(c[1]["description"], "history v1");
    // 3: the description.
    assert_eq!(c[2]["description"], "history v2");
    assert!(c[2]["policy"].as_str().unwrap().contains("AuditHistory"));
    // 4: rotation.
    assert_eq!(c[3]["keyRotationEnabled"], true);
    assert_eq!(c[3]["rotationPeriodInDays"], 90);
    assert_eq!(c[2]["keyRotationEnabled"], false);
    // 5: a tag.
    assert_eq!(c[4]["tags"], json!({"team": "payments"}));
    // 6: an alias.
    let aliases = c[5]["aliases"].as_array().unwrap();
    assert!(
        aliases.len() == 1 && aliases[0].as_str().unwrap().ends_with("history"),
        "{aliases:?}"
    );
    assert_eq!(c[4]["aliases"], json!([]));
    // 7: a grant.
    let grants = c[6]["grants"].as_array().unwrap();
    assert_eq!(grants.len(), 1);
    assert_eq!(grants[0]["grantId"], grant.grant_id.as_str());
    assert_eq!(grants[0]["granteePrincipal"], bob_arn.as_str());
    // 8: disabled, the rest kept.
    assert_eq!(c[7]["state"], "Disabled");
    assert_eq!(c[7]["tags"], json!({"team": "payments"}));
    assert_eq!(c[7]["grants"].as_array().unwrap().len(), 1);
    // 9: pending deletion.
    assert_eq!(c[8]["state"], "PendingDeletion");
    assert!(c[8]["deletionDate"].is_string(), "{}", c[8]);
    // 10: destroyed.
    assert_eq!(c[9]["state"], "Destroyed");

    // As of a moment between two changes: the earlier configuration.
    for i in 0..10 {
        let got = history(&mut a, &key.key_id, Some(times[i] + 30_000))
            .await
            .unwrap();
        assert_eq!(got.versions.len(), 1, "as of just after change {}", i + 1);
        assert_eq!(got.versions[0].version, i as u64 + 1);
        assert_eq!(got.versions[0].configuration, v[i].configuration);
    }
    let exact = history(&mut a, &key.key_id, Some(times[4])).await.unwrap();
    assert_eq!(
        exact.versions[0].version, 5,
        "a change is in force from its instant"
    );
    let exact = history(&mut a, &key.key_id, Some(times[4] - 1))
        .await
        .unwrap();
    assert_eq!(exact.versions[0].version, 4);
    assert_err(
        history(&mut a, &key.arn, Some(times[0] - 1)).await,
        Code::NotFound,
        "NotFoundException",
    );

    // Readable after destruction by id and ARN, by the root and the
    // operator; not by another account.
    assert_eq!(
        history(&mut a, &key.key_id, None)
            .await
            .unwrap()
            .versions
            .len(),
        10
    );
    let by_root = history(&mut audit(&d, &d.root).await, &key.arn, None)
        .await
        .unwrap();
    assert_eq!(by_root.versions, h.versions);
    let by_op = history(&mut audit(&d, &d.operator).await, &key.arn, None)
        .await
        .unwrap();
    assert_eq!(by_op.versions, h.versions);
    let b = new_account(&d, "tenant-b").await;
    let mut b_audit = audit(&d, &b).await;
    for k in [&key.arn, &key.key_id] {
        let r = history(&mut b_audit, k, None).await;
        let s = r.expect_err("another account cannot read the history");
        assert!(
            matches!(s.code(), Code::NotFound | Code::PermissionDenied),
            "{s:?}"
        );
        assert!(!s.message().contains("history v1"), "{s:?}");
    }
    assert_err(
        history(&mut audit(&d, &d.root).await, "alias/history", None).await,
        Code::InvalidArgument,
        "ValidationException",
    );
}

// ------------------------------------------------------- pending deletion

/// Issue 5: attempts to use a key pending deletion are flagged in their
/// event and counted per key (the count survives a restart).
#[tokio::test]
async fn attempts_to_use_a_key_pending_deletion_are_flagged_and_counted() {
    let d = TestDaemon::start().await;
    let mut kms = d.admin_kms().await;
    let key = create_key(&mut kms).await;
    let other = create_key(&mut kms).await;
    let live = create_key(&mut kms).await;
    let blob = encrypt_ok(&mut kms, &key.key_id, b"still encrypted").await;
    schedule_deletion(&mut kms, &key.key_id, Some(7))
        .await
        .unwrap();
    schedule_deletion(&mut kms, &other.key_id, Some(7))
        .await
        .unwrap();

    let none = HashMap::new();
    let mut calls = Vec::new();
    for _ in 0..2 {
        let (r, id) = answered(kms.encrypt(enc_req(&key.key_id, b"x", &none)).await);
        assert_err(r, Code::FailedPrecondition, "KMSInvalidStateException");
        calls.push(("Encrypt", id));
    }
    let (r, id) = answered(kms.decrypt(dec_req(&blob, &none)).await);
    assert_err(r, Code::FailedPrecondition, "KMSInvalidStateException");
    calls.push(("Decrypt", id));
    let (r, other_id) = answered(kms.encrypt(enc_req(&other.arn, b"x", &none)).await);
    assert_err(r, Code::FailedPrecondition, "KMSInvalidStateException");
    let (r, describe_id) = answered(kms.describe_key(describe_req(&key.key_id)).await);
    r.unwrap();
    let (r, live_id) = answered(kms.encrypt(enc_req(&live.key_id, b"x", &none)).await);
    r.unwrap();

    let mut a = audit(&d, &d.admin).await;
    for (n, (op, id)) in calls.iter().enumerate() {
        let e = event_of(&mut a, op, id).await;
        let attempt = n as u64 + 1;
        assert_eq!(e.pending_deletion_attempt, attempt, "{op} #{attempt}");
        assert_eq!(e.outcome, pb::Outcome::Failed as i32);
        assert_eq!(e.error_code, "KMSInvalidStateException");
        assert_eq!(e.key_arns, vec![key.arn.clone()]);
        assert_eq!(
            body(&e)["pendingDeletionUse"],
            json!({"keyArn": key.arn, "attempt": attempt})
        );
    }
    let e = event_of(&mut a, "Encrypt", &other_id).await;
    assert_eq!(e.pending_deletion_attempt, 1, "each key has its own count");
    assert_eq!(body(&e)["pendingDeletionUse"]["keyArn"], other.arn.as_str());
    for (op, id) in [("DescribeKey", &describe_id), ("Encrypt", &live_id)] {
        let e = event_of(&mut a, op, id).await;
        assert_eq!(
            e.pending_deletion_attempt, 0,
            "{op} is no use of a pending key"
        );
        assert!(body(&e).get("pendingDeletionUse").is_none());
    }

    let d = d.restart().await;
    let mut kms = d.admin_kms().await;
    let (r, id) = answered(kms.encrypt(enc_req(&key.arn, b"x", &none)).await);
    assert_err(r, Code::FailedPrecondition, "KMSInvalidStateException");
    let e = event_of(&mut audit(&d, &d.admin).await, "Encrypt", &id).await;
    assert_eq!(
        e.pending_deletion_attempt, 4,
        "the count survives a restart"
    );
}

// -------------------------------------------------------------- retention

/// Issue 5: retention prunes old events and records the hash at the cut,
/// so the rest still verifies; tampering at the cut is still found.
#[tokio::test]
async fn retention_prunes_old_events_and_the_chain_still_verifies() {
    let d = TestDaemon::start_with(|o| o.settings.audit_retention_days = Some(1)).await;
    let mut kms = d.admin_kms().await;
    let key = create_key(&mut kms).await;
    let none = HashMap::new();
    let mut old_ids = Vec::new();
    for i in 0..5 {
        let (r, id) = answered(kms.encrypt(enc_req(&key.key_id, &[i], &none)).await);
        r.unwrap();
        old_ids.push(id);
    }
    let db = open_db(&d.file("kmsd.db"));
    let old = stored_events(&db);
    let old_last = old.last().unwrap().clone();

    d.advance(DAY * 2);
    let mut new_ids = Vec::new();
    for i in 0..3 {
        let (r, id) = answered(kms.encrypt(enc_req(&key.key_id, &[i], &none)).await);
        r.unwrap();
        new_ids.push(id);
    }
    d.kms.sweep().await.unwrap();

    let rows = stored_events(&db);
    assert_eq!(rows.len(), 3, "only the recent events are kept");
    assert_eq!(rows[0].seq, old_last.seq + 1);
    assert_eq!(
        rows[0].prev_hash, old_last.hash,
        "the kept chain goes on from the cut"
    );
    let anchor: (i64, Vec<u8>) = db
        .query_row("SELECT seq, hash FROM audit_anchor", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .unwrap();
    assert_eq!(
        anchor,
        (old_last.seq, old_last.hash.clone()),
        "the hash at the cut"
    );

    let mut a = audit(&d, &d.admin).await;
    let report = verify(&mut a).await;
    assert!(report.valid, "{report:?}");
    assert_eq!(report.pruned_before, old_last.seq as u64 + 1);
    assert_eq!(report.events_checked, 3);
    assert_eq!(report.head_sequence, rows[2].seq as u64);
    let seen = ids(&lookup_all(&mut a, Default::default()).await);
    for id in &new_ids {
        assert!(seen.contains(id));
    }
    for id in &old_ids {
        assert!(!seen.contains(id), "pruned events are gone");
    }

    // A forged anchor, and an event removed right after the cut, are found.
    db.execute("UPDATE audit_anchor SET hash = zeroblob(32)", [])
        .unwrap();
    let broken = verify(&mut a).await;
    assert!(!broken.valid);
    assert_eq!(
        broken.first_broken_sequence,
        Some(old_last.seq as u64 + 1),
        "{broken:?}"
    );
    db.execute("UPDATE audit_anchor SET hash = ?1", [&old_last.hash])
        .unwrap();
    assert!(verify(&mut a).await.valid);
    let first = rows[0].clone();
    db.execute("DELETE FROM audit_events WHERE seq = ?1", [first.seq])
        .unwrap();
    let broken = verify(&mut a).await;
    assert!(!broken.valid);
    assert_eq!(
        broken.first_broken_sequence,
        Some(first.seq as u64 + 1),
        "{broken:?}"
    );
    db.execute(
        "INSERT INTO audit_events (seq, time_ms, account_id, principal_arn, operation, outcome, key_arns, body, prev_hash, hash) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        params![
            first.seq,
            first.time_ms,
            first.account_id,
            first.principal_arn,
            first.operation,
            first.outcome,
            first.key_arns,
            first.body,
            first.prev_hash,
            first.hash
        ],
    )
    .unwrap();
    assert!(verify(&mut a).await.valid);
}

/// When retention has pruned every event, the next event goes on from the
/// cut: its sequence follows the cut's (sequences are never reused) and
/// VerifyTrail checks it.
#[tokio::test]
async fn after_everything_is_pruned_the_chain_goes_on_from_the_cut() {
    let d = TestDaemon::start_with(|o| o.settings.audit_retention_days = Some(1)).await;
    let mut kms = d.admin_kms().await;
    let key = create_key(&mut kms).await;
    encrypt_ok(&mut kms, &key.key_id, b"old").await;
    let db = open_db(&d.file("kmsd.db"));
    let last = stored_events(&db).last().unwrap().clone();

    // A quiet spell longer than the retention: everything goes.
    d.advance(DAY * 2);
    d.kms.sweep().await.unwrap();
    assert_eq!(event_count(&db), 0);
    let mut a = audit(&d, &d.admin).await;
    let report = verify(&mut a).await;
    assert!(report.valid, "{report:?}");
    assert_eq!(report.events_checked, 0);
    assert_eq!(report.pruned_before, last.seq as u64 + 1);
    assert_eq!(report.head_sequence, last.seq as u64);
    assert_eq!(report.head_hash, hex(&last.hash));

    // Calls go on, past the sequence of the cut.
    let calls = last.seq + 2;
    let mut new_ids = Vec::new();
    for i in 0..calls {
        let (r, id) = answered(
            kms.encrypt(enc_req(&key.key_id, &i.to_be_bytes(), &HashMap::new()))
                .await,
        );
        r.unwrap();
        new_ids.push(id);
    }
    let rows = stored_events(&db);
    assert_eq!(
        rows.len() as i64,
        calls + 1,
        "VerifyTrail's event and the Encrypts"
    );
    assert_eq!(
        rows[0].prev_hash, last.hash,
        "the next event links to the cut"
    );
    let report = verify(&mut a).await;
    assert!(
        report.valid,
        "nothing was tampered with, yet VerifyTrail reports {report:?}"
    );
    assert_eq!(
        report.events_checked,
        calls as u64 + 1,
        "every event after the cut is checked: {report:?}"
    );
    assert_eq!(
        rows.iter().map(|r| r.seq).collect::<Vec<_>>(),
        (last.seq + 1..=last.seq + calls + 1).collect::<Vec<_>>(),
        "sequence numbers go on after the cut instead of starting again at 1"
    );
    let seen = lookup_all(&mut a, Default::default()).await;
    assert_eq!(seen[1].request_id, *new_ids.last().unwrap());
    assert_eq!(seen[1].sequence, (last.seq + calls + 1) as u64);
}

/// IAM events say what they acted on and which credentials they issued, as
/// CloudTrail's do: a CreateAccessKey event names the user and the new key
/// id, and an AssumeRole event the role, the session name and the session's
/// key id, which the session's own events carry, so the trail leads from
/// anything a session did back to who assumed the role. Never a secret or a
/// session token.
#[tokio::test]
async fn iam_events_name_their_target_and_the_credentials_they_issue() {
    let d = TestDaemon::start().await;
    let acct = d.admin.account_id.clone();
    let mut a = audit(&d, &d.admin).await;
    let alice = new_user(&d, &d.admin, "alice").await;
    let (r, id) = answered(
        d.identity_client(&d.admin)
            .await
            .create_access_key(pb::CreateAccessKeyRequest {
                user_name: Some("alice".into()),
            })
            .await,
    );
    let created = r.unwrap().access_key.unwrap();
    let v = body(&event_of(&mut a, "CreateAccessKey", &id).await);
    assert_eq!(v["requestParameters"]["userName"], "alice", "{v}");
    assert_eq!(v["responseElements"]["accessKeyId"], created.access_key_id);
    assert!(!v.to_string().contains(created.secret_access_key.as_str()));

    create_role(
        &d,
        &d.admin,
        "app",
        &trust_policy(&[&user_arn(&acct, "alice")]),
        None,
    )
    .await
    .unwrap();
    let (r, id) = answered(
        d.identity_client(&alice)
            .await
            .assume_role(pb::AssumeRoleRequest {
                role_arn: "app".into(),
                role_session_name: "night-shift".into(),
                duration_seconds: None,
                token_code: None,
            })
            .await,
    );
    let session = SessionCreds::of(&r.unwrap());
    let v = body(&event_of(&mut a, "AssumeRole", &id).await);
    assert_eq!(v["userIdentity"]["arn"], user_arn(&acct, "alice"), "{v}");
    assert_eq!(v["requestParameters"]["roleArn"], role_arn(&acct, "app"));
    assert_eq!(v["requestParameters"]["roleSessionName"], "night-shift");
    assert_eq!(v["responseElements"]["accessKeyId"], session.access_key_id);
    let text = v.to_string();
    assert!(!text.contains(session.secret.as_str()));
    assert!(!text.contains(session.session_token.as_deref().unwrap()));

    // What the session does names the same key id.
    let (mut s_kms, _) = session_clients(&d, &session).await;
    let (r, id) = answered(s_kms.create_key(pb::CreateKeyRequest::default()).await);
    r.unwrap_err();
    let v = body(&event_of(&mut a, "CreateKey", &id).await);
    assert_eq!(v["userIdentity"]["accessKeyId"], session.access_key_id);
    assert!(verify(&mut a).await.valid);
}
