//! The deletion window, driven by the test's clock: a key pending deletion
//! is destroyed once its date has passed, never before, whatever the clock
//! or a restart does; destruction removes its material, aliases and tags.

use std::path::Path;
use std::time::Duration;

use kmsd::client::KmsClient;
use kmsd::pb;
use rusqlite::{Connection, OpenFlags};
use tonic::Code;

use crate::common::{TestDaemon, assert_err};
use crate::util::*;

const HOUR: Duration = Duration::from_secs(3600);

fn open_ro(db: &Path) -> Connection {
    Connection::open_with_flags(
        db,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .expect("open the database read-only")
}

fn count(db: &Path, sql: &str, key_id: &str) -> i64 {
    open_ro(db)
        .query_row(sql, [key_id], |r| r.get(0))
        .expect("count rows")
}

async fn assert_pending(kms: &mut KmsClient, key_id: &str, what: &str) -> pb::KeyMetadata {
    let m = describe(kms, key_id)
        .await
        .unwrap_or_else(|s| panic!("{what}: the key is gone: {s:?}"));
    assert_eq!(
        m.key_state,
        pb::KeyState::PendingDeletion as i32,
        "{what}: {m:?}"
    );
    m
}

/// Polls DescribeKey until NotFoundException (the background task's work).
async fn wait_destroyed(kms: &KmsClient, key_id: &str) {
    poll_until(Duration::from_secs(5), "the key's destruction", || {
        let mut kms = kms.clone();
        let id = key_id.to_owned();
        async move {
            match describe(&mut kms, &id).await {
                Ok(m) => {
                    assert_eq!(m.key_state, pb::KeyState::PendingDeletion as i32);
                    None
                }
                Err(s) => {
                    assert_eq!(s.code(), Code::NotFound, "{s:?}");
                    Some(())
                }
            }
        }
    })
    .await;
}

#[tokio::test]
async fn key_is_destroyed_only_after_its_window() {
    let d = TestDaemon::start().await;
    let mut kms = d.admin_kms().await;
    let m = create_key_with(
        &mut kms,
        pb::CreateKeyRequest {
            tags: vec![pb::Tag {
                tag_key: "doomed".into(),
                tag_value: "yes".into(),
            }],
            ..Default::default()
        },
    )
    .await;
    let keep = create_key(&mut kms).await;
    create_alias(&mut kms, "alias/doomed", &m.key_id)
        .await
        .unwrap();
    create_alias(&mut kms, "alias/keep", &keep.key_id)
        .await
        .unwrap();
    let c = ctx(&[("k", "v")]);
    let blob = encrypt(&mut kms, &m.key_id, b"encrypted before", &c)
        .await
        .unwrap()
        .ciphertext_blob;
    kms.rotate_key_on_demand(pb::RotateKeyOnDemandRequest {
        key_id: m.key_id.clone(),
    })
    .await
    .unwrap();
    let keep_blob = encrypt_ok(&mut kms, &keep.key_id, b"kept").await;
    let db = d.file("kmsd.db");
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM key_versions WHERE key_id = ?1",
            &m.key_id
        ),
        2
    );

    let r = schedule_deletion(&mut kms, &m.key_id, Some(7))
        .await
        .unwrap();
    let date = ts_ms(r.deletion_date.as_ref().unwrap());
    assert_eq!(date, now_ms(&d) + 7 * 86_400_000);

    // One hour before the date: still there, however often we sweep.
    d.advance(6 * DAY + 23 * HOUR);
    let report = d.kms.sweep().await.unwrap();
    assert_eq!(report.destroyed, 0);
    let got = assert_pending(&mut kms, &m.key_id, "6 days 23 hours in").await;
    assert_eq!(got.deletion_date.as_ref().map(ts_ms), Some(date));
    assert_err(
        decrypt(&mut kms, &blob, &c).await,
        Code::FailedPrecondition,
        "KMSInvalidStateException",
    );
    assert_eq!(
        describe(&mut kms, "alias/doomed").await.unwrap().key_id,
        m.key_id
    );

    // Just after the date, the background task destroys the key without
    // our sweep.
    d.advance(HOUR + Duration::from_secs(1));
    wait_destroyed(&kms, &m.key_id).await;

    assert_err(
        describe(&mut kms, &m.arn).await,
        Code::NotFound,
        "NotFoundException",
    );
    // Its alias went with it; the other key's did not.
    assert_err(
        describe(&mut kms, "alias/doomed").await,
        Code::NotFound,
        "NotFoundException",
    );
    let names: Vec<String> = all_aliases(&mut kms)
        .await
        .into_iter()
        .map(|a| a.alias_name)
        .collect();
    assert_eq!(names, vec!["alias/keep".to_owned()]);
    // It is not listed.
    assert_eq!(all_key_ids(&mut kms).await, vec![keep.key_id.clone()]);
    // A ciphertext made under it can never be decrypted again; it names no
    // key now, and is refused as any blob naming no key is.
    assert_err(
        decrypt(&mut kms, &blob, &c).await,
        Code::InvalidArgument,
        "InvalidCiphertextException",
    );
    assert_err(
        encrypt(&mut kms, &m.key_id, b"x", &ctx(&[])).await,
        Code::NotFound,
        "NotFoundException",
    );
    // Cancelling is too late.
    let r = kms
        .cancel_key_deletion(pb::CancelKeyDeletionRequest {
            key_id: m.key_id.clone(),
        })
        .await;
    assert_err(r, Code::NotFound, "NotFoundException");

    // Every version of its material is gone from the database, and its tags.
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM key_versions WHERE key_id = ?1",
            &m.key_id
        ),
        0
    );
    assert_eq!(
        count(&db, "SELECT count(*) FROM keys WHERE id = ?1", &m.key_id),
        0
    );
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM tags WHERE key_id = ?1",
            &m.key_id
        ),
        0
    );
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM aliases WHERE key_id = ?1",
            &m.key_id
        ),
        0
    );

    // The other key is intact.
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM key_versions WHERE key_id = ?1",
            &keep.key_id
        ),
        1
    );
    assert_eq!(decrypt_ok(&mut kms, &keep_blob).await, b"kept");
    assert_eq!(
        describe(&mut kms, &keep.key_id).await.unwrap().key_state,
        pb::KeyState::Enabled as i32
    );
}

#[tokio::test]
async fn clock_moved_back_never_destroys_early() {
    let d = TestDaemon::start().await;
    let mut kms = d.admin_kms().await;
    let m = create_key(&mut kms).await;
    let r = schedule_deletion(&mut kms, &m.key_id, Some(7))
        .await
        .unwrap();
    let date = ts_ms(r.deletion_date.as_ref().unwrap());

    // Back 30 days, then forward to just before the original date.
    d.clock.rewind(30 * DAY);
    d.kms.sweep().await.unwrap();
    assert_pending(&mut kms, &m.key_id, "clock moved back").await;
    d.advance(30 * DAY + 6 * DAY);
    d.kms.sweep().await.unwrap();
    let got = assert_pending(&mut kms, &m.key_id, "6 days after scheduling").await;
    assert_eq!(
        got.deletion_date.as_ref().map(ts_ms),
        Some(date),
        "the deletion date is fixed when scheduled"
    );
    // Back again: a key scheduled now is due 7 days from the clock's current
    // time (before the first key's date); neither is destroyed early.
    d.clock.rewind(10 * DAY);
    let m2 = create_key(&mut kms).await;
    let r2 = schedule_deletion(&mut kms, &m2.key_id, Some(7))
        .await
        .unwrap();
    let date2 = ts_ms(r2.deletion_date.as_ref().unwrap());
    assert_eq!(date2, now_ms(&d) + 7 * 86_400_000);
    assert!(date2 < date);
    d.kms.sweep().await.unwrap();
    assert_pending(&mut kms, &m.key_id, "clock moved back twice").await;
    assert_pending(&mut kms, &m2.key_id, "just scheduled").await;

    // Just before the second date: not yet passed.
    d.clock.set(kmsd::clock::Timestamp(date2 - 1));
    d.kms.sweep().await.unwrap();
    assert_pending(&mut kms, &m2.key_id, "a millisecond before its date").await;
    // Past the second date only.
    d.clock.set(kmsd::clock::Timestamp(date2 + 1));
    wait_destroyed(&kms, &m2.key_id).await;
    assert_pending(&mut kms, &m.key_id, "its date has not come").await;
    d.clock.set(kmsd::clock::Timestamp(date + 1));
    wait_destroyed(&kms, &m.key_id).await;
}

#[tokio::test]
async fn restart_before_the_date_keeps_the_key_pending() {
    let d = TestDaemon::start().await;
    let mut kms = d.admin_kms().await;
    let m = create_key(&mut kms).await;
    let blob = encrypt_ok(&mut kms, &m.key_id, b"survives a restart").await;
    let r = schedule_deletion(&mut kms, &m.key_id, Some(7))
        .await
        .unwrap();
    let date = ts_ms(r.deletion_date.as_ref().unwrap());
    d.advance(3 * DAY);
    drop(kms);

    let d = d.restart().await;
    let mut kms = d.admin_kms().await;
    d.kms.sweep().await.unwrap();
    let got = assert_pending(&mut kms, &m.key_id, "after a restart").await;
    assert_eq!(got.deletion_date.as_ref().map(ts_ms), Some(date));

    // Cancel, and the key and its data are back.
    kms.cancel_key_deletion(pb::CancelKeyDeletionRequest {
        key_id: m.key_id.clone(),
    })
    .await
    .unwrap();
    enable(&mut kms, &m.key_id).await;
    d.advance(30 * DAY);
    d.kms.sweep().await.unwrap();
    assert_eq!(decrypt_ok(&mut kms, &blob).await, b"survives a restart");

    // Schedule again, restart twice across most of the window, then pass it.
    let r = schedule_deletion(&mut kms, &m.key_id, Some(7))
        .await
        .unwrap();
    let date = ts_ms(r.deletion_date.as_ref().unwrap());
    drop(kms);
    let d = d.restart().await;
    d.advance(6 * DAY);
    let d = d.restart().await;
    let mut kms = d.admin_kms().await;
    d.kms.sweep().await.unwrap();
    assert_pending(&mut kms, &m.key_id, "after two restarts").await;
    d.clock.set(kmsd::clock::Timestamp(date + 1));
    wait_destroyed(&kms, &m.key_id).await;
    assert_eq!(
        count(
            &d.file("kmsd.db"),
            "SELECT count(*) FROM key_versions WHERE key_id = ?1",
            &m.key_id
        ),
        0
    );
}

#[tokio::test]
async fn destroyed_key_leaves_no_material_in_the_files() {
    use kmsd::crypto::{RootKey, wrap};

    let d = TestDaemon::start().await;
    let mut kms = d.admin_kms().await;
    let m = create_key(&mut kms).await;
    for _ in 0..3 {
        kms.rotate_key_on_demand(pb::RotateKeyOnDemandRequest {
            key_id: m.key_id.clone(),
        })
        .await
        .unwrap();
    }
    // Unwrap each version's material, and keep its wrapped form.
    let root = RootKey::load(&d.file("root.key")).unwrap();
    let id = uuid::Uuid::parse_str(&m.key_id).unwrap();
    let rows: Vec<(u32, Vec<u8>)> = {
        let c = open_ro(&d.file("kmsd.db"));
        let mut st = c
            .prepare("SELECT version, wrapped_material FROM key_versions WHERE key_id = ?1")
            .unwrap();
        st.query_map([&m.key_id], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    };
    assert_eq!(rows.len(), 4);
    let materials: Vec<[u8; 32]> = rows
        .iter()
        .map(|(v, w)| {
            *wrap::unwrap_key_material(&root, &id, *v, w)
                .unwrap()
                .expose_secret()
        })
        .collect();

    // Control: before destruction the wrapped material is found on disk.
    let files = crate::common::read_all_files(&d.data_dir());
    for (v, wrapped) in &rows {
        assert!(
            files
                .iter()
                .any(|(_, b)| crate::common::contains(b, wrapped)),
            "the wrapped material of version {v} is nowhere on disk before destruction"
        );
    }

    schedule_deletion(&mut kms, &m.key_id, Some(7))
        .await
        .unwrap();
    d.advance(8 * DAY);
    wait_destroyed(&kms, &m.key_id).await;
    // The destruction is committed; a later write cannot resurrect anything.
    create_key(&mut kms).await;

    for (path, bytes) in crate::common::read_all_files(&d.data_dir()) {
        for (v, wrapped) in &rows {
            assert!(
                !crate::common::contains(&bytes, wrapped),
                "{}: the wrapped material of version {v} survived the key's destruction",
                path.display()
            );
        }
        for (i, mat) in materials.iter().enumerate() {
            assert!(
                !crate::common::contains(&bytes, mat),
                "{}: plaintext material of version {} found",
                path.display(),
                i + 1
            );
        }
    }
}

/// What the daemon does on its own is audited as the service's act:
/// the destruction of a key (DeleteKey) and an automatic rotation
/// (RotateKey), each naming the key, and the chain stays valid.
#[tokio::test]
async fn destruction_and_automatic_rotation_are_audited() {
    use crate::audit_util::{audit, lookup_all, verify};
    let d = TestDaemon::start().await;
    let mut kms = d.admin_kms().await;
    let doomed = create_key(&mut kms).await;
    let rotating = create_key(&mut kms).await;
    kms.enable_key_rotation(pb::EnableKeyRotationRequest {
        key_id: rotating.key_id.clone(),
        rotation_period_in_days: Some(90),
    })
    .await
    .unwrap();
    kms.schedule_key_deletion(pb::ScheduleKeyDeletionRequest {
        key_id: doomed.key_id.clone(),
        pending_window_in_days: Some(7),
    })
    .await
    .unwrap();
    d.advance(91 * DAY);
    wait_destroyed(&kms, &doomed.key_id).await;
    let mut a = audit(&d, &d.root).await;
    for (op, key) in [("DeleteKey", &doomed.arn), ("RotateKey", &rotating.arn)] {
        let req = pb::LookupEventsRequest {
            key_id: Some(key.clone()),
            operation: Some(op.into()),
            ..Default::default()
        };
        poll_until(Duration::from_secs(5), op, || {
            let (mut a, req) = (a.clone(), req.clone());
            async move { (!lookup_all(&mut a, req).await.is_empty()).then_some(()) }
        })
        .await;
        let events = lookup_all(&mut a, req).await;
        assert_eq!(events.len(), 1, "{op}");
        let body: serde_json::Value = serde_json::from_str(&events[0].canonical_json).unwrap();
        assert_eq!(body["eventName"], op);
        assert_eq!(body["userIdentity"]["type"], "AWSService");
        assert_eq!(body["resources"][0]["ARN"], key.as_str());
        assert_eq!(body["outcome"], "allowed");
    }
    assert!(verify(&mut a).await.valid);
}
