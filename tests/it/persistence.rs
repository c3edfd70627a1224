//! Durability and secrecy at rest: everything survives a restart, and no
//! plaintext, data key, key material or access key secret is ever written
//! to the data directory (database, WAL, shared memory).

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use kmsd::crypto::{RootKey, wrap};
use kmsd::pb;
use rusqlite::{Connection, OpenFlags};
use tonic::Code;

use crate::common::{Creds, TestDaemon, assert_err, contains, read_all_files};
use crate::util::*;

/// Every version of every key's material, unwrapped with the root key.
fn unwrapped_materials(data_dir: &Path) -> Vec<(String, u32, [u8; 32])> {
    let root = RootKey::load(&data_dir.join("root.key")).expect("root key");
    let c = Connection::open_with_flags(
        data_dir.join("kmsd.db"),
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .expect("open the database read-only");
    let mut st = c
        .prepare(
            "SELECT key_id, version, wrapped_material FROM key_versions ORDER BY key_id, version",
        )
        .unwrap();
    let rows: Vec<(String, u32, Vec<u8>)> = st
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    rows.into_iter()
        .map(|(id, v, w)| {
            let uuid = uuid::Uuid::parse_str(&id).expect("key id");
            let m = wrap::unwrap_key_material(&root, &uuid, v, &w).expect("unwrap material");
            (id, v, *m.expose_secret())
        })
        .collect()
}

#[tokio::test]
async fn everything_survives_a_restart() {
    let d = TestDaemon::start().await;
    let admin_before = d.admin.clone();
    let mut kms = d.admin_kms().await;

    // Keys in three states, with description, tags, aliases and rotation.
    let k1 = create_key_with(
        &mut kms,
        pb::CreateKeyRequest {
            description: Some("kept across restarts".into()),
            tags: vec![
                pb::Tag {
                    tag_key: "env".into(),
                    tag_value: "prod".into(),
                },
                pb::Tag {
                    tag_key: "owner".into(),
                    tag_value: "team-a".into(),
                },
            ],
            ..Default::default()
        },
    )
    .await;
    let c = ctx(&[("app", "persist")]);
    let blob_v1 = encrypt(&mut kms, &k1.key_id, b"under version 1", &c)
        .await
        .unwrap()
        .ciphertext_blob;
    kms.rotate_key_on_demand(pb::RotateKeyOnDemandRequest {
        key_id: k1.key_id.clone(),
    })
    .await
    .unwrap();
    kms.enable_key_rotation(pb::EnableKeyRotationRequest {
        key_id: k1.key_id.clone(),
        rotation_period_in_days: Some(120),
    })
    .await
    .unwrap();
    let blob_v2 = encrypt_ok(&mut kms, &k1.key_id, b"under version 2").await;
    let dk = generate_data_key(&mut kms, &k1.key_id, Some(pb::DataKeySpec::Aes256), None)
        .await
        .unwrap();
    create_alias(&mut kms, "alias/persist", &k1.key_id)
        .await
        .unwrap();
    create_alias(&mut kms, "alias/persist-2", &k1.arn)
        .await
        .unwrap();

    let k2 = create_key(&mut kms).await;
    let blob_k2 = encrypt_ok(&mut kms, &k2.key_id, b"under k2").await;
    disable(&mut kms, &k2.key_id).await;
    let k3 = create_key(&mut kms).await;
    let sched = schedule_deletion(&mut kms, &k3.key_id, Some(10))
        .await
        .unwrap();

    let before_k1 = describe(&mut kms, &k1.key_id).await.unwrap();
    let before_status = kms
        .get_key_rotation_status(pb::GetKeyRotationStatusRequest {
            key_id: k1.key_id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    let before_aliases = all_aliases(&mut kms).await;

    // Users and access keys.
    let mut iam = d.identity_client(&d.root).await;
    let alice = iam
        .create_user(pb::CreateUserRequest {
            user_name: "alice".into(),
            path: Some("/eng/".into()),
        })
        .await
        .unwrap()
        .into_inner()
        .user
        .unwrap();
    allow_all_kms(&d, "alice").await;
    iam.create_user(pb::CreateUserRequest {
        user_name: "bob".into(),
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
    let alice_creds = Creds {
        account_id: d.admin.account_id.clone(),
        access_key_id: ak.access_key_id.clone(),
        secret: ak.secret_access_key.clone(),
    };

    // Another account, its root and a key.
    let other = new_account(&d, "persisted").await;
    let mut other_kms = d.kms_client(&other).await;
    let ok = create_key(&mut other_kms).await;
    let other_blob = encrypt_ok(&mut other_kms, &ok.key_id, b"other account").await;
    drop((kms, iam, other_kms));

    let d = d.restart().await;
    assert_eq!(d.admin.access_key_id, admin_before.access_key_id);
    assert_eq!(d.admin.secret, admin_before.secret);
    let mut kms = d.admin_kms().await;

    // Keys.
    let ids: HashSet<String> = all_key_ids(&mut kms).await.into_iter().collect();
    assert_eq!(
        ids,
        [&k1.key_id, &k2.key_id, &k3.key_id]
            .into_iter()
            .cloned()
            .collect()
    );
    assert_eq!(describe(&mut kms, &k1.key_id).await.unwrap(), before_k1);
    let status = kms
        .get_key_rotation_status(pb::GetKeyRotationStatusRequest {
            key_id: k1.key_id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(status, before_status);
    assert_eq!(
        describe(&mut kms, &k2.key_id).await.unwrap().key_state,
        pb::KeyState::Disabled as i32
    );
    let p = describe(&mut kms, &k3.key_id).await.unwrap();
    assert_eq!(p.key_state, pb::KeyState::PendingDeletion as i32);
    assert_eq!(p.deletion_date, sched.deletion_date);

    // Tags and aliases.
    let tags = kms
        .list_resource_tags(pb::ListResourceTagsRequest {
            key_id: k1.key_id.clone(),
            limit: None,
            marker: None,
        })
        .await
        .unwrap()
        .into_inner()
        .tags;
    let mut tags: Vec<(String, String)> =
        tags.into_iter().map(|t| (t.tag_key, t.tag_value)).collect();
    tags.sort();
    assert_eq!(
        tags,
        vec![
            ("env".to_owned(), "prod".to_owned()),
            ("owner".to_owned(), "team-a".to_owned())
        ]
    );
    assert_eq!(all_aliases(&mut kms).await, before_aliases);
    assert_eq!(
        describe(&mut kms, "alias/persist").await.unwrap().key_id,
        k1.key_id
    );

    // Ciphertexts made before decrypt; new ones use the newest version.
    assert_eq!(
        decrypt(&mut kms, &blob_v1, &c).await.unwrap().plaintext,
        b"under version 1"
    );
    assert_eq!(decrypt_ok(&mut kms, &blob_v2).await, b"under version 2");
    assert_eq!(
        decrypt_ok(&mut kms, &dk.ciphertext_blob).await,
        dk.plaintext
    );
    let fresh = encrypt_ok(&mut kms, "alias/persist", b"after").await;
    assert_eq!(blob_version(&fresh), 2);
    assert_err(
        decrypt(&mut kms, &blob_k2, &ctx(&[])).await,
        Code::FailedPrecondition,
        "DisabledException",
    );
    enable(&mut kms, &k2.key_id).await;
    assert_eq!(decrypt_ok(&mut kms, &blob_k2).await, b"under k2");

    // Users, and alice's access key authenticates as alice.
    let mut iam = d.identity_client(&d.root).await;
    let users: HashSet<String> = iam
        .list_users(pb::ListUsersRequest::default())
        .await
        .unwrap()
        .into_inner()
        .users
        .into_iter()
        .map(|u| u.user_name)
        .collect();
    assert_eq!(
        users,
        ["admin", "alice", "bob"]
            .map(String::from)
            .into_iter()
            .collect()
    );
    let mut alice_iam = d.identity_client(&alice_creds).await;
    let me = alice_iam
        .get_caller_identity(pb::GetCallerIdentityRequest {})
        .await
        .expect("alice's access key works after a restart")
        .into_inner();
    assert_eq!(me.arn, alice.arn);
    assert_eq!(
        me.arn,
        format!("arn:aws:iam::{}:user/eng/alice", d.admin.account_id)
    );
    assert_eq!(me.user_id, alice.user_id);
    let mut alice_kms = d.kms_client(&alice_creds).await;
    assert_eq!(
        decrypt_ok(&mut alice_kms, &blob_v2).await,
        b"under version 2"
    );
    let keys = iam
        .list_access_keys(pb::ListAccessKeysRequest {
            user_name: Some("alice".into()),
        })
        .await
        .unwrap()
        .into_inner()
        .access_key_metadata;
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0].access_key_id, ak.access_key_id);

    // The other account and its root.
    let mut other_kms = d.kms_client(&other).await;
    assert_eq!(
        decrypt_ok(&mut other_kms, &other_blob).await,
        b"other account"
    );
    assert_eq!(all_key_ids(&mut other_kms).await, vec![ok.key_id.clone()]);
}

struct Secrets {
    /// (what, bytes) that must appear in no file.
    forbidden: Vec<(String, Vec<u8>)>,
    /// Secrets of the bootstrap profiles: only `credentials` may hold them.
    bootstrap: Vec<(String, Vec<u8>)>,
}

fn check_files(data_dir: &Path, s: &Secrets, when: &str) {
    let files = read_all_files(data_dir);
    let names: Vec<PathBuf> = files.iter().map(|(p, _)| p.clone()).collect();
    assert!(
        names.iter().any(|p| p.ends_with("kmsd.db")),
        "{when}: no database among {names:?}"
    );
    // Control: the search does find a secret where one belongs.
    let (_, creds) = files
        .iter()
        .find(|(p, _)| p.ends_with("credentials"))
        .expect("the credentials file");
    for (what, needle) in &s.bootstrap {
        assert!(contains(creds, needle), "{when}: credentials lacks {what}");
    }
    for (path, bytes) in &files {
        for (what, needle) in &s.forbidden {
            assert!(
                !contains(bytes, needle),
                "{when}: {} holds {what}",
                path.display()
            );
        }
        if !path.ends_with("credentials") {
            for (what, needle) in &s.bootstrap {
                assert!(
                    !contains(bytes, needle),
                    "{when}: {} holds {what}",
                    path.display()
                );
            }
        }
    }
}

#[tokio::test]
async fn no_plaintext_at_rest() {
    let d = TestDaemon::start().await;
    let mut kms = d.admin_kms().await;
    let a = create_key(&mut kms).await;
    let b = create_key(&mut kms).await;
    kms.rotate_key_on_demand(pb::RotateKeyOnDemandRequest {
        key_id: a.key_id.clone(),
    })
    .await
    .unwrap();
    let mut forbidden: Vec<(String, Vec<u8>)> = Vec::new();

    // Data keys, with and without context, of several sizes.
    for (i, (spec, n)) in [
        (Some(pb::DataKeySpec::Aes256), None),
        (Some(pb::DataKeySpec::Aes256), None),
        (Some(pb::DataKeySpec::Aes128), None),
        (None, Some(64)),
        (None, Some(1024)),
    ]
    .into_iter()
    .enumerate()
    {
        let key = if i % 2 == 0 { &a.key_id } else { &b.key_id };
        let r = kms
            .generate_data_key(pb::GenerateDataKeyRequest {
                key_id: key.clone(),
                key_spec: spec.map(|s| s as i32),
                number_of_bytes: n,
                encryption_context: ctx(&[("n", &i.to_string())]),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        assert!(r.plaintext.len() >= 16);
        // Decrypt it too, so the plaintext passes through that path as well.
        let back = decrypt(&mut kms, &r.ciphertext_blob, &ctx(&[("n", &i.to_string())]))
            .await
            .unwrap();
        assert_eq!(back.plaintext, r.plaintext);
        forbidden.push((format!("data key {i}"), r.plaintext));
    }

    // Encrypt plaintexts: recognisable text and random bytes.
    for i in 0..4 {
        let mut pt = format!("KMSD-PLAINTEXT-MARKER-{i}-").into_bytes();
        pt.extend(random_bytes(48));
        let key = if i % 2 == 0 { &a.key_id } else { &b.key_id };
        let blob = encrypt(&mut kms, key, &pt, &ctx(&[("i", &i.to_string())]))
            .await
            .unwrap()
            .ciphertext_blob;
        assert_eq!(
            decrypt(&mut kms, &blob, &ctx(&[("i", &i.to_string())]))
                .await
                .unwrap()
                .plaintext,
            pt
        );
        // ReEncrypt handles the plaintext inside the daemon only.
        kms.re_encrypt(pb::ReEncryptRequest {
            ciphertext_blob: blob,
            source_encryption_context: ctx(&[("i", &i.to_string())]),
            destination_key_id: b.key_id.clone(),
            ..Default::default()
        })
        .await
        .unwrap();
        forbidden.push((
            format!("Encrypt plaintext {i} (random part)"),
            pt[pt.len() - 48..].to_vec(),
        ));
        forbidden.push((format!("Encrypt plaintext {i}"), pt));
    }
    let big = random_bytes(4096);
    let blob = encrypt_ok(&mut kms, &a.key_id, &big).await;
    assert_eq!(decrypt_ok(&mut kms, &blob).await, big);
    forbidden.push((
        "4096-byte plaintext (first 32 bytes)".into(),
        big[..32].to_vec(),
    ));
    forbidden.push((
        "4096-byte plaintext (last 32 bytes)".into(),
        big[big.len() - 32..].to_vec(),
    ));

    // Access key secrets made through the API.
    let mut iam = d.identity_client(&d.root).await;
    iam.create_user(pb::CreateUserRequest {
        user_name: "carol".into(),
        path: None,
    })
    .await
    .unwrap();
    for i in 0..2 {
        let ak = iam
            .create_access_key(pb::CreateAccessKeyRequest {
                user_name: Some("carol".into()),
            })
            .await
            .unwrap()
            .into_inner()
            .access_key
            .unwrap();
        assert_eq!(ak.secret_access_key.len(), 40);
        forbidden.push((
            format!("carol's secret {i}"),
            ak.secret_access_key.into_bytes(),
        ));
    }
    let other = new_account(&d, "secrets").await;
    forbidden.push((
        "a new account root's secret".into(),
        other.secret.clone().into_bytes(),
    ));

    // CMK material, every version of every key.
    let materials = unwrapped_materials(&d.data_dir());
    assert_eq!(materials.len(), 3, "a: 2 versions, b: 1");
    for (id, v, m) in &materials {
        forbidden.push((format!("material of {id} version {v}"), m.to_vec()));
    }
    let bootstrap = vec![
        (
            "the admin's secret".to_owned(),
            d.admin.secret.clone().into_bytes(),
        ),
        (
            "the operator's secret".to_owned(),
            d.operator.secret.clone().into_bytes(),
        ),
    ];
    let root = std::fs::read(d.file("root.key")).unwrap();
    assert_eq!(root.len(), 32);
    let secrets = Secrets {
        forbidden,
        bootstrap,
    };

    check_files(&d.data_dir(), &secrets, "while running");

    // The root key itself lives in root.key only.
    for (path, bytes) in read_all_files(&d.data_dir()) {
        if !path.ends_with("root.key") {
            assert!(
                !contains(&bytes, &root),
                "{} holds the root key",
                path.display()
            );
        }
    }

    drop((kms, iam));
    let (dir, _clock) = d.stop().await;
    let data_dir = dir.path().join("data");
    check_files(&data_dir, &secrets, "after stop");
    // The materials read back after stop are the same.
    let after: Vec<[u8; 32]> = unwrapped_materials(&data_dir)
        .into_iter()
        .map(|m| m.2)
        .collect();
    assert_eq!(after, materials.iter().map(|m| m.2).collect::<Vec<_>>());
}

/// The root key, the database (with its WAL and shared memory) and the
/// credentials file are readable by their owner only, and the directory too.
#[tokio::test]
async fn data_dir_files_are_private() {
    use std::os::unix::fs::PermissionsExt;

    let d = TestDaemon::start().await;
    let mut kms = d.admin_kms().await;
    create_key(&mut kms).await;
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&d.data_dir()), 0o700, "data directory");
    let files = read_all_files(&d.data_dir());
    for name in ["root.key", "kmsd.db", "credentials"] {
        assert!(
            files.iter().any(|(p, _)| p.ends_with(name)),
            "{name} is missing"
        );
    }
    for (path, _) in &files {
        assert_eq!(
            mode(path) & 0o077,
            0,
            "{} has mode {:o}",
            path.display(),
            mode(path)
        );
    }
}

/// A database left open to group or others (by a copy, a restore, an
/// umask) is narrowed back to 0600 when kmsd opens it, and still opens.
#[tokio::test]
async fn a_database_left_readable_is_made_private_again() {
    use std::os::unix::fs::PermissionsExt;

    let d = TestDaemon::start().await;
    let key = create_key(&mut d.admin_kms().await).await;
    let db = d.data_dir().join("kmsd.db");
    let (dir, clock) = d.stop().await;
    std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o644)).unwrap();
    let d = TestDaemon::start_in(dir, clock, |_| {}).await;
    let mode = std::fs::metadata(&db).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "kmsd.db was left {mode:o}");
    describe(&mut d.admin_kms().await, &key.key_id)
        .await
        .expect("the key is still there");
}

/// Rotating one's access key (create a second, delete the first) is AWS's
/// advice. Doing so with the bootstrap admin's key must not stop the daemon
/// from starting again, and the new key must still work after the restart.
#[tokio::test]
async fn restart_after_the_admin_rotates_its_access_key() {
    let d = TestDaemon::start().await;
    let mut iam = d.identity_client(&d.admin).await;
    let new = iam
        .create_access_key(pb::CreateAccessKeyRequest { user_name: None })
        .await
        .unwrap()
        .into_inner()
        .access_key
        .unwrap();
    let rotated = Creds {
        account_id: d.admin.account_id.clone(),
        access_key_id: new.access_key_id.clone(),
        secret: new.secret_access_key.clone(),
    };
    let mut iam2 = d.identity_client(&rotated).await;
    iam2.delete_access_key(pb::DeleteAccessKeyRequest {
        access_key_id: d.admin.access_key_id.clone(),
        user_name: None,
    })
    .await
    .unwrap();
    let mut kms = d.kms_client(&rotated).await;
    let k = create_key(&mut kms).await;
    drop((iam, iam2, kms));

    // The harness's restart runs the dev bootstrap again; it must not fail.
    let d = d.restart().await;
    assert_eq!(
        d.admin.access_key_id, rotated.access_key_id,
        "the credentials file follows the rotation"
    );
    let mut kms = d.kms_client(&rotated).await;
    assert_eq!(
        describe(&mut kms, &k.key_id).await.unwrap().key_id,
        k.key_id
    );
}

/// Under steady load the WAL is started over, not left to grow: the
/// writer commits every millisecond or so, so a PASSIVE checkpoint alone
/// never leaves the log wholly copied when the next write begins (before
/// the fix it grew past 700 MB in 18 s of Encrypts).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_wal_stays_small_under_steady_load() {
    // 4 MiB rather than the default 64, so a short load shows it.
    let d = TestDaemon::start_with(|o| o.wal_restart_pages = 1000).await;
    let key = create_key(&mut d.admin_kms().await).await;
    let (wal, db) = (
        d.data_dir().join("kmsd.db-wal"),
        d.data_dir().join("kmsd.db"),
    );
    let size = |p: &PathBuf| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
    let db_before = size(&db);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut load = Vec::new();
    for _ in 0..32 {
        let (mut kms, key_id, stop) = (d.admin_kms().await, key.key_id.clone(), stop.clone());
        load.push(tokio::spawn(async move {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                encrypt_ok(&mut kms, &key_id, &[7; 64]).await;
            }
        }));
    }
    const MB: u64 = 1 << 20;
    let (mut wal_max, deadline) = (
        0,
        // Generous for a loaded machine; a fast one stops at 48 MB written.
        std::time::Instant::now() + std::time::Duration::from_secs(90),
    );
    while size(&db).saturating_sub(db_before) < 48 * MB && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        wal_max = wal_max.max(size(&wal));
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for t in load {
        t.await.unwrap();
    }
    let written = size(&db).saturating_sub(db_before);
    assert!(
        written >= 12 * MB,
        "the load wrote only {} MB in 30 s; too little to tell",
        written / MB
    );
    assert!(
        wal_max < 24 * MB && wal_max < written,
        "the WAL reached {} MB while {} MB were written",
        wal_max / MB,
        written / MB
    );
}
