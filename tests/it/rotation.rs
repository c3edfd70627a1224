//! Rotation: EnableKeyRotation, DisableKeyRotation, GetKeyRotationStatus,
//! RotateKeyOnDemand, ListKeyRotations, and automatic rotation driven by
//! the clock.

use kmsd::client::KmsClient;
use kmsd::pb;
use tonic::Code;

use crate::common::{TestDaemon, assert_err};
use crate::util::*;

const DAY_MS: i64 = 86_400_000;

async fn status(kms: &mut KmsClient, key_id: &str) -> pb::GetKeyRotationStatusResponse {
    kms.get_key_rotation_status(pb::GetKeyRotationStatusRequest {
        key_id: key_id.to_owned(),
    })
    .await
    .expect("GetKeyRotationStatus")
    .into_inner()
}

async fn enable_rotation(
    kms: &mut KmsClient,
    key_id: &str,
    days: Option<i32>,
) -> Result<(), tonic::Status> {
    kms.enable_key_rotation(pb::EnableKeyRotationRequest {
        key_id: key_id.to_owned(),
        rotation_period_in_days: days,
    })
    .await
    .map(|_| ())
}

async fn rotate(
    kms: &mut KmsClient,
    key_id: &str,
) -> Result<pb::RotateKeyOnDemandResponse, tonic::Status> {
    kms.rotate_key_on_demand(pb::RotateKeyOnDemandRequest {
        key_id: key_id.to_owned(),
    })
    .await
    .map(tonic::Response::into_inner)
}

/// Every rotation of a key (all pages).
async fn all_rotations(kms: &mut KmsClient, key_id: &str) -> Vec<pb::RotationsListEntry> {
    let mut out = Vec::new();
    let mut marker = None;
    loop {
        let page = kms
            .list_key_rotations(pb::ListKeyRotationsRequest {
                key_id: key_id.to_owned(),
                limit: None,
                marker: marker.take(),
            })
            .await
            .expect("ListKeyRotations")
            .into_inner();
        out.extend(page.rotations);
        match page.next_marker {
            Some(m) if page.truncated => marker = Some(m),
            _ => return out,
        }
    }
}

#[tokio::test]
async fn enable_key_rotation_period_bounds_and_default() {
    let d = TestDaemon::start().await;
    let mut kms = d.admin_kms().await;
    let m = create_key(&mut kms).await;

    // A new key does not rotate.
    let s = status(&mut kms, &m.key_id).await;
    assert!(!s.key_rotation_enabled);
    assert_eq!(s.key_id, m.arn, "GetKeyRotationStatus answers the key ARN");
    assert_eq!(s.next_rotation_date, None);
    assert_eq!(s.on_demand_rotation_start_date, None);

    for days in [89, 2561, 0, -1] {
        assert_err(
            enable_rotation(&mut kms, &m.key_id, Some(days)).await,
            Code::InvalidArgument,
            "ValidationException",
        );
    }
    assert!(!status(&mut kms, &m.key_id).await.key_rotation_enabled);

    // Default: 365 days.
    enable_rotation(&mut kms, &m.key_id, None).await.unwrap();
    let now = now_ms(&d);
    let s = status(&mut kms, &m.key_id).await;
    assert!(s.key_rotation_enabled);
    assert_eq!(s.rotation_period_in_days, Some(365));
    assert_eq!(
        s.next_rotation_date.as_ref().map(ts_ms),
        Some(now + 365 * DAY_MS),
        "next rotation is one period from now"
    );
    let meta = describe(&mut kms, &m.key_id).await.unwrap();
    assert!(meta.key_rotation_enabled);
    assert_eq!(meta.rotation_period_in_days, Some(365));
    assert_eq!(meta.next_rotation_date, s.next_rotation_date);
    // The date is fixed when rotation is enabled, not worked out anew from
    // the time of each query.
    d.advance(DAY);
    assert_eq!(
        status(&mut kms, &m.key_id)
            .await
            .next_rotation_date
            .as_ref()
            .map(ts_ms),
        Some(now + 365 * DAY_MS),
        "a day later, the next rotation is still a period from when it was enabled"
    );

    // The bounds, by ARN; the period may be changed while enabled.
    for days in [90, 2560] {
        enable_rotation(&mut kms, &m.arn, Some(days)).await.unwrap();
        let s = status(&mut kms, &m.arn).await;
        assert_eq!(s.rotation_period_in_days, Some(days));
        assert_eq!(
            s.next_rotation_date.as_ref().map(ts_ms),
            Some(now_ms(&d) + i64::from(days) * DAY_MS)
        );
    }

    // Disable.
    kms.disable_key_rotation(pb::DisableKeyRotationRequest {
        key_id: m.key_id.clone(),
    })
    .await
    .unwrap();
    let s = status(&mut kms, &m.key_id).await;
    assert!(!s.key_rotation_enabled);
    assert_eq!(s.next_rotation_date, None);
    assert!(
        !describe(&mut kms, &m.key_id)
            .await
            .unwrap()
            .key_rotation_enabled
    );

    // Unknown key.
    assert_err(
        enable_rotation(&mut kms, &uuid::Uuid::new_v4().to_string(), None).await,
        Code::NotFound,
        "NotFoundException",
    );
}

#[tokio::test]
async fn rotate_on_demand_many_times() {
    let d = TestDaemon::start().await;
    let mut kms = d.admin_kms().await;
    let m = create_key(&mut kms).await;
    let other = create_key(&mut kms).await;
    enable_rotation(&mut kms, &m.key_id, Some(180))
        .await
        .unwrap();
    let scheduled = status(&mut kms, &m.key_id).await.next_rotation_date;

    // Ten, well inside the quota of 25 (see on_demand_rotations_stop_at_the_quota),
    // with a ciphertext under every version.
    const ROTATIONS: u32 = 10;
    let mut blobs = Vec::new();
    for v in 1..=ROTATIONS + 1 {
        let pt = format!("made under version {v}").into_bytes();
        let blob = encrypt_ok(&mut kms, &m.key_id, &pt).await;
        assert_eq!(
            blob_version(&blob),
            v,
            "new ciphertexts use the newest version"
        );
        let dk = generate_data_key(&mut kms, &m.key_id, Some(pb::DataKeySpec::Aes256), None)
            .await
            .unwrap();
        assert_eq!(blob_version(&dk.ciphertext_blob), v);
        assert_eq!(
            describe(&mut kms, &m.key_id)
                .await
                .unwrap()
                .current_key_material_version,
            v
        );
        blobs.push((pt, blob));
        if v <= ROTATIONS {
            d.advance(DAY);
            let r = rotate(&mut kms, &m.key_id).await.unwrap();
            assert_eq!(r.key_id, m.arn, "RotateKeyOnDemand answers the key ARN");
        }
    }

    // Every ciphertext still decrypts.
    for (pt, blob) in &blobs {
        assert_eq!(&decrypt_ok(&mut kms, blob).await, pt);
    }
    // ReEncrypt from an old version to the same key gives the newest.
    let r = kms
        .re_encrypt(pb::ReEncryptRequest {
            ciphertext_blob: blobs[0].1.clone(),
            destination_key_id: m.key_id.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(blob_version(&r.ciphertext_blob), ROTATIONS + 1);
    assert_eq!(decrypt_ok(&mut kms, &r.ciphertext_blob).await, blobs[0].0);

    // The other key did not move.
    let blob = encrypt_ok(&mut kms, &other.key_id, b"x").await;
    assert_eq!(blob_version(&blob), 1);

    // On-demand rotation leaves the automatic schedule alone.
    let s = status(&mut kms, &m.key_id).await;
    assert!(s.key_rotation_enabled);
    assert_eq!(s.next_rotation_date, scheduled);
    assert_eq!(
        s.on_demand_rotation_start_date.as_ref().map(ts_ms),
        Some(now_ms(&d)),
        "the last on-demand rotation's time"
    );

    // ListKeyRotations: one entry per rotation, oldest first.
    let rotations = all_rotations(&mut kms, &m.key_id).await;
    assert_eq!(rotations.len(), ROTATIONS as usize);
    let start = ts_ms(m.creation_date.as_ref().unwrap());
    for (i, e) in rotations.iter().enumerate() {
        let i = u32::try_from(i).unwrap();
        assert_eq!(e.key_id, m.key_id);
        assert_eq!(e.rotation_type, pb::RotationType::OnDemand as i32);
        assert_eq!(e.key_material_version, i + 2);
        assert_eq!(
            e.rotation_date.as_ref().map(ts_ms),
            Some(start + i64::from(i + 1) * DAY_MS)
        );
    }
    assert!(all_rotations(&mut kms, &other.key_id).await.is_empty());
}

/// AWS's quota, which it does not let anyone raise: 25 on-demand rotations
/// per key; the 26th is LimitExceededException and changes nothing, and
/// automatic rotation goes on.
#[tokio::test]
async fn on_demand_rotations_stop_at_the_quota() {
    let d = TestDaemon::start().await;
    let mut kms = d.admin_kms().await;
    let m = create_key(&mut kms).await;
    let other = create_key(&mut kms).await;
    for _ in 0..25 {
        rotate(&mut kms, &m.key_id).await.expect("within the quota");
    }
    let s = assert_err(
        rotate(&mut kms, &m.key_id).await,
        Code::ResourceExhausted,
        "LimitExceededException",
    );
    assert!(s.message().contains("25"), "{s:?}");
    let meta = describe(&mut kms, &m.key_id).await.unwrap();
    assert_eq!(meta.current_key_material_version, 26, "nothing changed");
    assert_eq!(all_rotations(&mut kms, &m.key_id).await.len(), 25);
    // The quota is per key.
    rotate(&mut kms, &other.key_id)
        .await
        .expect("another key's first");
    // Automatic rotation is not counted.
    enable_rotation(&mut kms, &m.key_id, Some(90))
        .await
        .unwrap();
    d.advance(91 * DAY);
    d.kms.sweep().await.unwrap();
    let meta = describe(&mut kms, &m.key_id).await.unwrap();
    assert_eq!(
        meta.current_key_material_version, 27,
        "rotated automatically"
    );
}

#[tokio::test]
async fn list_key_rotations_pages() {
    let d = TestDaemon::start().await;
    let mut kms = d.admin_kms().await;
    let m = create_key(&mut kms).await;
    for _ in 0..10 {
        rotate(&mut kms, &m.key_id).await.unwrap();
    }
    let mut versions = Vec::new();
    let mut sizes = Vec::new();
    let mut marker = None;
    loop {
        let page = kms
            .list_key_rotations(pb::ListKeyRotationsRequest {
                key_id: m.key_id.clone(),
                limit: Some(4),
                marker: marker.take(),
            })
            .await
            .unwrap()
            .into_inner();
        sizes.push(page.rotations.len());
        versions.extend(page.rotations.iter().map(|r| r.key_material_version));
        if page.truncated {
            marker = Some(page.next_marker.expect("next_marker"));
        } else {
            assert_eq!(page.next_marker, None);
            break;
        }
    }
    assert_eq!(sizes, vec![4, 4, 2]);
    assert_eq!(versions, (2..=11).collect::<Vec<u32>>());

    for limit in [0, 1001] {
        let r = kms
            .list_key_rotations(pb::ListKeyRotationsRequest {
                key_id: m.key_id.clone(),
                limit: Some(limit),
                marker: None,
            })
            .await;
        assert_err(r, Code::InvalidArgument, "ValidationException");
    }
    let r = kms
        .list_key_rotations(pb::ListKeyRotationsRequest {
            key_id: m.key_id.clone(),
            limit: None,
            marker: Some("not a marker".into()),
        })
        .await;
    assert_err(r, Code::InvalidArgument, "InvalidMarkerException");
}

#[tokio::test]
async fn automatic_rotation_follows_the_clock() {
    let d = TestDaemon::start().await;
    let mut kms = d.admin_kms().await;
    let m = create_key(&mut kms).await;
    let still = create_key(&mut kms).await;
    let old = encrypt_ok(&mut kms, &m.key_id, b"before rotation").await;
    enable_rotation(&mut kms, &m.key_id, Some(90))
        .await
        .unwrap();

    // Not yet due.
    d.advance(89 * DAY);
    d.kms.sweep().await.unwrap();
    assert!(all_rotations(&mut kms, &m.key_id).await.is_empty());
    assert_eq!(
        blob_version(&encrypt_ok(&mut kms, &m.key_id, b"x").await),
        1
    );

    // Due.
    d.advance(2 * DAY);
    let rotated_at = now_ms(&d);
    d.kms.sweep().await.unwrap();
    let rotations = all_rotations(&mut kms, &m.key_id).await;
    assert_eq!(rotations.len(), 1, "{rotations:?}");
    assert_eq!(
        rotations[0].rotation_type,
        pb::RotationType::Automatic as i32
    );
    assert_eq!(rotations[0].key_material_version, 2);
    assert_eq!(
        rotations[0].rotation_date.as_ref().map(ts_ms),
        Some(rotated_at)
    );

    // The next one is a period after this one.
    let s = status(&mut kms, &m.key_id).await;
    assert!(s.key_rotation_enabled);
    assert_eq!(
        s.next_rotation_date.as_ref().map(ts_ms),
        Some(rotated_at + 90 * DAY_MS)
    );
    assert_eq!(s.on_demand_rotation_start_date, None);
    assert_eq!(
        describe(&mut kms, &m.key_id)
            .await
            .unwrap()
            .current_key_material_version,
        2
    );

    // Old ciphertexts decrypt; new ones use version 2.
    assert_eq!(decrypt_ok(&mut kms, &old).await, b"before rotation");
    let new = encrypt_ok(&mut kms, &m.key_id, b"after rotation").await;
    assert_eq!(blob_version(&new), 2);
    assert_eq!(decrypt_ok(&mut kms, &new).await, b"after rotation");

    // Sweeping again does not rotate again.
    d.kms.sweep().await.unwrap();
    assert_eq!(all_rotations(&mut kms, &m.key_id).await.len(), 1);

    // A key without rotation never rotates.
    assert!(all_rotations(&mut kms, &still.key_id).await.is_empty());

    // A second period later, the background task rotates again on its own.
    d.advance(91 * DAY);
    let n = poll_until(
        std::time::Duration::from_secs(5),
        "a second automatic rotation",
        || {
            let mut kms = kms.clone();
            let id = m.key_id.clone();
            async move {
                let n = all_rotations(&mut kms, &id).await.len();
                (n >= 2).then_some(n)
            }
        },
    )
    .await;
    assert_eq!(n, 2);
    assert_eq!(decrypt_ok(&mut kms, &old).await, b"before rotation");
}

#[tokio::test]
async fn disabled_key_is_not_rotated() {
    let d = TestDaemon::start().await;
    let mut kms = d.admin_kms().await;
    let m = create_key(&mut kms).await;
    enable_rotation(&mut kms, &m.key_id, Some(90))
        .await
        .unwrap();
    disable(&mut kms, &m.key_id).await;
    d.advance(100 * DAY);
    d.kms.sweep().await.unwrap();
    assert!(all_rotations(&mut kms, &m.key_id).await.is_empty());
    assert_eq!(
        describe(&mut kms, &m.key_id)
            .await
            .unwrap()
            .current_key_material_version,
        1
    );
}

#[tokio::test]
async fn rotation_refused_on_disabled_and_pending_keys() {
    let d = TestDaemon::start().await;
    let mut kms = d.admin_kms().await;
    let m = create_key(&mut kms).await;
    disable(&mut kms, &m.key_id).await;
    assert_err(
        enable_rotation(&mut kms, &m.key_id, None).await,
        Code::FailedPrecondition,
        "DisabledException",
    );
    assert_err(
        enable_rotation(&mut kms, &m.key_id, Some(90)).await,
        Code::FailedPrecondition,
        "DisabledException",
    );
    assert_err(
        rotate(&mut kms, &m.key_id).await,
        Code::FailedPrecondition,
        "DisabledException",
    );
    let r = kms
        .disable_key_rotation(pb::DisableKeyRotationRequest {
            key_id: m.key_id.clone(),
        })
        .await;
    assert_err(r, Code::FailedPrecondition, "DisabledException");
    assert!(!status(&mut kms, &m.key_id).await.key_rotation_enabled);

    let p = create_key(&mut kms).await;
    schedule_deletion(&mut kms, &p.key_id, Some(7))
        .await
        .unwrap();
    assert_err(
        enable_rotation(&mut kms, &p.key_id, None).await,
        Code::FailedPrecondition,
        "KMSInvalidStateException",
    );
    assert_err(
        rotate(&mut kms, &p.key_id).await,
        Code::FailedPrecondition,
        "KMSInvalidStateException",
    );
    assert!(all_rotations(&mut kms, &p.key_id).await.is_empty());
}
